"""lexppl: LEX (Latent Variable as Explanation) as a Pyro model.

Explain any predictor by statistical inference: an explanation is a latent binary mask over the
input's features, drawn from a selector network; unselected features are imputed; the predictor
sees only the imputed input; everything is learned by maximum likelihood through an
importance-weighted bound (Senetaire et al., ICML 2023).
"""

from lexppl._version import __version__
from lexppl.explainer import EmptySelectionWarning, LEXExplainer
from lexppl.models import LEX
from lexppl.train import fit, pretrain_predictor

__all__ = [
    "LEX",
    "EmptySelectionWarning",
    "LEXExplainer",
    "__version__",
    "fit",
    "pretrain_predictor",
]
