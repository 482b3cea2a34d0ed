import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer

from lexppl import EmptySelectionWarning, LEXExplainer
from lexppl.checkpoint import CheckpointError, save_checkpoint
from lexppl.nets import MLP

FAST = dict(
    epochs=2, batch_size=64, lr=1e-3, num_masks=2, selector_hidden=(16,), predictor_hidden=(16,)
)


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    return X[:200].astype(np.float32), y[:200]


@pytest.mark.parametrize(
    "options",
    [
        dict(k=3),
        dict(mask="bernoulli", l1=0.1, estimator="reinforce", imputer="marginal"),
        dict(k=2, imputer="gaussian", num_imputations=2),
        dict(k=2, imputer="mean"),
        dict(k=3, estimator="vimco"),
        dict(k=3, estimator="concrete"),
        dict(k=3, estimator="simple", imputer="gaussian"),
        dict(k=3, imputer="gmm"),
        dict(k=3, imputer="kmeans_dataset"),
        dict(k=3, imputer="gaussian", mask_as_input=True),
        dict(mask="bernoulli", l1=0.1, estimator="rebar"),
        dict(mask="bernoulli", l1=0.1, estimator="relax"),
        dict(k=3, estimator="rebar", imputer="gaussian"),
    ],
    ids=[
        "subset-constant",
        "bernoulli-reinforce-marginal",
        "subset-gaussian",
        "mean",
        "vimco",
        "concrete",
        "simple",
        "gmm",
        "kmeans",
        "mask-input",
        "rebar",
        "relax",
        "subset-rebar",
    ],
)
def test_fit_explain_select_predict(cancer, options):
    X, y = cancer
    explainer = LEXExplainer(**FAST, **options).fit(X, y)
    n, D = X.shape
    importance = explainer.explain(X)
    assert importance.shape == (n, D) and ((importance >= 0) & (importance <= 1 + 1e-6)).all()
    selection = explainer.select(X)
    assert selection.shape == (n, D) and set(np.unique(selection)) <= {0, 1}
    if explainer.mask == "subset":
        assert (selection.sum(1) == explainer.k).all()
    proba = explainer.predict_proba(X, num_samples=5)
    assert proba.shape == (n, 2) and np.allclose(proba.sum(1), 1, atol=1e-5)
    assert set(explainer.predict(X, num_samples=5)) <= set(explainer.classes_)
    assert explainer.sample_masks(X[:4], num_samples=3).shape == (3, 4, D)
    assert len(explainer.losses_) == FAST["epochs"]


def test_string_labels_and_enumerate(cancer):
    X, y = cancer
    X = X[:, :4]
    labels = np.where(y == 1, "benign", "malignant")
    explainer = LEXExplainer(**FAST, mask="bernoulli", l1=0.05, estimator="enumerate")
    explainer.fit(X, labels)
    assert set(explainer.predict(X, num_samples=3)) <= {"benign", "malignant"}


def test_regression():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(128, 5)).astype(np.float32)
    y = 2 * X[:, 0] + 0.1 * rng.normal(size=128)
    explainer = LEXExplainer(**FAST, k=2, task="regression").fit(X, y)
    assert explainer.predict(X, num_samples=3).shape == (128,)
    with pytest.raises(ValueError, match="classification"):
        explainer.predict_proba(X)


