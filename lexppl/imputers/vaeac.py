"""Multiple imputation with a variational autoencoder with arbitrary conditioning (VAEAC).

Ivanov, Figurnov & Vetrov (ICLR 2019); LEX paper App. B.1. Written in Pyro as a ``model`` and a
``guide`` trained with :class:`pyro.infer.SVI`.
"""

from __future__ import annotations

import itertools
from typing import ClassVar

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import TorchDistribution, constraints
from pyro.infer import SVI, Trace_ELBO
from pyro.optim import Adam
from torch import Tensor, nn
from torch.distributions import Distribution

from lexppl.imputers.base import Imputer, _check_data

__all__ = ["VAEACImputer"]

_EMPTY = torch.Size()


def _mlp(in_features: int, hidden: int, out_features: int, depth: int) -> nn.Sequential:
    sizes = [in_features] + [hidden] * depth
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), nn.LeakyReLU()]
    layers.append(nn.Linear(sizes[-1], out_features))
    return nn.Sequential(*layers)


class _VAEACFill(TorchDistribution):
    r"""
    Fill values of a VAEAC: :math:`h \sim p_{prior}(h | x_z, z)` (a diagonal Normal whose
    parameters are held here), then :math:`\hat x \sim p_{gen}(\cdot | h, x_z, z)`.

    :param loc, scale: prior-network outputs, ``batch_shape + (latent_dim,)``.
    :param observed: standardised ``x * z``, ``batch_shape + (D,)``; :param mask: ``z`` likewise.
    """

    arg_constraints: ClassVar[dict] = {}
    has_rsample = False

    def __init__(
        self,
        imputer: VAEACImputer,
        loc: Tensor,
        scale: Tensor,
        observed: Tensor,
        mask: Tensor,
        event_shape: torch.Size,
        dtype: torch.dtype,
    ) -> None:
        self.imputer, self.dtype = imputer, dtype
        self.loc, self.scale, self.observed, self.mask = loc, scale, observed, mask
        super().__init__(loc.shape[:-1], torch.Size(event_shape), validate_args=False)

    @property
    def support(self):
        return constraints.independent(constraints.real, len(self.event_shape))

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        return _VAEACFill(
            self.imputer,
            *(t.expand(batch_shape + t.shape[-1:]) for t in (self.loc, self.scale)),
            *(t.expand(batch_shape + t.shape[-1:]) for t in (self.observed, self.mask)),
            self.event_shape,
            self.dtype,
        )

    @torch.no_grad()
    def sample(self, sample_shape=_EMPTY) -> Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape
        latent_shape = shape + self.loc.shape[-1:]
        latent = torch.normal(self.loc.expand(latent_shape), self.scale.expand(latent_shape))
        num_features = self.observed.shape[-1]
        observed = self.observed.expand((*shape, num_features)).reshape(-1, num_features)
        mask = self.mask.expand((*shape, num_features)).reshape(-1, num_features)
        # Particle dims are flattened into one batch for the networks.
        loc, scale = self.imputer._generate(latent.reshape(-1, latent.shape[-1]), observed, mask)
        fill = self.imputer._unstandardise(torch.normal(loc, scale))
        return fill.reshape(shape + self.event_shape).to(self.dtype)

    def log_prob(self, value):
        raise NotImplementedError("log_prob of a VAEAC imputation is intractable.")


