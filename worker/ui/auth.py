"""The console's accounts: who may log in, with which role, and their password checks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROLES = ("viewer", "reviewer", "operator")  # each may do what the ones before it may
LOCAL = "local"  # the user on an unauthenticated loopback console
HASH_SCHEME = "pbkdf2_sha256"
ITERATIONS = 310_000  # OWASP's figure for PBKDF2-HMAC-SHA256


@dataclass(frozen=True)
class Account:
    name: str
    role: str
    password: str  # plain, or pbkdf2_sha256$iterations$salt$hash


class AccountsError(ValueError):
    """An accounts setting that cannot be read: the message names the entry."""


def parse_accounts(entries: Iterable[str], where: str) -> dict[str, Account]:
    """`name:role:password` entries (blank and # lines skipped) as accounts by name."""
    accounts: dict[str, Account] = {}
    for n, raw in enumerate(entries, 1):
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        name, sep1, rest = entry.partition(":")
        role, sep2, password = rest.partition(":")
        if not (sep1 and sep2 and name.strip() and password):
            raise AccountsError(f"{where}, entry {n}: expected name:role:password")
        name, role = name.strip(), role.strip()
        if role not in ROLES:
            raise AccountsError(
                f"{where}, entry {n} ({name}): role {role!r} is not one of {', '.join(ROLES)}"
            )
        if name in accounts:
            raise AccountsError(f"{where}: {name} is listed twice")
        accounts[name] = Account(name, role, password)
    return accounts


def load_accounts(users: str | None, users_file: Path | None) -> dict[str, Account]:
    """The accounts of CRACKQ_UI_USERS (comma-separated) and CRACKQ_UI_USERS_FILE (lines)."""
    accounts = parse_accounts((users or "").split(","), "CRACKQ_UI_USERS")
    if users_file is not None:
        try:
            lines = users_file.read_text().splitlines()
        except OSError as exc:
            raise AccountsError(f"CRACKQ_UI_USERS_FILE {users_file}: {exc.strerror}") from exc
        for name, account in parse_accounts(lines, f"CRACKQ_UI_USERS_FILE {users_file}").items():
            if name in accounts:
                raise AccountsError(f"{name} is in both CRACKQ_UI_USERS and CRACKQ_UI_USERS_FILE")
            accounts[name] = account
    return accounts


def hash_password(password: str, iterations: int = ITERATIONS) -> str:
    """A salted PBKDF2-SHA256 hash, as CRACKQ_UI_USERS takes it in place of the password."""
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"{HASH_SCHEME}${iterations}${_b64(salt)}${_b64(digest)}"


def verify(account: Account | None, password: str) -> bool:
    """Whether `password` is the account's; as slow for unknown names as for known ones."""
    stored = account.password if account is not None else _decoy()
    if stored.startswith(HASH_SCHEME + "$"):
        _, iterations, salt, digest = stored.split("$")
        tried = hashlib.pbkdf2_hmac("sha256", password.encode(), _unb64(salt), int(iterations))
        ok = hmac.compare_digest(tried, _unb64(digest))
    else:
        ok = hmac.compare_digest(stored.encode(), password.encode())
    return ok and account is not None


@cache
def _decoy() -> str:
    """A hash no password matches, made once: an unknown name costs one PBKDF2, as a known one."""
    return hash_password(secrets.token_urlsafe(32))


def may(role: str, needed: str) -> bool:
    """Whether `role` covers `needed` (operator > reviewer > viewer)."""
    return ROLES.index(role) >= ROLES.index(needed)


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost: only this machine can reach the console."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