def test_save_and_load_give_the_same_explanations(cancer, tmp_path):
    X, y = cancer
    explainer = LEXExplainer(**FAST, k=4, imputer="marginal").fit(X, y)
    explainer.save(tmp_path / "model.pt")
    restored = LEXExplainer.load(tmp_path / "model.pt")
    assert np.allclose(restored.explain(X), explainer.explain(X))
    assert restored.get_params() == explainer.get_params()
    torch.manual_seed(0)
    a = restored.predict_proba(X[:10], num_samples=4)
    torch.manual_seed(0)
    b = explainer.predict_proba(X[:10], num_samples=4)
    assert np.allclose(a, b)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(k=0), "1 <= k <= D"),
        (dict(k=31), "1 <= k <= D"),
        (dict(k=None), "needs the number of features k"),
        (dict(k=2, imputer="zero"), "Unknown imputer 'zero'; valid choices"),
        (dict(k=2, estimator="rebarr"), "Unknown estimator"),
        (dict(k=2, mask="gumbel"), "Unknown mask"),
        (dict(k=2, task="ranking"), "Unknown task"),
        (dict(k=2, estimator="concrete", imputer="gaussian"), r"single \(constant\) imputation"),
        (dict(k=2, estimator="vimco", num_masks=1), "num_masks >= 2"),
        (dict(lr="fast"), "lr must be a number >= 0"),
        (dict(lr=-1e-3), "lr must be a number >= 0"),
        (dict(temperature=float("nan")), "temperature must be a number >= 0"),
        (dict(l1=-0.1), "l1 must be a number >= 0"),
        (dict(epochs=2.5), "epochs must be an int >= 1"),
        (dict(num_masks=2.0), "num_masks must be an int >= 1"),
        (dict(seed=-1), "seed must be an int >= 0"),
        (dict(selector_hidden=(16, 0)), "selector_hidden must be a sequence"),
        (dict(predictor_hidden=16), "predictor_hidden must be a sequence"),
        (dict(bayesian="yes"), "bayesian must be True or False"),
        (dict(device="foo"), "Unknown device 'foo'"),
    ],
)
def test_bad_options_are_refused(cancer, options, message):
    X, y = cancer
    with pytest.raises(ValueError, match=message):
        LEXExplainer(**{**FAST, "k": 2, **options}).fit(X, y)


def test_bad_data_is_refused(cancer, tmp_path):
    X, y = cancer
    explainer = LEXExplainer(**FAST, k=2)
    with pytest.raises(ValueError, match="NaN"):
        explainer.fit(np.where(X > 2, np.nan, X), y)
    with pytest.raises(ValueError, match="shape"):
        explainer.fit(X, y[:-1])
    with pytest.raises(ValueError, match="2-D"):
        explainer.fit(X[0], y)
    with pytest.raises(ValueError, match="single class"):
        explainer.fit(X, np.zeros(len(X)))
    with pytest.raises(ValueError, match="continuous values"):  # not one class per value
        explainer.fit(X, y + np.linspace(0.1, 0.9, len(y)))
    explainer.fit(X, y)
    for num_samples in (0, -5, 2.5):
        with pytest.raises(ValueError, match="num_samples"):
            explainer.predict_proba(X, num_samples=num_samples)
        with pytest.raises(ValueError, match="num_samples"):
            explainer.sample_masks(X, num_samples)
    assert explainer.predict(X[:3], num_samples=np.int64(2)).shape == (3,)
    with pytest.raises(ValueError, match="30 features"):
        explainer.explain(X[:, :5])
    with pytest.raises(ValueError, match="NaN"):
        explainer.select(np.full_like(X, np.nan))
    with pytest.raises(CheckpointError, match="not found"):
        LEXExplainer.load(tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError):
        LEXExplainer.load(tmp_path / "bad.pt")
    save_checkpoint(tmp_path / "run.pt", {"config": {"bound": "PathwiseBound"}, "model": {}})
    with pytest.raises(CheckpointError, match="resume=True"):  # a lexppl.fit run checkpoint
        LEXExplainer.load(tmp_path / "run.pt")
    with pytest.raises(ValueError, match="imputer_data has 5 features"):
        LEXExplainer(**FAST, k=2, imputer="gaussian").fit(X, y, imputer_data=X[:, :5])


def test_option_values_from_numpy_are_accepted(cancer):
    # As a parameter grid gives them (np.arange, np.linspace, np.array of sizes).
    X, y = cancer
    options = dict(FAST, k=np.int64(2), lr=np.float64(1e-3))
    options.update(selector_hidden=np.array([16]), bayesian=np.bool_(False))
    assert LEXExplainer(**options).fit(X, y).explain(X[:3]).shape == (3, X.shape[1])
    # scikit-learn's conventions for flags and sizes: verbose=0/1, ranges.
    options = dict(FAST, k=2, verbose=0, mask_as_input=0, predictor_hidden=range(8, 9))
    assert LEXExplainer(**options).fit(X, y).explain(X[:3]).shape == (3, X.shape[1])


