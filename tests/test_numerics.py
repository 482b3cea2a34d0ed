import functools

import pytest
import torch
from torch import nn

from lexppl import LEX, fit
from lexppl.distributions import KSubset
from lexppl.imputers import ConstantImputer
from lexppl.infer import PathwiseBound
from lexppl.models import CategoricalLikelihood
from lexppl.nets import MLP
from lexppl.numerics import flush_denormals, flushing_denormals

SUBNORMAL = 1e-39  # below torch.finfo(torch.float32).tiny, about 1.2e-38


def _cpu_can_flush() -> bool:
    supported = torch.set_flush_denormal(True)  # False where the CPU has no flush-to-zero mode
    torch.set_flush_denormal(False)
    return supported


pytestmark = pytest.mark.skipif(not _cpu_can_flush(), reason="this CPU cannot flush subnormals")


@pytest.fixture(autouse=True)
def _flushing_off():
    torch.set_flush_denormal(False)
    yield
    torch.set_flush_denormal(False)


def test_probe_reads_the_setting_of_torch():
    assert not flushing_denormals()
    assert torch.tensor([SUBNORMAL]).mul(2.0).item() > 0.0
    torch.set_flush_denormal(True)
    assert flushing_denormals()


def test_block_flushes_subnormals_and_restores_the_setting():
    with flush_denormals():
        assert flushing_denormals()
        assert torch.tensor([SUBNORMAL]).mul(2.0).item() == 0.0
        assert torch.tensor([1e-30]).mul(2.0).item() == pytest.approx(2e-30)  # normal: kept
    assert not flushing_denormals()


def test_block_leaves_flushing_on_when_it_was_on_and_restores_after_an_error():
    torch.set_flush_denormal(True)
    with flush_denormals():
        pass
    assert flushing_denormals()
    torch.set_flush_denormal(False)
    with pytest.raises(KeyError), flush_denormals():
        raise KeyError("inside")
    assert not flushing_denormals()


class _RecordsFlushing(nn.Module):
    """A predictor that notes, at every call, whether subnormals are flushed."""

    def __init__(self, num_features):
        super().__init__()
        self.net = MLP(num_features, 2, (8,))
        self.seen = []

    def forward(self, x):
        self.seen.append(flushing_denormals())
        return self.net(x)


def test_fit_trains_with_subnormals_flushed_and_restores_the_setting():
    torch.manual_seed(0)
    predictor = _RecordsFlushing(4)
    model = LEX(
        MLP(4, 4, (8,)),
        predictor,
        ConstantImputer(0.0),
        functools.partial(KSubset, k=2),
        CategoricalLikelihood(),
    )
    x = torch.randn(32, 4)
    fit(model, PathwiseBound(num_masks=2), x, (x[:, 0] > 0).long(), epochs=2, batch_size=16)
    assert predictor.seen and all(predictor.seen)
    assert not flushing_denormals()
