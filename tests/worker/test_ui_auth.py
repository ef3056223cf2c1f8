"""The console's accounts: parsing the settings, password hashes, roles, loopback."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from worker.ui import auth
from worker.ui.charts import area_chart


def test_accounts_come_from_the_setting_and_the_file(tmp_path: Path) -> None:
    f = tmp_path / "users"
    f.write_text("# the night shift\nnina:viewer:pw:with:colons\n\n")
    accounts = auth.load_accounts(" rita:reviewer:pw , olga:operator:x", f)
    assert {a.name: a.role for a in accounts.values()} == {
        "rita": "reviewer", "olga": "operator", "nina": "viewer",
    }  # fmt: skip
    assert accounts["nina"].password == "pw:with:colons"
    assert auth.load_accounts(None, None) == {}


@pytest.mark.parametrize(
    ("users", "says"),
    [
        ("rita", "expected name:role:password"),
        ("rita:reviewer:", "expected name:role:password"),
        ("rita:admin:pw", "role 'admin' is not one of viewer, reviewer, operator"),
        ("rita:viewer:a,rita:viewer:b", "rita is listed twice"),
    ],
)
def test_a_bad_account_entry_is_named(users: str, says: str) -> None:
    with pytest.raises(auth.AccountsError, match=says):
        auth.load_accounts(users, None)


def test_a_name_in_both_places_and_a_missing_file_are_refused(tmp_path: Path) -> None:
    f = tmp_path / "users"
    f.write_text("rita:viewer:pw\n")
    with pytest.raises(auth.AccountsError, match="in both"):
        auth.load_accounts("rita:reviewer:pw", f)
    with pytest.raises(auth.AccountsError, match="No such file"):
        auth.load_accounts(None, tmp_path / "absent")


def test_passwords_verify_plain_or_hashed_and_unknown_names_never() -> None:
    hashed = auth.hash_password("s3cret", iterations=1000)
    assert hashed.startswith("pbkdf2_sha256$1000$") and "s3cret" not in hashed
    assert hashed != auth.hash_password("s3cret", iterations=1000)  # salted
    assert auth.verify(auth.Account("a", "viewer", hashed), "s3cret")
    assert not auth.verify(auth.Account("a", "viewer", hashed), "s3cret ")
    assert auth.verify(auth.Account("a", "viewer", "plain"), "plain")
    assert not auth.verify(auth.Account("a", "viewer", "plain"), "Plain")
    assert not auth.verify(None, "")


def test_roles_nest_and_loopback_is_recognised() -> None:
    assert auth.may("operator", "reviewer") and auth.may("reviewer", "viewer")
    assert not auth.may("viewer", "reviewer") and not auth.may("reviewer", "operator")
    for host in ("127.0.0.1", "127.8.0.1", "::1", "[::1]", "localhost"):
        assert auth.is_loopback(host), host
    for host in ("0.0.0.0", "::", "10.0.0.5", "example.com", ""):
        assert not auth.is_loopback(host), host


def test_the_area_chart_draws_one_dot_per_dated_inspection() -> None:
    t0 = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
    svg = area_chart(
        [
            {"inspected_at": t0, "label": "no_crack", "crack_area_fraction": None},
            {"inspected_at": t0 + dt.timedelta(days=90), "label": "crack",
             "crack_area_fraction": 0.12, "inspection_id": "<pier 7>"},
            {"inspected_at": None, "label": None},
        ]
    )  # fmt: skip
    assert svg.count("<circle") == 2 and "&lt;pier 7&gt;" in svg and "<pier 7>" not in svg
    assert "2026-03-01" in svg and "2026-05-30" in svg and "area 12.00%" in svg
    assert "No dated inspections" in area_chart([])