def test_numpy_options_train_and_save_as_plain_python(cancer, tmp_path):
    # Counts from a parameter grid are numpy ints; a checkpoint read with weights_only=True
    # holds plain Python only, so the options are saved as such.
    X, y = cancer
    options = dict(FAST, k=np.int64(2), lr=np.float64(1e-3), epochs=np.int64(1))
    options.update(num_masks=np.int64(2), seed=np.int64(0), predictor_hidden=range(8, 9))
    options.update(selector_hidden=np.array([16]))
    explainer = LEXExplainer(**options).fit(X, y)
    explainer.save(tmp_path / "model.pt")
    restored = LEXExplainer.load(tmp_path / "model.pt")
    np.testing.assert_array_equal(restored.select(X), explainer.select(X))
    assert restored.get_params()["selector_hidden"] == (16,)


def test_the_fitted_model_keeps_its_options_after_set_params(cancer, tmp_path):
    X, y = cancer
    explainer = LEXExplainer(**FAST, k=2).fit(X, y)
    explainer.set_params(k=5, task="regression", imputer="gaussian", bayesian=True)
    assert (explainer.select(X[:3]).sum(1) == 2).all()
    assert explainer.predict(X[:3]).shape == (3,) and set(explainer.predict(X)) <= {0, 1}
    explainer.save(tmp_path / "model.pt")
    restored = LEXExplainer.load(tmp_path / "model.pt")
    assert restored.get_params()["k"] == 2 and (restored.select(X[:3]).sum(1) == 2).all()
    with pytest.raises(ValueError, match="fitted with bayesian=True"):
        explainer.credible_interval(X[:3])
    # An explainer pickled before fitted_params_ existed reads its params instead.
    explainer.set_params(k=2, task="classification", imputer="constant", bayesian=False)
    del explainer.fitted_params_
    assert set(explainer.predict(X[:5])) <= {0, 1}
    explainer.save(tmp_path / "older.pt")


def test_fit_and_predict_leave_the_callers_random_generators_as_they_were(cancer):
    import random

    X, y = cancer

    def draws():
        return np.random.rand(), random.random(), float(torch.rand(()))

    np.random.seed(1), random.seed(1), torch.manual_seed(1)
    expected = draws()
    np.random.seed(1), random.seed(1), torch.manual_seed(1)
    explainer = LEXExplainer(**FAST, k=2).fit(X, y)
    first = explainer.predict_proba(X[:20])
    assert draws() == expected
    # Predictions draw their masks from seed: the same X gives the same answer.
    np.testing.assert_array_equal(explainer.predict_proba(X[:20]), first)


def test_predict_and_score_before_fit_raise_not_fitted(cancer):
    from sklearn.exceptions import NotFittedError

    X, y = cancer
    with pytest.raises(NotFittedError):
        LEXExplainer(k=2).predict(X)
    with pytest.raises(NotFittedError):
        LEXExplainer(k=2).score(X, y)


def test_a_refused_refit_keeps_the_previous_fit_and_a_refit_starts_clean(cancer):
    X, y = cancer
    explainer = LEXExplainer(**FAST, k=2).fit(X, y)
    model, masks = explainer.model_, explainer.select(X)
    with pytest.raises(ValueError, match="1 <= k <= D"):
        explainer.fit(X[:, :1], y)  # k = 2 > D = 1
    assert explainer.model_ is model and explainer.n_features_in_ == X.shape[1]
    np.testing.assert_array_equal(explainer.select(X), masks)
    explainer.set_params(task="regression").fit(X, y.astype(np.float32))
    assert not hasattr(explainer, "classes_")


def test_score_and_tags_follow_scikit_learn(cancer):
    from sklearn.base import is_classifier, is_regressor
    from sklearn.model_selection import GridSearchCV

    X, y = cancer
    assert is_classifier(LEXExplainer(k=2)) and is_regressor(LEXExplainer(task="regression"))
    search = GridSearchCV(LEXExplainer(**FAST), {"k": [2, 5]}, cv=2).fit(X, y)
    explainer = search.best_estimator_
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()  # scored by .score
    torch.manual_seed(0)
    score = explainer.score(X, y)
    torch.manual_seed(0)  # the same 100 masks: score is the accuracy of predict
    assert score == float(np.mean(explainer.predict(X) == y))


def test_unfitted_explainer_raises():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        LEXExplainer(k=1).explain(np.zeros((1, 3)))


class _TorchBlackBox(torch.nn.Module):
    # A fixed "black box": logistic regression on the first feature, returning probabilities.
    def forward(self, x):
        p = torch.sigmoid(3 * x[..., :1])
        return torch.cat([1 - p, p], dim=-1)


