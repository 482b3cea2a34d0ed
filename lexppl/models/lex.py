"""LEX: latent variable as explanation, as a Pyro model (Senetaire et al., DESIGN §1)."""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Callable

import pyro
import pyro.poutine as poutine
import torch
from pyro.nn import PyroModule
from pyro.params.param_store import param_with_module_name
from torch import Tensor, nn
from torch.distributions import Distribution

from lexppl.imputers.base import Imputer
from lexppl.models.groups import FeatureGroups

__all__ = ["IMPUTATION", "LEX", "MASK", "OBSERVED"]

#: Values of ``site["infer"]["lex"]`` that tell the estimators what a sample site is, so that
#: they work whatever the site is called (a LEX inside a larger model has prefixed names).
MASK, IMPUTATION, OBSERVED = "mask", "imputation", "observed"


#: Rows (mask samples x imputations x inputs) per model call in :meth:`LEX.predict`.
_PREDICT_ROWS = 2**16


def _plate(name: str, size: int, dim: int):
    # A particle plate of size 1 is left out so that the default model has the plain shapes
    # of one draw: mask (N, D), imputation (N, ...), y (N,).
    return pyro.plate(name, size, dim=dim) if size > 1 else contextlib.nullcontext()


def _claim_store_name(name: str, module: nn.Module) -> None:
    # pyro.module keeps the store's tensors when a name is taken, so a second LEX of the same
    # name (e.g. two unnamed ones in a session) would hand SVI's optimiser the first one's
    # parameters and never train its own. The module being run claims the name instead.
    store = pyro.get_param_store()
    param_name, param = next(iter(module.named_parameters()))
    key = param_with_module_name(name, param_name)
    if key in store and store[key] is not param:
        for stale in [k for k in store.keys() if k.startswith(name + "$$$")]:
            try:
                del store[stale]
            except KeyError:
                # The tensor was also registered under another name (a module shared by two
                # models, e.g. a pre-training one): the store keeps one reverse entry per
                # tensor, already gone, while the name itself has been removed.
                pass


