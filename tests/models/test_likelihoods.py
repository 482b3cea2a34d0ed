import math

import pytest
import torch

from lexppl.models import NormalLikelihood
from lexppl.models.likelihoods import SoftTargetCategorical


@pytest.mark.parametrize("scale", [0.0, -1.0, math.inf, math.nan])
def test_normal_likelihood_refuses_a_scale_that_is_not_positive_and_finite(scale):
    with pytest.raises(ValueError, match="positive and finite"):
        NormalLikelihood(scale)


@pytest.mark.parametrize("validate", [False, True])
def test_soft_target_expand_keeps_the_validation_setting(validate):
    d = SoftTargetCategorical(torch.tensor([0.3, -1.0, 2.0]), validate_args=validate)
    expanded = d.expand((4,))
    assert expanded.batch_shape == (4,) and expanded._validate_args == validate
    target = torch.tensor([0.2, 0.3, 0.5])
    torch.testing.assert_close(expanded.log_prob(target), d.log_prob(target).expand(4))
