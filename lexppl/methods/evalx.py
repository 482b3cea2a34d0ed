"""
EVAL-X: a frozen evaluator of explanations trained on random masks.

Jethani et al. (2021), *Have We Learned to Explain?* (AISTATS), §"EVAL-X", eq. 5:

.. math::

    \\max_\\eta\\; \\mathbb E_{x, y}\\, \\mathbb E_{r \\sim \\mathcal B(1/2)^D}
        \\big[\\log q_\\eta(y \\mid m(x, r))\\big],

i.e. a predictor trained on inputs whose features are kept independently with probability 1/2
(``r_j = 1[u_j > 0.5]``, ``u ~ U(0, 1)`` in ``rajesh-lab/realx``) and imputed (0) otherwise.
Because the masks are independent of ``x``, a selection that *encodes* the label in which
features it keeps carries no information for the evaluator; at the optimum
``q_η(y | m(x, r)) = F(y | x_R)`` for every subset ``R`` (paper App. E). A method's selections
``s`` are then fed to the frozen evaluator and scored against the true labels: **eACC** and
**eAUROC** (notes ``baseline-papers-extraction.md`` §1.4, §1.7, §4.2 item 2).

Which masks to score is the caller's choice (notes §4.5): the REAL-X code scores **hard
Bernoulli samples** of the selector (``s = 1[logit + logistic noise > 0]``), *not* masks
thresholded at 1/2; for L2X one uses its top-k selection. :meth:`EvalX.score` accepts any binary
masks, one per instance ``(N, D)`` (e.g. thresholded or top-k) or ``S`` sampled masks per
instance ``(S, N, D)`` (e.g. ``LEX.explain(x, num_samples=100)``); with samples, each metric is
computed per mask sample and then averaged over samples, as LEX does with 100 masks.

An evaluator is only as good as its fit of eq. 5: :meth:`EvalX.log_likelihood` estimates that
objective on held-out data, so its training (epochs, weight decay, imputation, a mask input)
can be chosen without looking at any explainer's selections. Where the data's law is known (the
synthetic datasets), :meth:`EvalX.from_predictor` with
:class:`~lexppl.data.synthetic.TrueResponse` and
:class:`~lexppl.imputers.GaussianImputer` gives the optimum itself, :math:`F(y \\mid x_R)`,
free of any training's error.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import Tensor, nn

from lexppl.imputers.base import Imputer, NotFittedError
from lexppl.imputers.constant import ConstantImputer
from lexppl.inputs import as_inputs, as_labels
from lexppl.metrics.prediction import accuracy, auroc
from lexppl.models.groups import Identity
from lexppl.models.lex import LEX
from lexppl.models.likelihoods import BernoulliLikelihood, CategoricalLikelihood
from lexppl.nets import check_device, eval_mode, module_device, module_dtype, torch_seed
from lexppl.train import pretrain_predictor

__all__ = ["EvalX"]


class EvalX(nn.Module):
    """
    The EVAL-X evaluator: ``predictor`` trained on Bernoulli(1/2)-masked, imputed inputs, then
    frozen.

    :param ~torch.nn.Module predictor: maps imputed inputs ``(M, ...)`` to logits ``(M, C)``
        (or ``(M, 1)`` with a :class:`~lexppl.models.BernoulliLikelihood`). REAL-X uses a fresh
        copy of its predictor's architecture (``clone_model(predictor)``).
    :param ~lexppl.imputers.Imputer imputer: fills the features a mask turns off; default
        ``ConstantImputer(0.0)``, the zero imputation of every REAL-X experiment.
    :param likelihood: :class:`~lexppl.models.CategoricalLikelihood` (default) or
        :class:`~lexppl.models.BernoulliLikelihood`.
    :param bool mask_as_input: also give the predictor the mask, concatenated to the imputed
        input along its first feature dimension (as :class:`~lexppl.models.LEX`'s
        ``mask_as_input``); the predictor then takes twice as many features. A 0-imputed
        predictor cannot tell an observed 0 from a missing feature; seeing the mask it can (the
        REAL-X paper's footnote 2 recommends a mask token outside the input's support for this
        reason). The masks are still independent of ``x`` in training, so the mask pattern
        carries no label information and an encoding stays exposed.

    Example::

        evalx = EvalX(MLP(11, 2, hidden=(200, 200))).fit(train.x, train.y, epochs=100)
        evalx.score(test.x, test.y, selector_masks)  # {"eacc": ..., "eauroc": ...}
    """

    def __init__(
        self,
        predictor: nn.Module,
        imputer: Imputer | None = None,
        likelihood: nn.Module | None = None,
        mask_as_input: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(predictor, nn.Module):
            raise TypeError(f"EvalX predictor must be a torch module; got {predictor!r}.")
        imputer = ConstantImputer(0.0) if imputer is None else imputer
        if not isinstance(imputer, Imputer):
            raise TypeError(f"EvalX imputer must be an lexppl Imputer; got {imputer!r}.")
        likelihood = CategoricalLikelihood() if likelihood is None else likelihood
        if not isinstance(likelihood, CategoricalLikelihood | BernoulliLikelihood):
            raise TypeError(
                "EvalX scores classifiers: likelihood must be a CategoricalLikelihood or a "
                f"BernoulliLikelihood; got {likelihood!r}."
            )
        self.predictor = predictor
        self.imputer = imputer
        self.likelihood = likelihood
        self.mask_as_input = bool(mask_as_input)
        # A buffer, so that a checkpointed evaluator (state_dict) is restored as fitted.
        self.register_buffer("fitted_", torch.tensor(False))

    # ------------------------------------------------------------------ training
    def fit(
        self,
        X: Tensor,
        y: Tensor,
        epochs: int = 100,
        batch_size: int = 256,
        lr: float = 1e-3,
        seed: int = 0,
        *,
        weight_decay: float = 0.0,
        decayed_parameters: Callable[[LEX], Iterable[Tensor]] | None = None,
        device: str | torch.device | None = None,
        progress: bool = False,
    ) -> EvalX:
        """
        Train the predictor on EVAL-X's objective (eq. 5) and freeze it.

        Reuses :func:`lexppl.train.pretrain_predictor` (Adam on the negative log-likelihood of
        ``y`` given inputs masked by fresh Bernoulli(1/2) masks at every step); the imputer is
        fitted on ``X`` first when it needs data.

        :param X: training inputs ``(n, ...)``, e.g. images ``(n, C, H, W)``; cast to the
            predictor's dtype. :param y: class indices ``(n,)`` (0./1. for a Bernoulli
            likelihood).
        :param int epochs: passes over the data. :param int batch_size: mini-batch size.
        :param float lr: Adam learning rate. :param float weight_decay: Adam weight decay.
        :param decayed_parameters: the parameters the decay reaches, a function of the model
            (:func:`lexppl.fit`); default: all of the predictor's.
        :param int seed: seeds the masks and the shuffling.
        :param device: where to train; default: where the predictor's parameters are.
        :param bool progress: show a progress bar.
        :returns: ``self``, frozen (``requires_grad_(False)``, ``eval()``).
        """
        X = as_inputs(X, "X")
        X = X.to(module_dtype(self, X.dtype))  # a float32 predictor refuses float64 inputs
        y = as_labels(y, X.shape[0])
        if isinstance(self.likelihood, BernoulliLikelihood):
            y = y.float()
        device = self._device() if device is None else check_device(device)
        self.to(device)
        if self.imputer.requires_fit and not self.imputer.is_fitted:
            self.imputer.fit(X.to(device))
        self.predictor.requires_grad_(True)
        # The training masks are flat (n, D): for inputs with more dimensions (images), the
        # groups lay them onto x's shape.
        groups = Identity(tuple(X.shape[1:])) if X.dim() > 2 else None
        model = LEX(
            nn.Identity(),
            self.predictor,
            self.imputer,
            _unused,
            self.likelihood,
            mask_as_input=self.mask_as_input,
            groups=groups,
        )
        pretrain_predictor(
            model,
            X,
            y,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            decayed_parameters=decayed_parameters,
            seed=seed,
            device=device,
            progress=progress,
        )
        self.predictor.requires_grad_(False)
        self.eval()
        self.fitted_.fill_(True)
        return self

    @classmethod
    def from_predictor(
        cls,
        predictor: nn.Module,
        imputer: Imputer | None = None,
        likelihood: nn.Module | None = None,
        mask_as_input: bool = False,
    ) -> EvalX:
        """
        An evaluator from a predictor that is already trained, or known: frozen as given,
        without :meth:`fit`. The arguments are those of the constructor.

        With the true response of a synthetic dataset and the true conditional of the features
        left out, it is the evaluator that EVAL-X's training approximates, :math:`F(y \\mid
        x_R)` itself (eq. 5's optimum): ``EvalX.from_predictor(TrueResponse("s3"),
        GaussianImputer())``, scored with ``num_imputations`` draws per mask. It also scores
        with a predictor trained elsewhere on random masks, such as REAL-X's pre-trained one.

        :raises ValueError: if the imputer needs fitting and is not fitted.
        """
        evaluator = cls(predictor, imputer, likelihood, mask_as_input)
        if evaluator.imputer.requires_fit and not evaluator.imputer.is_fitted:
            raise ValueError(
                f"EvalX.from_predictor needs a fitted imputer; fit the "
                f"{type(evaluator.imputer).__name__} on training data first."
            )
        evaluator.predictor.requires_grad_(False)
        evaluator.eval()
        evaluator.fitted_.fill_(True)
        return evaluator

    # ------------------------------------------------------------------ prediction
    def _device(self) -> torch.device:
        # The whole evaluator's: a closed-form predictor (TrueResponse) has no parameters, but
        # the imputer's and ``fitted_``'s buffers follow ``.to(device)``.
        return module_device(self, torch.device("cpu"))

    def _probs(self, x_tilde: Tensor) -> Tensor:
        out = self.predictor(x_tilde)
        if isinstance(self.likelihood, BernoulliLikelihood):
            logit = out.reshape(out.shape[0])
            # sigmoid(-logit), not 1 - p: past a logit of about 17, 1 - p rounds to 0 in float32
            # and a log-likelihood of y = 0 was floored at log(tiny) = -87 nats. Probabilities
            # still underflow past a logit of about 87 (as softmax does): the floor is there.
            return torch.stack([torch.sigmoid(-logit), torch.sigmoid(logit)], dim=-1)
        return torch.softmax(out, dim=-1)

    def _imputed_probs(self, x: Tensor, z: Tensor, num_imputations: int) -> Tensor:
        """Probabilities ``(K, s, r, C)`` of ``K`` imputations of ``x`` ``(r, ...)`` under each
        of the masks ``z`` ``(s, r, ...)``, in one forward pass of ``K * s * r`` inputs."""
        x_tilde = self.imputer(x, z).sample((num_imputations,))  # (K, s, r, ...)
        if self.mask_as_input:  # along the first feature dimension, as LEX does
            x_tilde = torch.cat([x_tilde, z.expand_as(x_tilde)], dim=-(x.dim() - 1))
        flat = x_tilde.reshape((-1, *x_tilde.shape[3:]))
        return self._probs(flat).reshape((num_imputations, z.shape[0], x.shape[0], -1))

    @torch.no_grad()
    def predict_proba(
        self,
        x: Tensor,
        masks: Tensor,
        *,
        num_imputations: int = 1,
        batch_size: int | None = None,
    ) -> Tensor:
        """
        Class probabilities of the frozen evaluator given the selected features only.

        :param x: inputs ``(N, ...)``, cast to the predictor's dtype.
        :param masks: binary masks (1 = selected) over the ``D = x[0].numel()`` features,
            ``(N, D)`` or ``(S, N, D)``; a ``(N, ...)`` mask shaped like ``x`` also works.
        :param int num_imputations: imputations averaged per mask (matters only for a
            multiple imputer; a constant imputer is deterministic). The draws come from torch's
            global generator.
        :param batch_size: at most this many imputed inputs per forward pass, counting every
            mask sample, instance and imputation (``S * N * num_imputations`` in all): whole mask
            samples while they fit, else slices of the instances, else of the imputations;
            default: all at once.
        :returns: ``(N, C)`` for ``(N, D)`` masks, ``(S, N, C)`` for ``(S, N, D)`` masks, on the
            evaluator's device (``C = 2`` for a Bernoulli likelihood).
        """
        x, z, squeeze = self._check_inputs(x, masks)
        k = _count(num_imputations, "num_imputations")
        num_samples, n = z.shape[0], x.shape[0]
        budget = num_samples * n * k if batch_size is None else _count(batch_size, "batch_size")
        # Per forward pass: `draws` imputations of `rows` instances under `samples` masks, with
        # draws * rows * samples <= budget (one imputation of one instance at the least).
        draws = min(k, budget)
        rows = min(n, max(1, budget // draws))
        samples = max(1, budget // (draws * rows))
        out = []
        with eval_mode(self):
            for begin in range(0, num_samples, samples):
                zs = z[begin : begin + samples]  # (s, N, ...)
                parts = []
                for first in range(0, n, rows):
                    xr, zr = x[first : first + rows], zs[:, first : first + rows]
                    total = sum(
                        self._imputed_probs(xr, zr, min(draws, k - done)).sum(0)
                        for done in range(0, k, draws)
                    )
                    parts.append(total / k)  # (s, r, C): the mean over the k imputations
                out.append(torch.cat(parts, dim=1))
        probs = torch.cat(out, dim=0)
        return probs[0] if squeeze else probs

    def forward(self, x: Tensor, masks: Tensor) -> Tensor:
        """Same as :meth:`predict_proba`."""
        return self.predict_proba(x, masks)

    def score(self, x: Tensor, y: Tensor, masks: Tensor, **kwargs) -> dict[str, float]:
        """
        eACC and eAUROC of the selections ``masks`` (Jethani et al. 2021; notes §1.7).

        eACC is the accuracy of the evaluator's argmax, eAUROC the AUROC of its probabilities
        (positive-class column for two classes, one-vs-rest micro average otherwise, as the
        REAL-X code's ``roc_auc_score(..., 'micro')``), both against the true labels ``y`` and
        computed with :func:`lexppl.metrics.accuracy` / :func:`lexppl.metrics.auroc`: per mask
        sample, then averaged over the ``S`` samples of ``(S, N, D)`` masks.

        Give hard masks: Bernoulli samples of the selector (what the REAL-X code scores), or
        thresholded / top-k selections; both are accepted, and the report should say which.

        :param x: inputs ``(N, ...)``. :param y: labels ``(N,)``.
        :param masks: binary ``(N, D)`` or ``(S, N, D)``.
        :param kwargs: passed to :meth:`predict_proba`.
        :returns: ``{"eacc": float, "eauroc": float}``.
        """
        probs = self.predict_proba(x, masks, **kwargs).cpu()
        y = torch.tensor(np.asarray(y)) if not isinstance(y, Tensor) else y.cpu()
        if y.dim() == 1:  # class indices; (N, C) soft targets go to the metrics as they are
            y = as_labels(y, probs.shape[-2])
        return {"eacc": accuracy(probs, y), "eauroc": auroc(probs, y)}

    @torch.no_grad()
    def log_likelihood(
        self,
        x: Tensor,
        y: Tensor,
        *,
        num_masks: int = 16,
        seed: int = 0,
        batch_size: int | None = None,
    ) -> float:
        """
        EVAL-X's own objective (eq. 5) on ``(x, y)``: the mean of
        :math:`\\log q_\\eta(y \\mid m(x, r))` over the instances and ``num_masks`` fresh
        Bernoulli(1/2) masks ``r`` per instance.

        On held-out data this measures how well the evaluator fits what it is meant to fit,
        :math:`F(y \\mid x_R)` averaged over random subsets ``R``, without looking at any
        explainer's selections: use it to choose the evaluator's training (epochs, weight
        decay) before scoring explanations with :meth:`score`.

        :param x: inputs ``(N, ...)``, cast to the predictor's dtype. :param y: class indices
            ``(N,)`` (0 / 1 for a Bernoulli likelihood).
        :param int num_masks: masks drawn per instance (``>= 1``).
        :param int seed: seeds the masks and, for a multiple imputer, the imputations, from two
            independent streams: the same seed (and ``batch_size``, which orders the
            imputations' draws) gives the same value, and torch's global RNG state is left as
            it was.
        :param batch_size: at most this many masked inputs at once, as in
            :meth:`predict_proba`; the masks are drawn in chunks of that size too (give it
            for images: 16 masks of 10,000 MNIST images are 0.5 GB as floats).
        :returns: the mean log-likelihood in nats per instance (higher is better).
        """
        num_masks = _count(num_masks, "num_masks")
        if batch_size is not None:
            batch_size = _count(batch_size, "batch_size")
        x = as_inputs(x)
        n = x.shape[0]
        y = as_labels(y.reshape(-1) if isinstance(y, Tensor) else np.ravel(y), n)
        generator = torch.Generator().manual_seed(seed)
        # Masks are drawn chunk by chunk (as predict_proba batches them), so that memory stays
        # bounded by batch_size; the generator's stream makes the draws the same either way.
        chunk = num_masks if batch_size is None else max(1, batch_size // max(n, 1))
        total = 0.0
        # A multiple imputer draws from torch's global generator: seed a fork of it, so that
        # the imputations are reproducible too and the caller's RNG state is given back. Not
        # with `seed` itself: on the CPU the imputer's normal draws would then reuse the very
        # uniforms that chose the masks, and be biased where features are left out.
        imputation_seed = int(np.random.SeedSequence([seed % 2**64, 1]).generate_state(1)[0])
        with torch_seed(imputation_seed, self._device()):
            for begin in range(0, num_masks, chunk):
                size = min(chunk, num_masks - begin)
                masks = torch.rand((size, n, x.shape[1:].numel()), generator=generator) < 0.5
                total += self._log_likelihood_sum(x, y, masks, batch_size, check=begin == 0)
        return total / (num_masks * n)

    def _log_likelihood_sum(
        self, x: Tensor, y: Tensor, masks: Tensor, batch_size: int | None, check: bool
    ) -> float:
        # The sum of log q(y | m(x, r)) over the masks r (S, N, D) and the instances.
        probs = self.predict_proba(x, masks, batch_size=batch_size)  # (S, N, C)
        size = masks.shape[0]
        labels = y.to(probs.device).long()
        if check and (
            bool(((labels < 0) | (labels >= probs.shape[-1])).any())
            or bool((labels != y.to(probs.device)).any())
        ):
            raise ValueError(
                f"y must hold class indices in [0, {probs.shape[-1]}); got values from "
                f"{float(y.min()):g} to {float(y.max()):g}."
            )
        picked = probs.gather(-1, labels.expand(size, -1).unsqueeze(-1)).squeeze(-1)
        return float(picked.clamp_min(torch.finfo(probs.dtype).tiny).log().sum())

    # ------------------------------------------------------------------ checks
    def _check_inputs(self, x: Tensor, masks: Tensor) -> tuple[Tensor, Tensor, bool]:
        if not bool(self.fitted_):
            raise NotFittedError("EvalX is not fitted: call EvalX.fit(X, y) with training data.")
        device = self._device()
        x, masks = (
            as_inputs(x),
            torch.tensor(np.asarray(masks)) if not isinstance(masks, Tensor) else masks,
        )
        if x.dim() < 2:
            raise ValueError(f"x must have shape (N, ...); got {tuple(x.shape)}.")
        if x.shape[0] == 0:  # no instance to score: the metrics have nothing to average
            raise ValueError(f"x has no rows (shape {tuple(x.shape)}); give at least one.")
        # The predictor's dtype (a float32 network refuses float64 inputs) and device.
        x = x.to(device=device, dtype=module_dtype(self, x.dtype))
        n, num_features = x.shape[0], x.shape[1:].numel()
        if masks.shape == x.shape and x.dim() > 2:
            masks = masks.reshape(n, num_features)
        if masks.dim() not in (2, 3) or tuple(masks.shape[-2:]) != (n, num_features):
            raise ValueError(
                f"masks must have shape (N, D) or (S, N, D) with N={n}, D={num_features} "
                f"(x has shape {tuple(x.shape)}); got {tuple(masks.shape)}."
            )
        if masks.dtype == torch.bool:
            masks = masks.to(x.dtype)
        if not bool(((masks == 0) | (masks == 1)).all()):
            raise ValueError(
                "masks must be binary (1 = selected): sample them (e.g. LEX.explain) or "
                "threshold / take the top-k of an importance map first."
            )
        squeeze = masks.dim() == 2
        z = masks.reshape((-1, *x.shape)).to(device=device, dtype=x.dtype)
        return x, z, squeeze


def _count(value: object, name: str) -> int:
    """``value`` as an int >= 1 (numpy ints too, bools not), or a ValueError naming it."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an int >= 1; got {value!r}.")
    return int(value)


def _unused(logits: Tensor):  # the mask family of the internal LEX: pretraining replaces it
    raise RuntimeError("EvalX's internal LEX has no selector.")