class LEX(PyroModule):
    r"""
    Latent Variable as Explanation (LEX): a predictor that only sees an explanation.

    .. math::

        p(y, \tilde x, z \mid x) = p_\theta(y \mid \tilde x)\; p_\iota(\tilde x \mid x, z)\;
            p_\gamma(z \mid x)

    (LEX paper eq. 4). The mask :math:`z \in \{0,1\}^D` (1 = selected) is drawn from the
    selector's distribution :math:`p_\gamma(z|x)` — the model's *prior* over explanations, not a
    guide; the unselected features are imputed by :math:`p_\iota`; the predictor
    :math:`f_\theta` sees the imputed input only. :meth:`model` declares, inside
    ``pyro.plate("data", N, dim=-1)``:

    - ``"mask"``: :math:`z \sim p_\gamma(\cdot|x)`, batch ``(L, N)``, event ``(D,)``;
    - ``"imputation"``: :math:`\tilde x \sim p_\iota(\cdot|x, z)`, batch ``(K, L, N)``; never
      scored (its distribution is ``mask(False)``): every proposal draws it from the model, so
      its density cancels, and most multiple imputers have none;
    - ``"y"``: :math:`y \sim` ``likelihood(predictor(x̃))``, observed when ``y`` is given;
    - ``"penalty"``: a ``pyro.factor`` with :math:`-\lambda \mathbb E[R(z)]` when a regulariser is
      set (paper eq. 6).

    ``L = num_masks`` and ``K = num_imputations`` are vectorised particle plates
    (``"masks"`` at dim -2, ``"imputations"`` at dim -3); a plate of size 1 is omitted, so
    the default call has the shapes of one draw. Everything is an ordinary Pyro site:
    ``poutine.trace``, ``Predictive``, ``poutine.condition(data={"mask": z})`` and
    ``poutine.do`` work on :meth:`model`. Train it with the bounds of :mod:`lexppl.infer`.

    :param ~torch.nn.Module selector: :math:`g_\gamma`, maps ``x`` of shape ``(N, ...)`` to mask
        logits ``(N, D)``.
    :param ~torch.nn.Module predictor: :math:`f_\theta`, maps imputed inputs ``(M, ...)`` to the
        likelihood's parameters ``(M, ...)``.
    :param ~lexppl.imputers.Imputer imputer: :math:`p_\iota`.
    :param callable mask_family: ``logits -> Distribution`` over masks with ``event_shape (D,)``,
        e.g. :class:`~lexppl.distributions.IndependentBernoulli` or
        ``functools.partial(KSubset, k=5)``.
    :param callable likelihood: predictor output ``->`` distribution of ``y``, e.g.
        :class:`~lexppl.models.CategoricalLikelihood`; any callable returning a Pyro
        distribution.
    :param callable regularizer: optional ``mask distribution -> penalty per datum`` such as
        :class:`~lexppl.models.L1Penalty`.
    :param str name: prefix for the site names (``"<name>.mask"``), so that several LEX blocks
        can live in one larger model.
    :param bool mask_as_input: also give the predictor the mask, concatenated to the imputed
        input along its first feature dimension (features of tabular data, channels of
        images), so that it can tell imputed from observed values; the predictor then takes
        twice as many features (channels).
    :param ~lexppl.models.groups.FeatureGroups groups: optional grouping of the input features
        (e.g. :class:`~lexppl.models.PatchGrid` image patches). The mask is then over the
        :math:`G` groups — the selector outputs ``(N, G)`` logits and the ``"mask"`` site has
        event ``(G,)`` — and the imputer (and the predictor, with ``mask_as_input``) receives
        the feature-level mask ``groups.expand(z)`` of shape ``(L, N, *input_shape)``. Inputs
        that do not fit the grouping raise a ``ValueError`` naming the expected and received
        shapes. :meth:`importance` and :meth:`explain` stay at the group level;
        :meth:`importance_map` gives the map over the input. ``None`` (default): one mask entry
        per feature, and the mask must broadcast to ``x``.

    .. note:: Under :class:`pyro.infer.SVI`, the networks' parameters are registered in Pyro's
        global parameter store under ``"<name or 'lex'>.selector..."`` etc. A model claims its
        names when it runs: an earlier model's entries under the same names are dropped from
        the store (not from that model), so SVI on a second unnamed LEX trains the second one.
        Two models run in one SVI step need distinct ``name``\ s. The plain-torch loop of
        :func:`lexppl.fit` does not use the store.

    **References**

    [1] H. Senetaire, D. Garreau, J. Frellsen, P.-A. Mattei, *Explainability as statistical
        inference*, ICML 2023.
    """

    def __init__(
        self,
        selector: nn.Module,
        predictor: nn.Module,
        imputer: Imputer,
        mask_family: Callable[[Tensor], Distribution],
        likelihood: Callable[[Tensor], Distribution],
        regularizer: Callable[[Distribution], Tensor] | None = None,
        name: str = "",
        mask_as_input: bool = False,
        groups: FeatureGroups | None = None,
    ) -> None:
        super().__init__()
        for arg, value in [("selector", selector), ("predictor", predictor)]:
            if not callable(value):
                raise TypeError(f"LEX {arg} must be a callable torch module; got {value!r}.")
        if not isinstance(imputer, nn.Module) or not callable(imputer):
            raise TypeError(f"LEX imputer must be an lexppl Imputer; got {imputer!r}.")
        self.selector = selector
        self.predictor = predictor
        self.imputer = imputer
        self.likelihood = likelihood
        self.regularizer = regularizer
        self.mask_family = mask_family
        self.name = name
        self.mask_as_input = mask_as_input
        if groups is not None and not isinstance(groups, FeatureGroups):
            raise TypeError(
                f"LEX groups must be a FeatureGroups object (PatchGrid, PixelGrid, Identity) "
                f"or None; got {groups!r}."
            )
        self.groups = groups

    # ---------------------------------------------------------------- the Pyro model
    def site(self, role: str) -> str:
        """The full name of one of this model's sites (``"mask"`` -> ``"<name>.mask"``)."""
        return f"{self.name}.{role}" if self.name else role

    def mask_distribution(self, x: Tensor) -> Distribution:
        r""":math:`p_\gamma(z|x)`, batch ``(N,)``, event ``(D,)`` (``(G,)`` with ``groups``)."""
        if self.groups is None:
            return self.mask_family(self.selector(x))
        self.groups.check_input(x)
        return self._check_group_masks(self.mask_family(self.selector(x)))

    def _check_group_masks(self, prior: Distribution) -> Distribution:
        if self.groups is not None and self.groups.input_shape is not None:
            if prior.event_shape != (self.groups.num_groups,):
                raise ValueError(
                    f"With groups={self.groups!r} the mask distribution must have event shape "
                    f"({self.groups.num_groups},), one entry per group; the selector's output "
                    f"gave {tuple(prior.event_shape)}."
                )
        return prior

    def _feature_mask(self, z: Tensor) -> Tensor:
        # The mask the imputer and predictor see: z itself, or its groups spread over x.
        return z if self.groups is None else self.groups.expand(z)

    def _predictor_output(self, x_tilde: Tensor, z: Tensor, event_dim: int) -> Tensor:
        if self.mask_as_input:
            z = z.to(x_tilde.dtype).expand_as(x_tilde)
            x_tilde = torch.cat([x_tilde, z], dim=-event_dim)
        # Particle dims are flattened into the batch so that any predictor (conv nets,
        # batch-norm) sees an ordinary (M, ...) batch.
        batch_shape = x_tilde.shape[: x_tilde.dim() - event_dim]
        out = self.predictor(x_tilde.reshape((-1, *x_tilde.shape[len(batch_shape) :])))
        return out.reshape(batch_shape + out.shape[1:])

    def _register_params(self) -> None:
        # Expose plain nn.Module parameters to pyro.infer.SVI (see the class note).
        prefix = self.name or "lex"
        for part in ("selector", "predictor", "imputer", "likelihood", "regularizer"):
            module = getattr(self, part)
            if isinstance(module, nn.Module) and not isinstance(module, PyroModule):
                params = list(module.parameters())
                # A frozen part (fixed-θ regime) is not handed to SVI's optimiser.
                if params and all(p.requires_grad for p in params):
                    _claim_store_name(f"{prefix}.{part}", module)
                    pyro.module(f"{prefix}.{part}", module)

    def model(
        self,
        x: Tensor,
        y: Tensor | None = None,
        num_masks: int = 1,
        num_imputations: int = 1,
    ) -> Tensor:
        """The generative model; returns the imputed inputs ``x̃`` (shape ``(K, L, N, ...)``
        with size-1 particle dims left out)."""
        self._register_params()
        event_dim = x.dim() - 1
        with pyro.plate(self.site("data"), x.shape[0], dim=-1):
            prior = self.mask_distribution(x)
            if self.regularizer is not None:
                pyro.factor(self.site("penalty"), -self.regularizer(prior))
            with _plate(self.site("masks"), num_masks, dim=-2):
                z = pyro.sample(self.site("mask"), prior, infer={"lex": MASK})
                z_features = self._feature_mask(z)
                with _plate(self.site("imputations"), num_imputations, dim=-3):
                    # Masked out of every log density (also in prior_guide, which runs this
                    # model): proposed from the model, its terms cancel, and most multiple
                    # imputers have no density. Pyro would still evaluate log_prob under
                    # poutine.mask(False), hence the distribution's own mask.
                    x_tilde = pyro.sample(
                        self.site("imputation"),
                        self.imputer(x, z_features).mask(False),
                        infer={"lex": IMPUTATION},
                    )
                    params = self._predictor_output(x_tilde, z_features, event_dim)
                    pyro.sample(
                        self.site("y"), self.likelihood(params), obs=y, infer={"lex": OBSERVED}
                    )
        return x_tilde

    def guide(self, x: Tensor, y: Tensor | None = None, **kwargs) -> None:
        """The prior proposal: masks and imputations are drawn from the model itself (the
        LEX bound's importance weights are then :math:`p_\\theta(y|\\tilde x)`)."""

    def prior_guide(
        self,
        x: Tensor,
        y: Tensor | None = None,
        num_masks: int = 1,
        num_imputations: int = 1,
    ) -> None:
        r"""The prior proposal as a guide *with* sample sites, for Pyro's own ELBOs: it draws
        the ``"mask"`` and ``"imputation"`` sites from :math:`p_\gamma(z|x)` and
        :math:`p_\iota(\tilde x|x, z)`, as :meth:`model` does. Then :math:`\log p - \log q`
        cancels on them, so ``Trace_ELBO`` estimates :math:`\mathcal L_{1,1} = \mathbb
        E[\log p_\theta(y|\tilde x)]` (minus the penalty) and ``TraceGraph_ELBO``'s selector
        gradient is the score-function (REINFORCE) one, with Pyro's baselines. lexppl's bounds
        take the empty :meth:`guide`. Not for :class:`~lexppl.models.BayesianLEX`, whose guide
        is its autoguide."""
        # The model itself with y observed (nothing sampled or scored there) and the y and
        # penalty sites hidden: the guide's trace holds exactly the mask and imputation sites.
        with poutine.block(hide=[self.site("y"), self.site("penalty")]):
            self.model(x, y, num_masks=num_masks, num_imputations=num_imputations)

    def forward(self, x: Tensor, y: Tensor | None = None, **kwargs) -> Tensor:
        return self.model(x, y, **kwargs)

    # ---------------------------------------------------------------- explanations
    @torch.no_grad()
    def importance(self, x: Tensor) -> Tensor:
        r"""The importance map :math:`\mathbb E[Z|x]`, shape ``(N, D)``; exact (Bernoulli
        probabilities, exact k-subset marginals). With ``groups`` it is the map over groups,
        ``(N, G)``; see :meth:`importance_map` for the map over the input."""
        return self.mask_distribution(x).mean

    @torch.no_grad()
    def selection(self, x: Tensor) -> Tensor:
        r"""The most probable selection of each input, the mode of :math:`p_\gamma(z|x)`: the
        ``k`` most probable features of a k-subset, the features with :math:`\pi_d > 1/2`
        for Bernoulli masks. 0/1, shape ``(N, D)`` (``(N, G)`` with ``groups``)."""
        return self.mask_distribution(x).mode

    @torch.no_grad()
    def importance_map(self, x: Tensor, grid: bool = False) -> Tensor:
        r"""The importance map over the input's own shape: :math:`P(\text{feature } i
        \text{ selected} \mid x)` for every feature, shape ``(N, *x.shape[1:])``, e.g.
        ``(N, C, H, W)`` with a :class:`~lexppl.models.PatchGrid` (each pixel carries its
        patch's probability). With ``grid=True`` and a patch grouping: the group map arranged
        on the grid, ``(N, H/p_h, W/p_w)``, for plotting. Without ``groups``,
        :meth:`importance` reshaped to ``x``'s shape when it has one entry per feature."""
        importance = self.importance(x)
        if self.groups is not None:
            return self.groups.reduce(importance, grid=grid)
        if importance.shape[-1] == x[0].numel():
            return importance.reshape(x.shape)
        return importance

    @torch.no_grad()
    def explain(self, x: Tensor, num_samples: int = 100) -> Tensor:
        """Masks sampled from :math:`p_\\gamma(z|x)`, shape ``(num_samples, N, D)``; with
        ``groups``, group-level masks ``(num_samples, N, G)`` (``groups.expand`` maps them onto
        the input)."""
        _check_num_samples(num_samples)
        return self.mask_distribution(x).sample((num_samples,))

    @torch.no_grad()
    def predict(self, x: Tensor, num_samples: int = 100, num_imputations: int = 1) -> Tensor:
        r"""The predictive :math:`p(y|x) = \mathbb E_{z, \tilde x}[p_\theta(y|\tilde x)]`
        averaged over ``num_samples`` masks and ``num_imputations`` imputations per mask.

        :returns: class probabilities ``(N, C)`` for a categorical likelihood, ``P(y=1)`` of
            shape ``(N,)`` for a Bernoulli one, and the predictive mean otherwise.
        """
        _check_num_samples(num_samples)
        _check_num_samples(num_imputations, "num_imputations")
        # Masks in chunks of about _PREDICT_ROWS rows (masks x imputations x inputs) per model
        # call: memory stays bounded for large inputs, at the speed of one call.
        chunk = max(1, _PREDICT_ROWS // (max(1, x.shape[0]) * num_imputations))
        if chunk < num_samples:  # the mean over all masks: the chunks' means weighted by size
            sizes = [min(chunk, num_samples - b) for b in range(0, num_samples, chunk)]
            return (
                sum(size * LEX.predict(self, x, size, num_imputations) for size in sizes)
                / num_samples
            )
        trace = pyro.poutine.trace(self.model).get_trace(
            x, None, num_masks=num_samples, num_imputations=num_imputations
        )
        fn = trace.nodes[self.site("y")]["fn"]
        # Discrete targets: average the probabilities; otherwise the predictive mean.
        value = fn.probs if hasattr(fn, "probs") else fn.mean
        particle_dims = len(fn.batch_shape) - 1  # every batch dim but the data plate's
        if particle_dims > 0:
            value = value.reshape((-1, *value.shape[particle_dims:])).mean(0)
        return value


def _check_num_samples(value: int, name: str = "num_samples") -> None:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"Expected {name} to be an int >= 1 but got {value!r}.")
