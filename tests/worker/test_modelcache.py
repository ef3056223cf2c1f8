"""The model cache and the registry's artifact URLs: hits, eviction, a worker with no files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from db import registry
from models.checkpoints import save_checkpoint
from models.network import build_model
from models.numerics import resolve_numerics
from worker.artifacts import ArtifactTampered, Stores
from worker.modelcache import ModelCache
from worker.modelstore import ModelHolder, build_classifier, choose_source

pytestmark = pytest.mark.usefixtures("clean_tables")
NUMERICS = resolve_numerics("cpu", "fp32", False)


class Counting(Stores):
    """Real stores, counting the fetches that reach them."""

    fetched: list[str]

    def fetch(self, url: str, sha256: str, dest: Path) -> Path:
        self.fetched.append(url)
        return super().fetch(url, sha256, dest)


@pytest.fixture
def stores(sessions) -> Counting:
    counting = Counting(sessions)
    object.__setattr__(counting, "fetched", [])
    return counting


def put_bytes(stores: Stores, tmp_path: Path, name: str, size: int) -> tuple[str, str]:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    stored = stores.for_writing("postgres").put(path)
    return stored.url, stored.sha256


def test_a_cache_hit_skips_the_download(stores: Counting, tmp_path: Path) -> None:
    url, sha = put_bytes(stores, tmp_path, "a.pt", 3 << 20)
    cache = ModelCache(tmp_path / "cache", 100 << 20, stores)
    first = cache.path_for(url, sha)
    assert first == tmp_path / "cache" / f"{sha}.pt" and first.stat().st_size == 3 << 20
    again = ModelCache(tmp_path / "cache", 100 << 20, stores).path_for(url, sha)  # a restart
    assert again == first and stores.fetched == [url]


def test_local_paths_are_read_where_they_lie(stores: Counting, tmp_path: Path) -> None:
    cache = ModelCache(tmp_path / "cache", 1, stores)
    assert cache.path_for("/models/v1.pt", "0" * 64) == Path("/models/v1.pt")
    assert cache.path_for("file:///models/v 2.pt", "0" * 64) == Path("/models/v 2.pt")
    assert stores.fetched == [] and not (tmp_path / "cache").exists()


def test_eviction_drops_the_least_recently_used_but_never_the_served_one(
    stores: Counting, tmp_path: Path
) -> None:
    mib = 1 << 20
    a, b, c, d = (put_bytes(stores, tmp_path, f"{n}.pt", 2 * mib) for n in "abcd")
    cache = ModelCache(tmp_path / "cache", 5 * mib, stores)  # room for two of them
    cache.path_for(*a)
    cache.serving(a[1])  # a is served from here on
    os.utime(cache.path_for(*a), (1, 1))  # and is the least recently used file
    cache.path_for(*b)
    cache.path_for(*c)  # over the limit: b goes (LRU apart from the served a)
    assert sorted(p.stem for p in cache.root.iterdir()) == sorted([a[1], c[1]])
    cache.serving(c[1])
    cache.path_for(*d)  # now a is neither served nor recent
    assert sorted(p.stem for p in cache.root.iterdir()) == sorted([c[1], d[1]])


def test_a_tampered_download_leaves_nothing_in_the_cache(
    stores: Counting, sessions, tmp_path: Path
) -> None:
    url, sha = put_bytes(stores, tmp_path, "a.pt", 2 << 20)
    cache = ModelCache(tmp_path / "cache", 100 << 20, stores)
    with pytest.raises(ArtifactTampered):
        cache.path_for(url, "f" * 64)
    assert list(cache.root.iterdir()) == []


def register_in_store(stores: Stores, sessions, tmp_path: Path, version: str) -> str:
    """A checkpoint saved on the 'training machine', put in postgres, then deleted there."""
    path = tmp_path / "trainer" / f"{version}.pt"
    sha = save_checkpoint(path, build_model(), version=version, recipe={"image_size": 96})
    stored = stores.for_writing("postgres").put(path, f"models/{version}.pt")
    assert stored.sha256 == sha
    path.unlink()
    with sessions() as s, s.begin():
        registry.register(
            s, version=version, checkpoint_uri=stored.url, sha256=sha, architecture="resnet50"
        )
        registry.promote(s, version)
    return stored.url


def test_a_worker_with_an_empty_data_dir_serves_the_promoted_version_from_postgres(
    stores: Counting, sessions, tmp_path: Path
) -> None:
    url = register_in_store(stores, sessions, tmp_path, "v1")
    cache = ModelCache(tmp_path / "fresh-worker" / "cache" / "models", 1 << 30, stores)
    holder = ModelHolder(
        lambda src: build_classifier(src, NUMERICS, "never"),
        lambda: choose_source(None, sessions, cache),
    )
    assert holder.current().version == "v1" and stores.fetched == [url]
    register_in_store(stores, sessions, tmp_path, "v2")
    assert holder.check_once() and holder.current().version == "v2"
    assert not holder.check_once()  # polling the same version fetches nothing again
    assert len(stores.fetched) == 2 and len(list(cache.root.iterdir())) == 2


def test_a_corrupt_cached_copy_fails_to_load_and_is_dropped(
    stores: Counting, sessions, tmp_path: Path
) -> None:
    register_in_store(stores, sessions, tmp_path, "v1")
    cache = ModelCache(tmp_path / "cache", 1 << 30, stores)
    source = choose_source(None, sessions, cache)
    path = source.local_checkpoint()
    path.write_bytes(b"changed on disk after the download")
    with pytest.raises(Exception, match="sha256"):
        build_classifier(source, NUMERICS, "never")
    assert not path.exists()  # the next attempt downloads it again
    assert build_classifier(source, NUMERICS, "never").version == "v1"
