"""Networks for selectors and predictors."""

from lexppl.nets.mlp import MLP

__all__ = ["MLP"]
