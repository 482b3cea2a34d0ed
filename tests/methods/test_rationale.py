import math

import pytest
import torch

from lexppl.distributions import IndependentBernoulli
from lexppl.imputers import ConstantImputer
from lexppl.infer import ReinforceBound
from lexppl.methods import rationale
from lexppl.methods.rationale_selection import (
    RationaleEncoder,
    RationaleGenerator,
    count_rationale_spans,
)
from lexppl.models import RationalePenalty
from lexppl.nets import MLP


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_count_rationale_spans():
    masks = torch.tensor([[1, 1, 0, 1, 0, 1], [0, 0, 0, 0, 0, 0], [0, 1, 1, 1, 1, 0]])
    assert count_rationale_spans(masks).tolist() == [3, 0, 1]


def test_preset_components_follow_lei_et_al():
    m = rationale(10, 2)
    assert m.name == "rationale"
    assert isinstance(m.model.selector, RationaleGenerator)
    assert isinstance(m.model.predictor, RationaleEncoder) and m.model.predictor.drop
    assert m.model.mask_as_input  # the encoder skips the unselected positions
    assert m.model.mask_family is IndependentBernoulli
    assert isinstance(m.model.regularizer, RationalePenalty)
    assert m.model.regularizer.sparsity == 3e-4 and m.model.regularizer.coherence == 2.0
    assert isinstance(m.bound, ReinforceBound) and m.bound.num_masks == 1
    assert m.fit_defaults["lr"] == 5e-4 and m.fit_defaults["batch_size"] == 256
    padded = rationale(10, 2, imputation="pad", pad_value=0.0)
    assert not padded.model.mask_as_input and not padded.model.predictor.drop
    assert isinstance(padded.model.imputer, ConstantImputer)


def test_drop_encoder_ignores_unselected_positions():
    torch.manual_seed(0)
    encoder = RationaleEncoder(2, embedding_dim=4, hidden=8, drop=True)
    values = torch.randn(3, 5)
    mask = torch.tensor([[1.0, 0, 1, 0, 0]]).expand(3, 5)
    changed = values.clone()
    changed[:, [1, 3, 4]] = torch.randn(3, 3)
    out = encoder(torch.cat([values, mask], -1))
    assert torch.allclose(out, encoder(torch.cat([changed, mask], -1)))
    # ... and equals the encoder run on the selected positions alone.
    selected = values[:, [0, 2]]
    assert torch.allclose(out, encoder(torch.cat([selected, torch.ones(3, 2)], -1)), atol=1e-6)


def test_drop_encoder_runs_hard_masks_over_the_selected_words_only():
    # Hard masks take the short loop over max |z| selected words; it must equal the recursion
    # over every position (taken for soft masks), in value and in the encoder's gradient.
    torch.manual_seed(0)
    encoder = RationaleEncoder(3, vocab_size=50, embedding_dim=8, hidden=16)
    values = torch.randint(1, 50, (12, 30)).float()
    mask = (torch.rand(12, 30) < 0.3).float()
    mask[0] = 0.0  # nothing selected: the initial state
    mask[1] = 1.0  # everything selected
    results = []
    for soft in (False, True):
        encoder.zero_grad()
        logits = encoder(torch.cat([values, mask.clone().requires_grad_(soft)], -1))
        logits.square().sum().backward()
        results.append((logits, [p.grad.clone() for p in encoder.parameters()]))
    (hard, hard_grads), (every, every_grads) = results
    assert torch.allclose(hard, every, atol=1e-6)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(hard_grads, every_grads))


@pytest.mark.parametrize("imputation", ["drop", "pad"])
def test_trains_on_token_ids_with_finite_loss(imputation):
    torch.manual_seed(0)
    x = torch.randint(0, 20, (64, 8)).float()
    y = (x[:, 3] > 10).long()
    m = rationale(
        8, 2, sparsity=0.01, vocab_size=20, embedding_dim=4, hidden=8, imputation=imputation
    )
    result = m.train(x, y, epochs=2, batch_size=32)
    assert result.epochs_run == 2 and all(math.isfinite(v) for v in result.losses)
    assert m.model.importance(x).shape == (64, 8)
    assert m.model.predict(x, num_samples=3).shape == (64, 2)
    with pytest.raises(ValueError, match="token ids"):
        m.model.importance(torch.full((2, 8), 25.0))


def _gapped_problem(n, seed):
    # y depends on positions 2, 4 and 6 of a length-9 sequence; 3 and 5 carry nothing.
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 9, generator=g)
    return x, ((x[:, 2] + x[:, 4] + x[:, 6]) > 0).long()


def test_continuity_term_makes_the_rationale_contiguous():
    # Both runs start from "select everything" (generator bias +2) with the same seed. With
    # L1 alone the rationale becomes {2, 4, 6}: three spans. With the continuity term
    # (λ2 = 0.75 λ1) filling a gap costs λ1 but saves 2 λ2 > λ1, so positions 3 and 5 stay
    # and the rationale is one span.
    x, y = _gapped_problem(500, 0)
    x_test, _ = _gapped_problem(500, 1)
    spans, gaps_filled = {}, {}
    for coherence in (0.0, 0.75):
        torch.manual_seed(0)
        generator = MLP(9, 9, (16,))
        with torch.no_grad():
            generator[-1].bias.fill_(2.0)
        m = rationale(
            9,
            2,
            sparsity=0.05,
            coherence=coherence,
            imputation="pad",
            generator=generator,
            encoder=MLP(9, 2, (16,)),
        )
        m.train(x, y, epochs=10, batch_size=100, lr=2e-2, seed=0)
        mode = m.model.mask_distribution(x_test).mode
        spans[coherence] = count_rationale_spans(mode).float().mean().item()
        gaps_filled[coherence] = mode[:, [3, 5]].mean().item()
        assert mode[:, [2, 4, 6]].mean() > 0.95  # the relevant positions are kept
    # Measured (seed 0, 1 thread): 3.02 spans without, 1.01 with the continuity term.
    assert spans[0.0] > 2.5 and spans[0.75] < 1.2
    assert gaps_filled[0.0] < 0.2 and gaps_filled[0.75] > 0.8


@pytest.mark.parametrize(
    "build",
    [
        lambda: rationale(0, 2),
        lambda: rationale(5, 1),
        lambda: rationale(5, 2, sparsity=-1.0),
        lambda: rationale(5, 2, coherence=-0.5),
        lambda: rationale(5, 2, imputation="zero"),
        lambda: rationale(5, 2, vocab_size=0),
        lambda: rationale(5, 2, generator="net"),
    ],
)
def test_bad_arguments_raise_value_error(build):
    with pytest.raises(ValueError):
        build()


def test_drop_encoder_needs_the_mask():
    with pytest.raises(ValueError, match="mask_as_input"):
        RationaleEncoder(2, drop=True)(torch.zeros(2, 5))
