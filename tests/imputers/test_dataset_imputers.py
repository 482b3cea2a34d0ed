import functools
import math

import pyro
import pytest
import torch

from lexppl import LEX, fit
from lexppl.data import load
from lexppl.distributions import KSubset
from lexppl.imputers import GMMDatasetImputer, KMeansDatasetImputer, NotFittedError
from lexppl.infer import PathwiseBound
from lexppl.models import CategoricalLikelihood
from lexppl.nets import MLP

CENTERS = torch.tensor([[0.0, 0.0, 0.0], [10.0, -10.0, 5.0], [-10.0, 10.0, -5.0]])
MAKERS = [
    lambda: GMMDatasetImputer(n_components=3),
    lambda: GMMDatasetImputer(n_components=3, resampling="density"),
    lambda: KMeansDatasetImputer(n_clusters=3),
]
IDS = ["gmm-assigned", "gmm-density", "kmeans"]


def clustered(n_per_cluster=40, seed=0):
    """Three well separated clusters in 3-D; returns rows and their cluster index."""
    g = torch.Generator().manual_seed(seed)
    cluster = torch.arange(3).repeat_interleave(n_per_cluster)
    return CENTERS[cluster] + 0.5 * torch.randn(3 * n_per_cluster, 3, generator=g), cluster


def row_indices(draws, rows):
    """Index of the stored row equal to each draw (-1 if none)."""
    equal = (draws[..., None, :] == rows).all(-1)
    return torch.where(equal.any(-1), equal.int().argmax(-1), -1)


@pytest.mark.parametrize("make", MAKERS, ids=IDS)
def test_observed_features_are_returned_exactly(make):
    rows, _ = clustered()
    imputer = make().fit(rows)
    x = torch.randn(4, 3) * 5
    z = torch.bernoulli(torch.full((3, 4, 3), 0.5))
    draws = imputer(x, z).expand((2, 3, 4)).sample()
    assert draws.shape == (2, 3, 4, 3)
    kept = z.expand(2, 3, 4, 3) > 0.5
    assert torch.equal(draws[kept], x.expand(2, 3, 4, 3)[kept])
    assert imputer.multiple and imputer.requires_fit


@pytest.mark.parametrize("make", MAKERS, ids=IDS)
def test_imputations_are_rows_of_the_cluster_chosen_from_the_kept_features(make):
    train, _ = clustered(seed=0)
    held_out, cluster = clustered(seed=1)
    imputer = make().fit(train, rows=held_out)
    # x is near centre 1 on its first feature (kept); the others are far away and turned off
    x = torch.tensor([[9.5, 100.0, -100.0]]).expand(500, 3)
    z = torch.tensor([1.0, 0.0, 0.0]).expand(2, 500, 3)  # two mask particles
    fills = imputer.fill_distribution(x, z).sample()
    index = row_indices(fills, held_out)
    assert (index >= 0).all()  # every fill is a stored held-out row ...
    assert (cluster[index] == 1).all()  # ... of the cluster chosen by the kept feature
    if not isinstance(imputer, GMMDatasetImputer) or imputer.resampling == "assigned":
        # uniform over the cluster: each of its 40 rows is drawn (P(miss) < 40 e^{-25})
        assert index.unique().numel() == 40


@pytest.mark.parametrize("make", MAKERS, ids=IDS)
def test_an_empty_mask_resamples_from_every_cluster(make):
    rows, cluster = clustered()
    imputer = make().fit(rows)
    fills = imputer.fill_distribution(torch.zeros(3000, 3), torch.zeros(3000, 3)).sample()
    frequencies = torch.bincount(cluster[row_indices(fills, rows)], minlength=3) / 3000
    assert (frequencies > 0.25).all()  # each cluster holds a third of the rows


def test_gmm_density_resampling_follows_eq_17():
    rows, _ = clustered()
    imputer = GMMDatasetImputer(n_components=3, resampling="density").fit(rows)
    c = 0
    normal = torch.distributions.Normal(imputer.means[c], imputer.variances[c].sqrt())
    expected = normal.log_prob(rows).sum(-1).double().softmax(0)
    start = c * rows.shape[0]
    block = imputer.cdf[start : start + rows.shape[0]] - c
    probabilities = torch.diff(block, prepend=block.new_zeros(1))
    assert torch.allclose(probabilities, expected, atol=1e-6)


def test_kmeans_picks_the_nearest_cluster_on_kept_features():
    rows, _ = clustered()
    imputer = KMeansDatasetImputer(n_clusters=3).fit(rows)
    x = torch.tensor([[-9.0, 0.0, 0.0]])
    distances = imputer.masked_distances(x, torch.tensor([1.0, 0.0, 0.0]))
    expected = (x[0, 0] - imputer.centers[:, 0]).square()
    assert torch.allclose(distances[0], expected)
    nearest = imputer.centers[:, 0].sub(-9.0).abs().argmin()
    fills = imputer.fill_distribution(x.expand(200, 3), torch.tensor([1.0, 0.0, 0.0])).sample()
    assert (imputer.labels[row_indices(fills, rows)] == nearest).all()