@pytest.mark.parametrize("regime", ["surrogate", "self", "fixed-theta"])
def test_post_hoc_regimes(cancer, regime):
    X, y = cancer
    black_box = _TorchBlackBox()
    explainer = LEXExplainer(**FAST, k=3, regime=regime)
    labels = y if regime == "fixed-theta" else None
    explainer.fit(X, labels, black_box=black_box)
    assert explainer.regime_ == regime
    proba = explainer.predict_proba(X[:8], num_samples=4)
    assert proba.shape == (8, 2) and np.allclose(proba.sum(1), 1, atol=1e-5)
    if regime != "surrogate":  # the black box is the fixed predictor
        assert explainer.model_.predictor.black_box is black_box


@pytest.mark.parametrize("regime", ["self", "fixed-theta"])
def test_a_black_box_with_batch_norm_is_left_as_it_was(cancer, regime):
    # The black box is the fixed predictor: training the selector must not overwrite its
    # batch norm statistics (it would, in train mode).
    X, y = cancer
    torch.manual_seed(0)
    black_box = torch.nn.Sequential(MLP(X.shape[1], 2, (8,), batch_norm=True), torch.nn.Softmax(-1))
    black_box.eval()
    before = [b.clone() for b in black_box.buffers()]
    labels = y if regime == "fixed-theta" else None
    LEXExplainer(**FAST, k=3, regime=regime).fit(X, labels, black_box=black_box)
    assert all(torch.equal(b, a) for b, a in zip(before, black_box.buffers()))


@pytest.mark.parametrize("regime", ["self", "fixed-theta"])
def test_checkpoints_leave_the_users_black_box_alone(cancer, tmp_path, regime):
    # The black box is the user's model: a checkpoint holds none of its weights, and loading
    # does not write into the module passed to load().
    X, y = cancer
    torch.manual_seed(0)
    black_box = torch.nn.Sequential(torch.nn.Linear(X.shape[1], 2), torch.nn.Softmax(-1))
    labels = y if regime == "fixed-theta" else None
    explainer = LEXExplainer(**FAST, k=3, regime=regime).fit(X, labels, black_box=black_box)
    explainer.save(tmp_path / "model.pt")
    saved = torch.load(tmp_path / "model.pt", weights_only=True)["model"]
    assert not any("black_box" in key for key in saved)
    other = torch.nn.Sequential(torch.nn.Linear(X.shape[1], 2), torch.nn.Softmax(-1))
    before = [p.clone() for p in other.parameters()]
    restored = LEXExplainer.load(tmp_path / "model.pt", black_box=other)
    assert all(torch.equal(b, a) for b, a in zip(before, other.parameters()))
    restored_masks = LEXExplainer.load(tmp_path / "model.pt", black_box=black_box).select(X)
    np.testing.assert_array_equal(restored_masks, explainer.select(X))
    assert restored.model_.predictor.black_box is other


def test_surrogate_post_hoc_on_an_sklearn_model(cancer, tmp_path):
    from sklearn.linear_model import LogisticRegression

    X, y = cancer
    model = LogisticRegression(max_iter=500).fit(X, y)
    explainer = LEXExplainer(**FAST, k=5).fit(X, black_box=model.predict_proba)
    assert explainer.regime_ == "surrogate" and list(explainer.classes_) == [0, 1]
    explainer.save(tmp_path / "m.pt")
    restored = LEXExplainer.load(tmp_path / "m.pt")
    assert np.allclose(restored.explain(X), explainer.explain(X))


