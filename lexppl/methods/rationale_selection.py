r"""
Rationale selection (Lei, Barzilay, Jaakkola, EMNLP 2016) as a LEX model (LEX paper App. A.4,
Table 1).

A *generator* (LEX's selector) draws an independent Bernoulli mask over the positions of a
sequence; an *encoder* (LEX's predictor) predicts the label from the selected positions only;
the mask is regularised towards short, contiguous rationales by
:class:`~lexppl.models.RationalePenalty`,
:math:`\lambda_1 \|z\|_1 + \lambda_2 \sum_t |z_t - z_{t-1}|`. Lei et al.'s objective
(their eq. 5) is the expected cost :math:`\mathbb E_z[\mathrm{loss}(y, \mathrm{enc}(x, z)) +
\Omega(z)]`, a lower bound of the LEX log-likelihood in the Free In-Situ regime (LEX App. A.4,
eq. 10-11); both networks are trained jointly, the generator by REINFORCE.

==========================  ======================================================
Lei et al. (2016)           LEX piece
==========================  ======================================================
generator :math:`p(z|x)`    :class:`RationaleGenerator` →
                            :class:`~lexppl.distributions.IndependentBernoulli`
:math:`\Omega(z)`           :class:`~lexppl.models.RationalePenalty` (exact expectation)
encoder on :math:`x_z`      :class:`RationaleEncoder`; ``imputation="drop"``: the
                            recurrence skips unselected positions (the released
                            code's encoder); ``"pad"``: they are replaced by the
                            padding value
gradient                    :class:`~lexppl.infer.ReinforceBound` (one mask per datum)
==========================  ======================================================
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lexppl.distributions import IndependentBernoulli
from lexppl.imputers import ConstantImputer
from lexppl.infer import ReinforceBound
from lexppl.methods.presets import Method, _check_positive, _check_sizes
from lexppl.models import CategoricalLikelihood, RationalePenalty
from lexppl.models.lex import LEX

__all__ = [
    "IMPUTATIONS",
    "RationaleEncoder",
    "RationaleGenerator",
    "count_rationale_spans",
    "rationale",
]

#: How the encoder sees unselected positions.
IMPUTATIONS = ("drop", "pad")


class _Embedding(nn.Module):
    # Token ids (stored as floats or ints) -> nn.Embedding; real values -> a linear map.
    def __init__(self, vocab_size: int | None, embedding_dim: int) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        if vocab_size is None:
            self.embed = nn.Linear(1, embedding_dim)
        else:
            self.embed = nn.Embedding(vocab_size, embedding_dim)

    def forward(self, x: Tensor) -> Tensor:
        if self.vocab_size is None:
            return self.embed(x.unsqueeze(-1))
        ids = x.round().long()
        if ids.numel() and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(
                f"token ids must lie in [0, vocab_size={self.vocab_size}); got values in "
                f"[{int(ids.min())}, {int(ids.max())}]."
            )
        return self.embed(ids)


class RationaleGenerator(nn.Module):
    r"""
    Lei et al.'s independent-selection generator: embeddings → a bidirectional recurrent layer
    (the code runs one RCNN/LSTM layer forwards and one backwards and concatenates them) → one
    logit per position, :math:`p(z_t = 1 | x) = \sigma(w^\top [\overrightarrow{h}_t;
    \overleftarrow{h}_t] + b)`. A GRU replaces their RCNN (our choice).

    :param int vocab_size: size of the vocabulary for token-id inputs; ``None`` for sequences
        of real values.
    :param int embedding_dim: embedding size. :param int hidden: recurrent state size.
    Shapes: ``x (N, T)`` -> logits ``(N, T)``.
    """

    def __init__(
        self, vocab_size: int | None = None, embedding_dim: int = 32, hidden: int = 64
    ) -> None:
        super().__init__()
        self.embed = _Embedding(vocab_size, embedding_dim)
        self.rnn = nn.GRU(embedding_dim, hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, 1)

    def forward(self, x: Tensor) -> Tensor:
        states, _ = self.rnn(self.embed(x))
        return self.out(states).squeeze(-1)


class RationaleEncoder(nn.Module):
    r"""
    Lei et al.'s encoder: a recurrent classifier on the rationale, the last state → logits.

    - ``drop=True`` (the released code's encoder): it receives the imputed sequence and the
      mask concatenated, ``(M, 2T)`` (LEX ``mask_as_input=True``), and skips unselected
      positions, :math:`h_t = z_t\, \mathrm{GRU}(e_t, h_{t-1}) + (1 - z_t)\, h_{t-1}`, i.e. the
      unselected words are removed from the text.
    - ``drop=False``: an ordinary GRU over the imputed sequence ``(M, T)`` (padding values at
      unselected positions).

    :param int num_classes: number of logits.
    :param int vocab_size: as :class:`RationaleGenerator`.
    :param int embedding_dim: embedding size. :param int hidden: state size.
    :param bool drop: see above.
    """

    def __init__(
        self,
        num_classes: int,
        vocab_size: int | None = None,
        embedding_dim: int = 32,
        hidden: int = 64,
        drop: bool = True,
    ) -> None:
        super().__init__()
        self.embed = _Embedding(vocab_size, embedding_dim)
        self.drop = drop
        self.hidden = hidden
        if drop:
            self.cell = nn.GRUCell(embedding_dim, hidden)
        else:
            self.rnn = nn.GRU(embedding_dim, hidden, batch_first=True)
        self.out = nn.Linear(hidden, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        if not self.drop:
            _, last = self.rnn(self.embed(x))
            return self.out(last[-1])
        if x.shape[-1] % 2:
            raise ValueError(
                "RationaleEncoder(drop=True) takes the sequence and its mask concatenated, "
                f"(M, 2T) (LEX mask_as_input=True); got {tuple(x.shape)}."
            )
        values, mask = x.chunk(2, dim=-1)
        embedded = self.embed(values)
        h = embedded.new_zeros(x.shape[0], self.hidden)
        if not mask.requires_grad and bool(((mask == 0) | (mask == 1)).all()):
            # Hard masks (REINFORCE's): the same recursion over the selected words only, moved
            # to the front in their order, so the loop runs max |z| steps instead of T.
            counts = mask.sum(-1).long()
            order = torch.sort((mask == 0).to(torch.uint8), dim=-1, stable=True).indices
            words = embedded.gather(1, order[..., None].expand(-1, -1, embedded.shape[-1]))
            for t in range(int(counts.max()) if counts.numel() else 0):
                keep = (counts > t).to(h.dtype)[:, None]
                h = keep * self.cell(words[:, t], h) + (1 - keep) * h
            return self.out(h)
        for t in range(values.shape[-1]):  # soft masks: every position, weighted
            keep = mask[:, t : t + 1]
            h = keep * self.cell(embedded[:, t], h) + (1 - keep) * h
        return self.out(h)


def rationale(
    seq_len: int,
    num_classes: int,
    sparsity: float = 3e-4,
    coherence: float = 2.0,
    vocab_size: int | None = None,
    embedding_dim: int = 32,
    hidden: int = 64,
    imputation: str = "drop",
    pad_value: float = 0.0,
    generator: nn.Module | None = None,
    encoder: nn.Module | None = None,
) -> Method:
    r"""
    Rationale selection (Lei et al. 2016) as a LEX model on sequences ``x`` of shape
    ``(N, T)`` — token ids (``vocab_size`` given; id ``pad_value`` is the padding token) or
    real values.

    - Selector ("generator"): :class:`RationaleGenerator`, independent Bernoulli masks
      ``(N, T)`` over positions (:class:`~lexppl.distributions.IndependentBernoulli`).
    - Penalty: :class:`~lexppl.models.RationalePenalty` ``(sparsity, coherence)``,
      :math:`\lambda_1 \sum_t z_t + \lambda_1 c \sum_t |z_t - z_{t-1}|` in expectation, with the
      code's defaults :math:`\lambda_1` = 3e-4, :math:`c` = 2, sums per sequence.
    - Imputation: ``"drop"`` (default): the encoder skips unselected positions
      (:class:`RationaleEncoder`, the code's behaviour; LEX's "removed"); ``"pad"``: they are
      replaced by ``pad_value`` (:class:`~lexppl.imputers.ConstantImputer`).
    - Predictor ("encoder"): :class:`RationaleEncoder`, trained jointly (Free In-Situ) with
      :class:`~lexppl.models.CategoricalLikelihood`.
    - Estimator: :class:`~lexppl.infer.ReinforceBound`, one mask per datum.
    - Optimiser: Adam, lr 5e-4, batch 256 (code defaults); weight decay 2e-7, the code's L2
      term 1e-6·‖θ‖² next to its loss ×10, rescaled to our per-datum loss.

    **Differences from Lei et al.** The penalty enters as its exact expectation (its gradient
    is exact) where the code puts the sampled :math:`\Omega(z)` in the REINFORCE reward (same
    expected gradient, more variance); the score-function term has the moving-average baseline
    of :class:`~lexppl.infer.ReinforceBound` (the code has none; the estimator stays
    unbiased); their beer-review encoder regresses ratings with a squared loss, here a
    classifier; GRUs replace the RCNN layers; no dropout.

    :param int seq_len: ``T``. :param int num_classes: ``C >= 2``.
    :param float sparsity: :math:`\lambda_1 \ge 0`. :param float coherence: :math:`c \ge 0`.
    :param str imputation: ``"drop"`` or ``"pad"``.
    :param generator: optional selector network replacing :class:`RationaleGenerator`,
        ``(N, T) -> logits (N, T)``.
    :param encoder: optional predictor network replacing :class:`RationaleEncoder`: it gets
        ``(M, 2T)`` (sequence and mask) with ``imputation="drop"``, ``(M, T)`` with ``"pad"``,
        and returns logits ``(M, C)``.
    """
    if not isinstance(seq_len, int) or isinstance(seq_len, bool) or seq_len < 1:
        raise ValueError(f"Expected seq_len to be an int >= 1 but got {seq_len!r}.")
    _check_sizes(seq_len, num_classes)
    _check_positive("sparsity", sparsity, allow_zero=True)
    _check_positive("coherence", coherence, allow_zero=True)
    if imputation not in IMPUTATIONS:
        raise ValueError(
            f"Unknown imputation {imputation!r}; valid choices are {list(IMPUTATIONS)}."
        )
    if vocab_size is not None and (not isinstance(vocab_size, int) or vocab_size < 1):
        raise ValueError(f"Expected vocab_size to be an int >= 1 or None; got {vocab_size!r}.")
    drop = imputation == "drop"
    for name, net in [("generator", generator), ("encoder", encoder)]:
        if net is not None and not isinstance(net, nn.Module):
            raise ValueError(f"{name} must be a torch module or None; got {net!r}.")
    if generator is None:
        generator = RationaleGenerator(vocab_size, embedding_dim, hidden)
    if encoder is None:
        encoder = RationaleEncoder(num_classes, vocab_size, embedding_dim, hidden, drop=drop)
    model = LEX(
        generator,
        encoder,
        ConstantImputer(pad_value),
        IndependentBernoulli,
        CategoricalLikelihood(),
        regularizer=RationalePenalty(sparsity, coherence),
        mask_as_input=drop,
    )
    bound = ReinforceBound(num_masks=1)
    defaults = dict(lr=5e-4, weight_decay=2e-7, batch_size=256)
    return Method("rationale", model, bound, defaults, num_classes=num_classes)


def count_rationale_spans(masks: Tensor) -> Tensor:
    """The number of contiguous selected spans (0→1 switches, counting a span that starts at
    position 0) of binary masks ``(..., T)``; shape ``(...)``."""
    masks = torch.as_tensor(masks)
    padded = torch.nn.functional.pad(masks.float(), (1, 0))
    return ((padded[..., 1:] == 1) & (padded[..., :-1] == 0)).sum(-1)
