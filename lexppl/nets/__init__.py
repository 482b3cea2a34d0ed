"""Networks for selectors and predictors."""

from lexppl.nets.conv import ConvPredictor
from lexppl.nets.device import check_device, module_device, module_dtype, torch_seed
from lexppl.nets.mlp import MLP
from lexppl.nets.mode import eval_mode
from lexppl.nets.unet import UNet, UNetSelector

__all__ = [
    "MLP",
    "ConvPredictor",
    "UNet",
    "UNetSelector",
    "check_device",
    "eval_mode",
    "module_device",
    "module_dtype",
    "torch_seed",
]
