"""Compiled and graph-captured forward passes: padding to fixed shapes, switches, CPU parity."""

from __future__ import annotations

import copy

import pytest
import torch

from models.network import build_model
from models.numerics import resolve_numerics
from models.serving import Classifier, batch_buckets


def test_buckets_are_powers_of_two_up_to_the_largest_batch() -> None:
    assert batch_buckets(1) == (1,)
    assert batch_buckets(32) == (1, 2, 4, 8, 16, 32)
    assert batch_buckets(33)[-1] == 64  # a batch of 33 still fits one bucket
    assert batch_buckets(256, smallest=8) == (8, 16, 32, 64, 128, 256)
    assert batch_buckets(4, smallest=8) == (4,)


def test_auto_compiles_and_captures_on_gpus_only() -> None:
    cpu = resolve_numerics("cpu", "fp32", compile="auto", cuda_graphs="auto")
    assert not cpu.compile and not cpu.cuda_graphs and not cpu.padded
    assert resolve_numerics("cpu", "fp32", compile="on").name == "cpu-float32-channels_last+compile"
    with pytest.raises(ValueError, match="CUDA graphs need a CUDA device"):
        resolve_numerics("cpu", "fp32", cuda_graphs="on")
    with pytest.raises(ValueError, match="compile must be one of"):
        resolve_numerics("cpu", "fp32", compile="yes")


@pytest.mark.slow
def test_compiled_classifier_pads_every_batch_size_and_matches_eager() -> None:
    """inductor on the CPU (about 45 s here): batches of 1..5 through buckets 1 and 2."""
    torch.manual_seed(0)
    model = build_model().eval()
    eager = Classifier(copy.deepcopy(model), resolve_numerics("cpu", "fp32"), "e", input_size=32)
    compiled = Classifier(
        model, resolve_numerics("cpu", "fp32", compile="on"), "c", input_size=32, max_batch=2
    )
    assert compiled.buckets == (1, 2)
    compiled.warm_up()  # compiles both shapes now, not at the first request
    pixels = torch.randint(0, 256, (5, 32, 32, 3), dtype=torch.uint8)
    for n in (1, 2, 3, 5):  # 3 = 2 + a padded 1; 5 = 2 + 2 + 1
        got, want = compiled.predict(pixels[:n]), eager.predict(pixels[:n])
        assert got.shape == (n, 2)
        assert torch.allclose(got, want, atol=1e-4), (n, got, want)


def test_pixels_must_be_uint8_nhwc() -> None:
    clf = Classifier(build_model(), resolve_numerics("cpu", "fp32"), "v", input_size=32)
    with pytest.raises(ValueError, match=r"expected uint8 \(N,H,W,3\) pixels"):
        clf.predict(torch.zeros(1, 3, 32, 32))


@pytest.mark.slow
def test_a_new_model_version_reuses_the_compiled_code_with_its_own_weights() -> None:
    """Hot reload: same architecture, new weights -> no recompilation, new predictions."""
    import torch._dynamo.utils as dynamo_utils

    numerics = resolve_numerics("cpu", "fp32", compile="on")
    first = Classifier(build_model(), numerics, "v1", input_size=32, max_batch=1)
    first.warm_up()
    graphs = dynamo_utils.counters["stats"]["unique_graphs"]
    torch.manual_seed(1)
    model = build_model().eval()
    second = Classifier(copy.deepcopy(model), numerics, "v2", input_size=32, max_batch=1)
    second.warm_up()
    assert dynamo_utils.counters["stats"]["unique_graphs"] == graphs
    pixels = torch.randint(0, 256, (1, 32, 32, 3), dtype=torch.uint8)
    eager = Classifier(model, resolve_numerics("cpu", "fp32"), "e", input_size=32)
    assert torch.allclose(second.predict(pixels), eager.predict(pixels), atol=1e-4)
    assert not torch.allclose(first.predict(pixels), second.predict(pixels), atol=1e-4)
