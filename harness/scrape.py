"""Prometheus text read back as Prometheus reads it: {(sample name, sorted labels): value}."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of one exposition, keyed by name and its labels as sorted pairs."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(base_url: str, timeout_s: float = 10.0) -> Samples:
    """GET `base_url`/metrics and parse it."""
    import requests

    return parse(requests.get(f"{base_url}/metrics", timeout=timeout_s).text)


def total(samples: Samples, name: str, **match: str) -> float:
    """The sum of `name`'s samples whose labels include `match`."""
    return sum(
        v
        for (n, labels), v in samples.items()
        if n == name and match.items() <= dict(labels).items()
    )