class VAEACImputer(Imputer):
    r"""
    Multiple imputation with a variational autoencoder with arbitrary conditioning (VAEAC;
    Ivanov et al. 2019; LEX paper App. B.1, eq. 12):

    .. math::

        p_\iota(\tilde x \mid x, z) = \int p_{prior}(h \mid x_z, z)\,
            p_{gen}(\tilde x_{1-z} \mid h, x_z, z)\, \mathrm dh \;
            \mathbf 1\{\tilde x_z = x_z\}.

    Three networks (MLPs of ``depth`` hidden layers of width ``hidden``, inputs
    :math:`[x \odot z, z]`; the mask is an input):

    - prior network :math:`p_{prior}(h | x_z, z) = \mathcal N(\mu_\psi, \mathrm{diag}\,
      \sigma_\psi^2)`, :math:`h \in \mathbb R^{latent\_dim}`;
    - generative network :math:`p_{gen}(x | h, x_z, z) = \prod_d \mathcal N(x_d |
      \mu_{\theta,d}, \sigma_{\theta,d}^2)` with :math:`\sigma_\theta \ge` ``min_scale``
      (input :math:`[h, x \odot z, z]`); only the unobserved features enter the likelihood;
    - proposal network :math:`q_\phi(h | x, z)` (input :math:`[x, z]`, the *full* input).

    **Fit.** :meth:`model` (prior + generative networks) and :meth:`guide` (proposal network)
    are trained with :class:`pyro.infer.SVI` and :class:`~pyro.infer.Trace_ELBO` on the VAEAC
    bound

    .. math::

        \mathbb E_{q_\phi(h|x,z)}\big[\log p_{gen}(x_{1-z} | h, x_z, z)\big]
            - \mathrm{KL}\big(q_\phi(h|x,z) \,\|\, p_{prior}(h|x_z,z)\big)

    with a fresh random mask per datum and step: every datum draws an observation rate
    :math:`r \sim U(0, 1)` and then :math:`z_d \sim \mathrm{Bernoulli}(r)`, so that sparse
    explanations (few kept features) and nearly complete inputs are both seen; pass
    ``observed_rate=0.5`` for the plain Bernoulli(1/2) masks. Features are standardised with
    the training mean and standard deviation; the Gaussian likelihood suits real-valued and
    intensity data alike (imputations are not clipped to the data range). The original's weak
    Normal-Gamma regulariser on the prior network's outputs is omitted. ``elbos_`` holds the
    mean ELBO per datum (standardised units) of every epoch.

    **Imputation.** :math:`h \sim p_{prior}(h|x_z, z)` then :math:`\hat x \sim
    p_{gen}(\cdot|h, x_z, z)`; particle dims of ``z`` (``(L, N, ...)``, ``(K, L, N, ...)``) are
    flattened into the networks' batch. Draws use torch's global generator
    (``pyro.set_rng_seed``).

    **Pyro parameter store.** During :meth:`fit` the networks are registered with
    ``pyro.module`` under names prefixed by ``"VAEACImputer_<id(self) in hex>"``, so several
    VAEACs never share parameters in Pyro's global store; these entries are removed when the fit
    ends (the networks themselves own the trained weights). After :meth:`fit` the parameters
    are frozen (``requires_grad=False``): the imputer is trained beforehand and kept fixed while
    LEX trains. The networks are built by :meth:`fit` (their input size is the data's feature
    count) or by :meth:`load_state_dict` on a fresh instance with the same hyper-parameters.

    :param int latent_dim: dimension of :math:`h`.
    :param int hidden: width of the hidden layers.
    :param int epochs: passes over the data.
    :param float lr: Adam learning rate.
    :param int batch_size: mini-batch size.
    :param int depth: number of hidden layers of each network.
    :param float observed_rate: probability that a feature is observed in the training masks;
        ``None`` (default) draws it uniformly per datum.
    :param float min_scale: lower bound of the generative standard deviation (standardised
        units).
    :param int random_state: seeds the initialisation, masks and SVI draws (the global
        generator is left untouched); ``None`` uses torch's current global generator.

    **References**

    [1] O. Ivanov, M. Figurnov, D. Vetrov, *Variational autoencoder with arbitrary
        conditioning*, ICLR 2019.

    [2] H. Senetaire et al., *Explainability as statistical inference*, ICML 2023, App. B.1.
    """

    multiple = True
    requires_fit = True

    def __init__(
        self,
        latent_dim: int = 16,
        hidden: int = 128,
        epochs: int = 100,
        lr: float = 1e-3,
        batch_size: int = 64,
        depth: int = 2,
        observed_rate: float | None = None,
        min_scale: float = 1e-2,
        random_state: int | None = 0,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        for arg, value in [
            ("latent_dim", latent_dim),
            ("hidden", hidden),
            ("epochs", epochs),
            ("batch_size", batch_size),
            ("depth", depth),
        ]:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} {arg} must be an int >= 1; got {value!r}.")
        if not lr > 0:
            raise ValueError(f"{name} lr must be > 0; got {lr}.")
        if observed_rate is not None and not 0 <= observed_rate <= 1:
            raise ValueError(f"{name} observed_rate must lie in [0, 1]; got {observed_rate}.")
        if not min_scale > 0:
            raise ValueError(f"{name} min_scale must be > 0; got {min_scale}.")
        self.latent_dim, self.hidden, self.depth = latent_dim, hidden, depth
        self.epochs, self.lr, self.batch_size = epochs, lr, batch_size
        self.observed_rate, self.min_scale, self.random_state = (
            observed_rate,
            min_scale,
            random_state,
        )
        self.elbos_: list[float] = []
        self.register_buffer("shift", torch.empty(0))
        self.register_buffer("scale", torch.empty(0))
        self.prior_net: nn.Module | None = None
        self.generative_net: nn.Module | None = None
        self.proposal_net: nn.Module | None = None

    # ------------------------------------------------------------------ networks
    @property
    def _prefix(self) -> str:
        return f"{type(self).__name__}_{id(self):x}"

    def _build(self, num_features: int) -> None:
        device = self.num_features_.device
        d, h, k = num_features, self.hidden, self.latent_dim
        self.prior_net = _mlp(2 * d, h, 2 * k, self.depth).to(device)
        self.proposal_net = _mlp(2 * d, h, 2 * k, self.depth).to(device)
        self.generative_net = _mlp(k + 2 * d, h, 2 * d, self.depth).to(device)

    @staticmethod
    def _normal_params(out: Tensor, min_scale: float) -> tuple[Tensor, Tensor]:
        loc, raw = out.chunk(2, -1)
        return loc, nn.functional.softplus(raw) + min_scale

    def _prior(self, observed: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        return self._normal_params(self.prior_net(torch.cat([observed, mask], -1)), 1e-4)

    def _proposal(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        return self._normal_params(self.proposal_net(torch.cat([x, mask], -1)), 1e-4)

    def _generate(self, latent: Tensor, observed: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        out = self.generative_net(torch.cat([latent, observed, mask], -1))
        return self._normal_params(out, self.min_scale)

    def _standardise(self, x: Tensor) -> Tensor:
        return (x - self.shift.to(x.dtype)) / self.scale.to(x.dtype)

    def _unstandardise(self, x: Tensor) -> Tensor:
        return x * self.scale.to(x.dtype) + self.shift.to(x.dtype)

    # ------------------------------------------------------------------ Pyro model and guide
    def model(self, x: Tensor, mask: Tensor) -> None:
        r"""
        The conditional generative model :math:`p(h | x_z, z)\, p(x_{1-z} | h, x_z, z)`.

        :param x: standardised inputs ``(N, D)``; :param mask: masks ``(N, D)``, 1 = observed.
        """
        pyro.module(f"{self._prefix}.prior_net", self.prior_net)
        pyro.module(f"{self._prefix}.generative_net", self.generative_net)
        observed = x * mask
        with pyro.plate("data", x.shape[0]):
            loc, scale = self._prior(observed, mask)
            latent = pyro.sample("latent", dist.Normal(loc, scale).to_event(1))
            out_loc, out_scale = self._generate(latent, observed, mask)
            likelihood = dist.Normal(out_loc, out_scale).mask(mask < 0.5)
            pyro.sample("x", likelihood.to_event(1), obs=x)

    def guide(self, x: Tensor, mask: Tensor) -> None:
        r"""The proposal :math:`q_\phi(h | x, z)` (sees the full input)."""
        pyro.module(f"{self._prefix}.proposal_net", self.proposal_net)
        with pyro.plate("data", x.shape[0]):
            loc, scale = self._proposal(x, mask)
            pyro.sample("latent", dist.Normal(loc, scale).to_event(1))

    def _random_masks(self, x: Tensor) -> Tensor:
        if self.observed_rate is None:
            rate = torch.rand(x.shape[0], 1, device=x.device, dtype=x.dtype)
        else:
            rate = torch.full((x.shape[0], 1), self.observed_rate, device=x.device, dtype=x.dtype)
        return torch.bernoulli(rate.expand(x.shape))

    def _clear_param_store(self) -> None:
        store = pyro.get_param_store()
        for name in [n for n in store.keys() if n.startswith(self._prefix + ".")]:
            del store[name]

    # ------------------------------------------------------------------ fit
    def fit(self, X: Tensor) -> VAEACImputer:
        X = _check_data(X, type(self).__name__)
        super().fit(X)
        device = self.num_features_.device
        # The networks are built in the default dtype: float64 data (e.g. numpy) is cast to it.
        X = X.flatten(1).to(device=device, dtype=torch.get_default_dtype())
        std = X.std(0) if X.shape[0] > 1 else torch.ones_like(X[0])
        self.shift = X.mean(0)
        self.scale = torch.where(std > 1e-6, std, torch.ones_like(std))
        data = self._standardise(X)
        fork = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=fork, enabled=self.random_state is not None):
            if self.random_state is not None:
                torch.manual_seed(self.random_state)
            self._build(X.shape[1])
            self.train()
            self._clear_param_store()
            svi = SVI(self.model, self.guide, Adam({"lr": self.lr}), Trace_ELBO())
            self.elbos_ = []
            try:
                for _ in range(self.epochs):
                    total = 0.0
                    for rows in torch.randperm(data.shape[0], device=device).split(self.batch_size):
                        batch = data[rows]
                        total += svi.step(batch, self._random_masks(batch))
                    self.elbos_.append(-total / data.shape[0])
            finally:
                self._clear_param_store()
        self.eval()
        self.requires_grad_(False)
        return self

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # A fresh instance has no networks yet: build them for the saved feature count.
        key = prefix + "num_features_"
        if key in state_dict and int(state_dict[key]) >= 0:
            num_features = int(state_dict[key])
            if self.prior_net is None or self.prior_net[0].in_features != 2 * num_features:
                self._build(num_features)
                self.eval()
                self.requires_grad_(False)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ------------------------------------------------------------------ imputation
    def fill_distribution(self, x: Tensor, z: Tensor) -> Distribution:
        event_dim = x.dim() - 1
        shape = torch.broadcast_shapes(x.shape, z.shape)
        batch_shape = shape[: len(shape) - event_dim]
        num_features = x.shape[1:].numel()
        dtype = self.shift.dtype  # the networks' dtype; samples are cast back to x's
        with torch.no_grad():
            flat = (*batch_shape, num_features)
            mask = z.detach().to(dtype).expand(shape).reshape(flat)
            observed = self._standardise(x.detach().to(dtype).expand(shape).reshape(flat)) * mask
            loc, scale = self._prior(
                observed.reshape(-1, num_features), mask.reshape(-1, num_features)
            )
            loc = loc.reshape(batch_shape + loc.shape[-1:])
            scale = scale.reshape(batch_shape + scale.shape[-1:])
        return _VAEACFill(self, loc, scale, observed, mask, x.shape[1:], x.dtype)
