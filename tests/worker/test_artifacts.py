"""Artifact stores against real PostgreSQL and a moto S3 server: round trips, tampering, memory."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from db.tables import ArtifactChunk
from harness.s3_server import aws_env, moto_s3
from worker.artifacts import ArtifactError, ArtifactTampered, Stores, s3store
from worker.artifacts.base import CHUNK
from worker.artifacts.pgstore import artifact_id_of

BUCKET = "crackq-artifacts"
ROOT = Path(__file__).resolve().parents[2]
MULTI = 17 * CHUNK + 12345  # 18 postgres chunks, 3 S3 parts of 8 MiB


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("moto")
    with moto_s3(BUCKET) as endpoint:
        yield endpoint


@pytest.fixture
def aws(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    for name, value in aws_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(s3store, "_CLIENTS", {})
    return s3_endpoint


@pytest.fixture
def stores(sessions, aws: str) -> Stores:
    return Stores(sessions, aws)


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("art") / "weights.pt"
    path.write_bytes(os.urandom(MULTI))
    return path


def setting_for(kind: str, tmp_path: Path) -> str:
    return {
        "postgres": "postgres",
        "s3": f"s3://{BUCKET}/crackq/test",
        "file": f"file://{tmp_path / 'store'}",
    }[kind]


@pytest.mark.parametrize("kind", ["postgres", "s3", "file"])
def test_put_then_fetch_round_trips_a_multi_chunk_file(
    kind: str, stores: Stores, big_file: Path, tmp_path: Path, sessions
) -> None:
    stored = stores.for_writing(setting_for(kind, tmp_path)).put(big_file, "models/v1.pt")
    expected = hashlib.sha256(big_file.read_bytes()).hexdigest()
    assert (stored.sha256, stored.size) == (expected, MULTI)
    dest = tmp_path / "out" / "v1.pt"
    assert stores.fetch(stored.url, stored.sha256, dest) == dest
    assert dest.read_bytes() == big_file.read_bytes()
    assert [p.name for p in dest.parent.iterdir()] == ["v1.pt"]  # no temp file left
    if kind == "postgres":
        assert stored.url.startswith("pg://artifact/")
        with sessions() as s:
            n = s.scalar(
                select(func.count())
                .select_from(ArtifactChunk)
                .where(ArtifactChunk.artifact_id == artifact_id_of(stored.url))
            )
        assert n == 18
    elif kind == "s3":
        assert stored.url == f"s3://{BUCKET}/crackq/test/models/v1.pt"
        head = s3store._client(stores.s3_endpoint_url).head_object(
            Bucket=BUCKET, Key="crackq/test/models/v1.pt"
        )
        assert head["ETag"].strip('"').endswith("-3")  # a 3-part multipart upload
        assert head["Metadata"]["sha256"] == expected
    else:
        assert stored.url == str(tmp_path / "store" / "models" / "v1.pt")


def _tamper(kind: str, url: str, stores: Stores, sessions) -> None:
    if kind == "postgres":
        with sessions() as s, s.begin():
            s.execute(
                text("UPDATE artifact_chunks SET data = :d WHERE artifact_id = :a AND seq = 5"),
                {"d": os.urandom(CHUNK), "a": artifact_id_of(url)},
            )
    elif kind == "s3":
        bucket, key = s3store.split_url(url)
        s3store._client(stores.s3_endpoint_url).put_object(Bucket=bucket, Key=key, Body=b"x" * 99)
    else:
        with open(url, "r+b") as fh:
            fh.seek(MULTI // 2)
            fh.write(b"\0\1\2")


@pytest.mark.parametrize("kind", ["postgres", "s3", "file"])
def test_tampered_bytes_are_refused_and_nothing_is_written(
    kind: str, stores: Stores, big_file: Path, tmp_path: Path, sessions
) -> None:
    stored = stores.for_writing(setting_for(kind, tmp_path)).put(big_file, "models/v2.pt")
    _tamper(kind, stored.url, stores, sessions)
    out = tmp_path / "out"
    with pytest.raises(ArtifactTampered, match="sha256"):
        stores.fetch(stored.url, stored.sha256, out / "v2.pt")
    assert list(out.iterdir()) == []


def test_a_missing_postgres_chunk_is_refused(
    stores: Stores, big_file: Path, tmp_path: Path, sessions
) -> None:
    stored = stores.for_writing("postgres").put(big_file)
    with sessions() as s, s.begin():
        s.execute(
            text("DELETE FROM artifact_chunks WHERE artifact_id = :a AND seq = 3"),
            {"a": artifact_id_of(stored.url)},
        )
    with pytest.raises(ArtifactTampered, match="chunk 3 is missing"):
        stores.fetch(stored.url, stored.sha256, tmp_path / "out" / "x.pt")
    assert list((tmp_path / "out").iterdir()) == []


def test_a_missing_artifact_is_an_artifact_error(stores: Stores, tmp_path: Path) -> None:
    for url in ("pg://artifact/999999", f"s3://{BUCKET}/nope.pt", str(tmp_path / "nope.pt")):
        with pytest.raises(ArtifactError):
            stores.fetch(url, "0" * 64, tmp_path / "x.pt")


def test_a_key_cannot_leave_the_file_store(stores: Stores, big_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="leaves the store"):
        stores.for_writing(str(tmp_path / "store")).put(big_file, "../../escaped.pt")


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="reads Linux /proc")
@pytest.mark.parametrize("kind", ["postgres", "s3"])
def test_a_64_mb_artifact_streams_through_a_few_mb_of_memory(
    kind: str, aws: str, tmp_path: Path
) -> None:
    """Measured in a child process: the peak RSS growth of the put, and of the fetch."""
    file = tmp_path / "big.pt"
    with open(file, "wb") as fh:
        for _ in range(64):
            fh.write(os.urandom(1 << 20))
    env = {**os.environ, **aws_env(tmp_path), "CRACKQ_S3_ENDPOINT_URL": aws}
    out = subprocess.run(
        [sys.executable, "-m", "tests.worker.artifact_probe", setting_for(kind, tmp_path),
         str(file), str(tmp_path / "fetched.pt")],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"\n{kind}: {probe}")
    assert probe["size"] == 64 << 20
    assert (tmp_path / "fetched.pt").read_bytes() == file.read_bytes()
    assert probe["put_growth"] < 24 << 20, probe
    assert probe["fetch_growth"] < 24 << 20, probe