@pytest.mark.parametrize("make", MAKERS, ids=IDS)
def test_seeding_reproduces_draws_and_state_dict_round_trips(make):
    rows, _ = clustered()
    imputer = make().fit(rows)
    x, z = torch.randn(5, 3), torch.bernoulli(torch.full((2, 5, 3), 0.5))
    pyro.set_rng_seed(3)
    a = imputer(x, z).sample()
    pyro.set_rng_seed(3)
    assert torch.equal(a, imputer(x, z).sample())
    fresh = type(imputer)()
    fresh.load_state_dict(imputer.state_dict())
    assert fresh.is_fitted
    pyro.set_rng_seed(3)
    assert torch.equal(a, fresh(x, z).sample())


@pytest.mark.parametrize("make", MAKERS, ids=IDS)
def test_float64_rows_are_stored_in_the_default_dtype(make):
    # Stored as the inputs come (float32), not copied from float64 at every call: the draws of
    # float64 inputs are the float32-rounded rows, in float64.
    rows, _ = clustered()
    rows = rows.double() / 3
    imputer = make().fit(rows)
    assert imputer.rows.dtype == torch.get_default_dtype()
    x, z = rows[:4], torch.zeros(50, 4, 3, dtype=torch.float64)
    draws = imputer(x, z).sample()
    assert draws.dtype == torch.float64
    assert (row_indices(draws, rows.float().double()) >= 0).all()


@pytest.mark.parametrize("make", MAKERS, ids=IDS)
def test_errors_are_clear(make):
    with pytest.raises(NotFittedError, match="not fitted"):
        make()(torch.zeros(2, 3), torch.zeros(2, 3))
    rows, _ = clustered()
    bad = rows.clone()
    bad[3, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        make().fit(bad)
    with pytest.raises(ValueError, match="NaN"):
        make().fit(rows, rows=bad)
    with pytest.raises(ValueError, match="shape"):
        make().fit(rows, rows=torch.zeros(5, 4))
    with pytest.raises(ValueError, match="at least"):
        make().fit(rows[:2])
    imputer = make().fit(rows)
    with pytest.raises(ValueError, match="3 features"):
        imputer(torch.zeros(2, 4), torch.zeros(2, 4))


def test_unknown_options_list_the_choices():
    with pytest.raises(ValueError, match=r"\['assigned', 'density'\]"):
        GMMDatasetImputer(resampling="uniform")
    with pytest.raises(ValueError, match="n_clusters"):
        KMeansDatasetImputer(n_clusters=0)


# ------------------------------------------------------------------ LEX training
def train_lex(imputer, x, y, k, num_classes):
    torch.manual_seed(0)
    d = x.shape[1]
    lex = LEX(
        MLP(d, d, (32,)),
        MLP(d, num_classes, (32,)),
        imputer,
        functools.partial(KSubset, k=k),
        CategoricalLikelihood(),
    )
    bound = PathwiseBound(num_masks=2, method="marginal")
    return fit(lex, bound, x, y, epochs=1, batch_size=100, lr=1e-3)


FAST = [
    lambda: GMMDatasetImputer(n_components=4, noise=1 / 16),
    lambda: KMeansDatasetImputer(n_clusters=4),
]


@pytest.mark.parametrize("make", FAST, ids=["gmm", "kmeans"])
def test_lex_trains_on_s3_and_digits(make):
    from sklearn.datasets import load_digits

    data = load("s3", n=500)
    imputer = make().fit(load("s3", "val", n=500).x)
    result = train_lex(imputer, data.x, data.y, k=5, num_classes=2)
    assert all(math.isfinite(loss) for loss in result.losses)

    digits = load_digits()
    x = torch.as_tensor(digits.data[:300], dtype=torch.float32) / 16
    y = torch.as_tensor(digits.target[:300], dtype=torch.long)
    held_out = torch.as_tensor(digits.data[300:600], dtype=torch.float32) / 16
    imputer = make().fit(x, rows=held_out)
    result = train_lex(imputer, x, y, k=16, num_classes=10)
    assert all(math.isfinite(loss) for loss in result.losses)


def test_gmm_rows_are_assigned_like_sklearn_and_known_parameters_work():
    rows, cluster = clustered()
    imputer = GMMDatasetImputer(n_components=3).fit(rows)
    gmm = imputer._fit_mixture(rows)  # same random_state: the same fit
    assert torch.equal(imputer.labels, torch.as_tensor(gmm.predict(rows.double().numpy())))
    known = GMMDatasetImputer.from_parameters(
        torch.full((3,), 1 / 3), CENTERS, torch.full((3, 3), 0.25), rows=rows
    )
    assert torch.equal(known.labels, cluster)
    x = torch.tensor([[-10.2, 0.0, 0.0]]).expand(100, 3)
    fills = known.fill_distribution(x, torch.tensor([1.0, 0.0, 0.0])).sample()
    assert (cluster[row_indices(fills, rows)] == 2).all()
    with pytest.raises(ValueError, match="rows"):
        GMMDatasetImputer.from_parameters(torch.ones(1), CENTERS[:1], torch.ones(1, 3))
