import torch

from lexppl import LEX
from lexppl.distributions import IndependentBernoulli
from lexppl.guides import MaskProposal
from lexppl.imputers import ConstantImputer
from lexppl.infer import ReweightedWakeSleepBound
from lexppl.models import CategoricalLikelihood, PatchGrid
from lexppl.nets import ConvPredictor, UNetSelector


def test_a_proposal_from_the_prior_of_an_image_model_starts_at_the_prior():
    # The model's selector takes images (N, C, H, W), not flat rows; the correction starts at
    # zero, so the proposal's first logits are the prior's.
    torch.manual_seed(0)
    groups = PatchGrid((1, 8, 16), (4, 4))
    lex = LEX(
        UNetSelector(groups, depth=2, base_channels=2),
        ConvPredictor(1, 3, (4,), (8, 16)),
        ConstantImputer(),
        IndependentBernoulli,
        CategoricalLikelihood(),
        groups=groups,
    )
    proposal = MaskProposal.from_prior(lex, num_features=8 * 16, num_classes=3)
    x, y = torch.randn(5, 1, 8, 16), torch.randint(0, 3, (5,))
    with torch.no_grad():
        torch.testing.assert_close(proposal.logits(x, y), lex.selector(x))
    loss = ReweightedWakeSleepBound(num_masks=2).differentiable_loss(lex.model, proposal, x, y)
    loss.backward()
    assert torch.isfinite(loss)
