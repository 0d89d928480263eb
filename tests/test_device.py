"""Device resolution: auto picks CUDA, then MPS, then CPU; unavailable devices are errors."""

from __future__ import annotations

import pytest
import torch

from chromarate.device import check_device, resolve_device, resolve_dtype
from chromarate.errors import DeviceError


def test_cpu_and_auto():
    assert resolve_device("cpu").type == "cpu"
    auto = resolve_device("auto")
    if torch.cuda.is_available():
        assert auto.type == "cuda"
    else:
        assert auto.type in ("cpu", "mps")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA present")
def test_unavailable_cuda_is_an_error():
    with pytest.raises(DeviceError, match="CUDA is not available"):
        resolve_device("cuda:0")


@pytest.mark.parametrize("bad", ["gpu0", "tpu", "cuda:x"])
def test_unknown_device(bad):
    with pytest.raises(DeviceError):
        resolve_device(bad)


def test_dtypes():
    assert resolve_dtype("float32") is torch.float32
    with pytest.raises(DeviceError):
        resolve_dtype("float16x")


def test_check_device_before_a_batch():
    """A local batch must have the device; a remote scheduler's is checked by name only;
    ``auto`` and None always pass."""
    for spec in (None, "auto", "cpu"):
        check_device(spec)
        check_device(spec, here=False)
    check_device("cuda:7", here=False)  # the workers may have it
    for bad in ("banana", "tpu"):
        with pytest.raises(DeviceError, match="unknown device"):
            check_device(bad, here=False)
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA is not available"):
            check_device("cuda:7")