def test_regime_errors(cancer, tmp_path):
    X, y = cancer
    with pytest.raises(ValueError, match="needs labels y"):
        LEXExplainer(**FAST, k=2).fit(X)
    with pytest.raises(ValueError, match="needs a black_box"):
        LEXExplainer(**FAST, k=2, regime="surrogate").fit(X, y)
    with pytest.raises(ValueError, match=r"must be a\s+torch module"):
        LEXExplainer(**FAST, k=2, regime="self").fit(X, black_box=lambda a: a)
    with pytest.raises(ValueError, match="class probabilities"):
        LEXExplainer(**FAST, k=2).fit(X, black_box=lambda a: a[:, :3])
    with pytest.raises(ValueError, match="Unknown regime"):
        LEXExplainer(**FAST, k=2, regime="posthoc").fit(X, y)
    # Nothing given is silently ignored: labels in a post-hoc regime, a black box in situ.
    with pytest.raises(ValueError, match="not both"):
        LEXExplainer(**FAST, k=2).fit(X, y, black_box=_TorchBlackBox())
    with pytest.raises(ValueError, match="would ignore the black_box"):
        LEXExplainer(**FAST, k=2, regime="in-situ").fit(X, y, black_box=_TorchBlackBox())
    with pytest.raises(ValueError, match="class probabilities"):
        LEXExplainer(**FAST, k=2).fit(X, black_box=lambda a: None)
    # fixed-theta: the black box is LEX's predictor, so it is checked as in the other regimes.
    three_classes = torch.nn.Sequential(torch.nn.Linear(X.shape[1], 3), torch.nn.Softmax(-1))
    with pytest.raises(ValueError, match="3 classes, but y has 2"):
        LEXExplainer(**FAST, k=2, regime="fixed-theta").fit(X, y, black_box=three_classes)
    logits = torch.nn.Linear(X.shape[1], 2)
    with pytest.raises(ValueError, match="class probabilities"):
        LEXExplainer(**FAST, k=2, regime="fixed-theta").fit(X, y, black_box=logits)
    explainer = LEXExplainer(**FAST, k=2, regime="self").fit(X, black_box=_TorchBlackBox())
    explainer.save(tmp_path / "self.pt")
    with pytest.raises(CheckpointError, match="black_box=model"):
        LEXExplainer.load(tmp_path / "self.pt")
    restored = LEXExplainer.load(tmp_path / "self.pt", black_box=_TorchBlackBox())
    assert np.allclose(restored.explain(X), explainer.explain(X))


def test_bayesian_explainer(cancer, tmp_path):
    X, y = cancer
    explainer = LEXExplainer(**dict(FAST, lr=1e-2), k=3, bayesian=True).fit(X, y)
    low, high = explainer.credible_interval(X[:5], num_samples=20)
    assert low.shape == (5, 30) and (low <= high).all()
    idata = explainer.to_inference_data(X[:5], y[:5], num_samples=8, num_chains=2)
    assert "selection_probability" in idata.posterior
    with pytest.raises(ValueError, match="fitted classes"):
        explainer.to_inference_data(X[:5], y[:5] + 2)
    explainer.save(tmp_path / "b.pt")
    restored = LEXExplainer.load(tmp_path / "b.pt")
    assert restored.bayesian and restored.explain(X[:5]).shape == (5, 30)
    with pytest.raises(ValueError, match="bayesian=True"):
        LEXExplainer(**FAST, k=3).fit(X, y).credible_interval(X)


def test_bayesian_select_is_the_top_k_of_the_posterior_importance(cancer):
    # select() once drew the selector's weights from the prior (a new draw per call and per
    # layer) instead of using the posterior: with the same weight draws it must be the top k
    # of explain(), the posterior selection probabilities.
    X, y = cancer
    explainer = LEXExplainer(**dict(FAST, lr=1e-2), k=3, bayesian=True).fit(X, y)
    torch.manual_seed(1)
    selection = explainer.select(X[:50])
    torch.manual_seed(1)
    importance = explainer.explain(X[:50])
    top = np.zeros_like(selection)
    np.put_along_axis(top, np.argsort(-importance, axis=1)[:, :3], 1, axis=1)
    assert selection.sum(1).tolist() == [3] * 50
    np.testing.assert_array_equal(selection, top)
    with pytest.raises(RuntimeError, match="needs selector weights"):
        explainer.model_.mask_distribution(torch.zeros(2, 30))


# ---------------------------------------------------------------------------- method=
PRESET = dict(epochs=2, batch_size=64, lr=1e-3, selector_hidden=(16,), predictor_hidden=(16,))


@pytest.mark.parametrize(
    ("method", "options"),
    [
        ("l2x", dict(k=3)),
        ("invase", dict(l1=0.1)),
        ("realx", dict(l1=0.1, pretrain_epochs=1)),
        ("basex", dict(l1=0.1)),
        ("rationale", dict(l1=0.01)),
    ],
)
@pytest.mark.filterwarnings("ignore::lexppl.EmptySelectionWarning")  # 2 epochs; tested below
def test_methods_fit_explain_select_predict(cancer, method, options):
    X, y = cancer
    X = X[:, :8]
    explainer = LEXExplainer(**PRESET, method=method, **options).fit(X, y)
    n, D = X.shape
    importance = explainer.explain(X)
    assert importance.shape == (n, D) and ((importance >= 0) & (importance <= 1 + 1e-6)).all()
    selection = explainer.select(X)
    assert selection.shape == (n, D) and set(np.unique(selection)) <= {0, 1}
    if method == "l2x":
        assert (selection.sum(1) == 3).all()
    proba = explainer.predict_proba(X, num_samples=3)
    assert proba.shape == (n, 2) and np.allclose(proba.sum(1), 1, atol=1e-5)
    assert explainer.regime_ == "in-situ" and len(explainer.losses_) == 2


