"""check_device: the devices this machine can use, and a ValueError naming any other."""

import pytest
import torch
from fake_cuda import DEVICE, FakeCuda

from lexppl.nets import check_device


@pytest.mark.parametrize("device", ["cpu", "cpu:0", torch.device("cpu")])
def test_the_cpu_is_accepted_in_every_form(device):
    assert check_device(device) == torch.device(device)


@pytest.mark.parametrize("device", ["xpu", "hip", "meta", "vulkan", "ipu", "xla:0"])
def test_device_types_this_machine_cannot_compute_on_are_refused_by_name(device):
    # torch.device accepts them all; without the check they failed at the first tensor, with
    # torch's AssertionError or NotImplementedError (or, on "meta", at the first value read).
    with pytest.raises(ValueError, match=f"device '{device}' cannot be used on this machine"):
        check_device(device)


def test_unknown_and_unavailable_devices_are_refused_as_before():
    with pytest.raises(ValueError, match="Unknown device 'gpu'"):
        check_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            check_device("cuda:1")


def test_a_device_that_computes_is_accepted():
    # The emulated GPU of the device tests computes on "meta" tensors: the probe accepts it.
    with FakeCuda():
        assert check_device(DEVICE) == DEVICE
