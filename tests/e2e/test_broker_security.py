"""Password and TLS Redis URLs work end to end, and no password reaches a log or `crackq status`."""

from __future__ import annotations

import datetime
import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import select

from db.tables import Result
from harness import images
from harness.procs import READY, Proc, free_port, worker
from tests.conftest import TEST_DB_URL

pytestmark = pytest.mark.usefixtures("database_url")


@contextmanager
def redis_server(tmp: Path, name: str, *args: str) -> Iterator[Proc]:
    """Our own redis-server on loopback (never the shared one), data dir in tmp."""
    folder = tmp / name
    folder.mkdir()
    argv = ["redis-server", "--bind", "127.0.0.1", "--dir", str(folder), "--save", "",
            "--appendonly", "no", *args]  # fmt: skip
    with Proc(argv, tmp / f"{name}.log") as server:
        try:
            server.wait_for_log(r"Ready to accept connections", 20)
        except RuntimeError:
            if "tls" in server.log().lower() and "bad directive" in server.log().lower():
                pytest.skip("this redis-server was built without TLS")
            raise
        yield server


def make_certs(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost (PEM files)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "crackq test CA")])

    def cert(subject: x509.Name, public_key: object, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(public_key)  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
        else:
            san = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(ca_key, hashes.SHA256())

    server = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    pem = serialization.Encoding.PEM
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(cert(ca_name, ca_key.public_key(), True).public_bytes(pem))
    paths[1].write_bytes(cert(server, key.public_key(), False).public_bytes(pem))
    paths[2].write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


def crackq(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def secret_env(tmp: Path, broker_url: str) -> tuple[dict[str, str], str]:
    """Worker/CLI settings with a made-up database password (the local Postgres is trust
    auth, so it still connects) and an allowed root holding one photo."""
    db_password = f"dbpw-{secrets.token_hex(8)}"
    user, rest = TEST_DB_URL.split("://", 1)[1].split("@", 1)
    db_url = f"postgresql+psycopg2://{user}:{db_password}@{rest}"
    root = tmp / "photos"
    root.mkdir(exist_ok=True)
    (root / "one.jpg").write_bytes(images.jpeg(227, 227, pattern="noise"))
    env = {
        "CRACKQ_BROKER_URL": broker_url,
        "CRACKQ_DATABASE_URL": db_url,
        "CRACKQ_ALLOWED_ROOTS": str(root),
    }
    return env, db_password


def classify_one(env: dict[str, str], tmp: Path, sessions) -> Result:
    """`crackq submit` one photo through the broker in env; wait for the worker's row."""
    out = crackq(env, "submit", "--json", str(tmp / "photos" / "one.jpg"))
    assert out.returncode == 0, out.stderr
    (request_id,) = json.loads(out.stdout)["request_ids"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with sessions() as s:
            row = s.scalar(select(Result).where(Result.request_id == request_id))
        if row is not None and row.status != "queued":
            return row
        time.sleep(0.3)
    raise AssertionError(f"no final row for {request_id} after 60 s")


def assert_no_secret(text: str, *secrets_: str) -> None:
    for secret in secrets_:
        assert secret not in text, (
            f"a password leaked: ...{text[max(0, text.find(secret) - 80) :][:200]}"
        )


def serves_without_leaking(
    tmp_path: Path, sessions, env: dict[str, str], name: str, masked: str, *secrets_: str
) -> None:
    """A worker on `env` classifies a photo and `crackq status` lists it; no secret is shown."""
    with worker(tmp_path, name, env=env) as w:
        w.wait_for_log(READY, 120)
        row = classify_one(env, tmp_path, sessions)
        status = crackq(env, "status")
        log = w.log()
    assert row.status == "succeeded" and row.label in {"crack", "no_crack"}
    assert status.returncode == 0, status.stderr
    assert re.search(rf"workers: 1\s+{name}@localhost", status.stdout), status.stdout
    # the URLs are printed, masked: the check below is not vacuous
    assert masked in log
    assert_no_secret(log + status.stdout + status.stderr, *secrets_)


def test_password_protected_broker(tmp_path: Path, sessions) -> None:
    password = f"brokerpw-{secrets.token_hex(8)}"
    port = free_port()
    with redis_server(tmp_path, "redis-pw", "--port", str(port), "--requirepass", password):
        url = f"redis://:{password}@127.0.0.1:{port}/0"
        env, db_password = secret_env(tmp_path, url)
        serves_without_leaking(
            tmp_path, sessions, env, "pw", f"redis://:**@127.0.0.1:{port}/0", password, db_password
        )

        wrong = f"wrong-{secrets.token_hex(8)}"
        bad_env = {**env, "CRACKQ_BROKER_URL": f"redis://:{wrong}@127.0.0.1:{port}/0"}
        status = crackq(bad_env, "status")
        assert status.returncode != 0
        assert "invalid username-password pair" in status.stderr, status.stderr
        assert "Traceback" not in status.stderr, "a traceback is not an error message"
        assert_no_secret(status.stdout + status.stderr, wrong, password, db_password)
        submitted = crackq(bad_env, "submit", str(tmp_path / "photos" / "one.jpg"))
        assert submitted.returncode != 0
        assert "invalid username-password pair" in submitted.stderr, submitted.stderr
        assert "Traceback" not in submitted.stderr
        assert_no_secret(submitted.stdout + submitted.stderr, wrong, password, db_password)
        with worker(tmp_path, "wrongpw", env=bad_env) as w:
            w.wait_for_log(r"Cannot connect to redis://:\*\*@.*invalid username-password", 60)
            assert w.proc is not None and w.proc.poll() is None  # keeps retrying, says why
            assert_no_secret(w.log(), wrong, password, db_password)


def test_tls_broker(tmp_path: Path, sessions) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    ca, cert, key = make_certs(certs)
    password = f"tlspw-{secrets.token_hex(8)}"
    port = free_port()
    tls = ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert),
           "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no",
           "--requirepass", password]  # fmt: skip
    with redis_server(tmp_path, "redis-tls", *tls):
        url = f"rediss://:{password}@127.0.0.1:{port}/0?ssl_cert_reqs=required&ssl_ca_certs={ca}"
        env, db_password = secret_env(tmp_path, url)
        serves_without_leaking(
            tmp_path,
            sessions,
            env,
            "tls",
            f"rediss://:**@127.0.0.1:{port}/0",
            password,
            db_password,
        )

        # the certificate is checked: a client that does not trust our CA is refused
        untrusted = url.replace(str(ca), str(cert))  # a leaf is not a CA
        status = crackq({**env, "CRACKQ_BROKER_URL": untrusted}, "status")
        assert status.returncode != 0 and "certificate verify failed" in status.stderr, (
            status.stderr
        )
        assert_no_secret(status.stdout + status.stderr, password, db_password)
        # and the TLS port does not speak plain Redis
        plain = f"redis://:{password}@127.0.0.1:{port}/0"
        status = crackq({**env, "CRACKQ_BROKER_URL": plain}, "status", timeout=60)
        assert status.returncode != 0
        assert_no_secret(status.stdout + status.stderr, password, db_password)