def test_method_trains_exactly_the_preset(cancer):
    from lexppl.methods import invase

    X, y = cancer
    explainer = LEXExplainer(**PRESET, method="invase", l1=0.2, seed=3).fit(X, y)
    torch.manual_seed(3)
    preset = invase(30, 2, lam=0.2, selector_hidden=(16,), predictor_hidden=(16,))
    # The explainer's training settings (its default weight_decay 1e-3 among them) override
    # the preset's; the preset's decayed_parameters stay.
    preset.train(
        torch.as_tensor(X),
        torch.as_tensor(y),
        epochs=2,
        batch_size=64,
        lr=1e-3,
        weight_decay=1e-3,
        seed=3,
    )
    assert type(explainer.model_.regularizer) is type(preset.model.regularizer)
    assert explainer.model_.regularizer.strength == 0.2
    assert np.allclose(explainer.explain(X), preset.model.importance(torch.as_tensor(X)).numpy())


def test_ail_method_explains_a_black_box_and_reloads_with_it(cancer, tmp_path):
    X, _ = cancer
    black_box = _TorchBlackBox()
    explainer = LEXExplainer(**PRESET, method="ail", k=2).fit(X, black_box=black_box)
    assert explainer.regime_ == "surrogate" and list(explainer.classes_) == [0, 1]
    selection = explainer.select(X)
    assert selection.shape == X.shape and (selection.sum(1) == 2).all()
    explainer.save(tmp_path / "ail.pt")
    with pytest.raises(CheckpointError, match="black_box=model"):
        LEXExplainer.load(tmp_path / "ail.pt")
    restored = LEXExplainer.load(tmp_path / "ail.pt", black_box=black_box)
    assert restored.method == "ail" and restored.get_params() == explainer.get_params()
    assert np.allclose(restored.explain(X), explainer.explain(X))
    assert np.array_equal(restored.select(X), selection)


def test_l2x_method_post_hoc_and_save_load(cancer, tmp_path):
    X, _ = cancer
    explainer = LEXExplainer(**PRESET, method="l2x", k=2).fit(X, black_box=_TorchBlackBox())
    assert explainer.regime_ == "surrogate"
    explainer.save(tmp_path / "l2x.pt")
    restored = LEXExplainer.load(tmp_path / "l2x.pt")
    assert restored.method == "l2x" and np.allclose(restored.explain(X), explainer.explain(X))


@pytest.mark.parametrize(
    ("options", "fit_kwargs", "message"),
    [
        (dict(method="shap"), {}, r"Unknown method 'shap'; valid choices are \['lex', 'l2x'"),
        (dict(method="l2x", k=2, imputer="gaussian"), {}, "imputer='gaussian'"),
        (dict(method="l2x", k=2, estimator="reinforce"), {}, "estimator='reinforce'"),
        (dict(method="l2x", k=2, l1=0.1), {}, "l1=0.1"),
        (dict(method="l2x"), {}, "set k"),
        (dict(method="invase", k=3), {}, "k=3"),
        (dict(method="invase", num_masks=5), {}, "num_masks=5"),
        (dict(method="basex", regime="self"), {}, "regime='self'"),
        (dict(method="rationale", bayesian=True), {}, "bayesian=True"),
        (dict(method="invase", coherence=1.0), {}, "coherence=1.0"),
        (dict(method="basex", pretrain_epochs=3), {}, "pretrain_epochs=3"),
        (dict(k=2, coherence=1.0), {}, "method='rationale' only"),
        (dict(method="ail", k=2), dict(y=True, black_box=True), "not from labels"),
        (dict(method="ail", k=2), dict(black_box=None), "explains a black box"),
        (dict(method="invase"), dict(black_box=True), "trained on labels y"),
    ],
)
def test_method_conflicts_are_refused(cancer, options, fit_kwargs, message):
    X, y = cancer
    labels = y if fit_kwargs.get("y", not fit_kwargs.get("black_box")) else None
    black_box = _TorchBlackBox() if fit_kwargs.get("black_box") else None
    with pytest.raises(ValueError, match=message):
        LEXExplainer(**PRESET, **options).fit(X, labels, black_box=black_box)


def test_options_equal_to_the_presets_are_accepted(cancer):
    X, y = cancer
    explainer = LEXExplainer(
        **PRESET,
        method="realx",
        mask="bernoulli",
        estimator="rebar",
        temperature=0.1,
        num_masks=1,
        fix_predictor=True,
        l1=0.1,
        pretrain_epochs=1,
    )
    explainer.fit(X[:, :5], y)
    assert explainer.explain(X[:, :5]).shape == (200, 5)


def test_distributed_is_for_lex_without_a_bayesian_selector():
    X, y = np.random.default_rng(0).normal(size=(20, 4)), np.arange(20) % 2
    with pytest.raises(ValueError, match="distributed=True"):
        LEXExplainer(k=2, distributed=True, bayesian=True).fit(X, y)
    with pytest.raises(ValueError, match="distributed=True"):
        LEXExplainer(method="invase", distributed=True).fit(X, y)


def test_pretraining_a_predictor_that_also_sees_the_mask():
    X, y = np.random.default_rng(0).normal(size=(40, 4)), np.arange(40) % 2
    explainer = LEXExplainer(k=2, mask_as_input=True, pretrain_epochs=1, epochs=1, batch_size=20)
    assert explainer.fit(X, y).predict_proba(X[:3]).shape == (3, 2)


@pytest.fixture(scope="module")
def s1_head():
    from lexppl.data import load

    train = load("s1", "train")
    return train.x[:2000], train.y[:2000]


S1_GAUSSIAN = dict(imputer="gaussian", epochs=5, batch_size=200, lr=1e-3, seed=0)


def test_a_bernoulli_selector_that_stops_selecting_is_reported(s1_head):
    # LEX with Gaussian imputation at REAL-X's λ on S1 stops selecting within a few epochs
    # (benchmarks/results/lexmi_s1_bernoulli.md: mode empty in 6 seeds of 10 at 60 epochs).
    X, y = s1_head
    expected = "no feature for 100% of the training rows"
    with pytest.warns(EmptySelectionWarning, match=expected) as record:
        explainer = LEXExplainer(mask="bernoulli", l1=0.05, **S1_GAUSSIAN).fit(X, y)
    assert explainer.select(X).sum() == 0
    assert "pre-train the predictor (pretrain_epochs=0 now)" in str(record[0].message)


def test_a_pretrained_predictor_keeps_the_bernoulli_selector_selecting(s1_head):
    # The remedy the warning names: the same fit after 20 epochs of predictor pre-training on
    # Bernoulli(1/2) masks (pytest turns the warning into an error).
    X, y = s1_head
    explainer = LEXExplainer(mask="bernoulli", l1=0.05, pretrain_epochs=20, **S1_GAUSSIAN)
    assert (explainer.fit(X, y).select(X).sum(1) > 0).all()


def test_a_selecting_selector_is_not_reported(s1_head):
    # The same fit with a tenth of the penalty, and with k-subset masks, which always keep k:
    # pytest turns any warning into an error.
    X, y = s1_head
    explainer = LEXExplainer(mask="bernoulli", l1=0.005, **S1_GAUSSIAN).fit(X, y)
    assert (explainer.select(X).sum(1) > 0).mean() > 0.5
    LEXExplainer(k=5, **S1_GAUSSIAN).fit(X, y)


def test_an_empty_preset_selection_is_reported_without_the_subset_advice(cancer):
    with pytest.warns(EmptySelectionWarning, match="penalty l1=20 ") as record:
        LEXExplainer(method="invase", l1=20.0, epochs=10, batch_size=64, lr=1e-3).fit(*cancer)
    assert "mask='subset'" not in str(record[0].message)


def test_an_empty_selection_near_one_half_asks_for_more_epochs(cancer):
    # Two epochs leave rationale selection's probabilities just under 1/2: the mode is empty
    # but the penalty has not won.
    X, y = cancer
    with pytest.warns(EmptySelectionWarning, match="still near 1/2. Train for more epochs"):
        LEXExplainer(**PRESET, method="rationale", l1=0.01).fit(X[:, :8], y)
