"""An emulated CUDA device, to test lexppl's device rules on a CPU-only machine.

Inside ``with FakeCuda():``, a tensor created with ``device="meta"`` (or moved there with
``.to``) is a :class:`DeviceTensor`: it reports device ``meta`` but holds real CPU values, so
sampling, ``.item()`` and autograd compute as usual. Every op goes through the mode, which
applies CUDA's rules:

* an op mixing a device tensor with a CPU tensor of dim > 0 raises :class:`DeviceMismatch`
  (a 0-dim CPU tensor is allowed, as CUDA allows CPU scalars; so are CPU index tensors into a
  device tensor; copies and ``.to`` cross devices);
* a factory without ``device=`` gives a CPU tensor (the default device), as on a GPU machine;
* ``.numpy()`` on a device tensor raises (PyTorch refuses it for any tensor subclass).

"meta" labels the device because it is the only non-CPU device type that passes PyTorch's
device checks on a CPU-only build.

Limits: code branching on ``device.type == "cuda"`` (RNG forking, NCCL, ``torch.cuda`` calls)
sees "meta" and takes its CPU branch; only one device exists (no cuda:0 vs cuda:1); CPU
generators given to device random ops, dtypes a device lacks (float64 on MPS) and foreach or
fused optimiser kernels are not checked; ``torch.load(map_location="meta")`` gives real, empty
meta tensors (refused as :class:`EmulatorGap`); a module that bound ``torch.tensor`` (or
``as_tensor``, ``asarray``) under another name before the mode was entered escapes the patch
that builds them on the device; and device tensors work only inside the mode.
"""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

__all__ = ["DEVICE", "DeviceMismatch", "DeviceTensor", "EmulatorGap", "FakeCuda"]

DEVICE = torch.device("meta")

# Below this key, an op on a DeviceTensor runs the real "meta" kernel: shapes only.
_PYTHON_KEY = torch._C.DispatchKeySet(torch._C.DispatchKey.Python)
# Ops whose index tensors may stay on the CPU when the indexed tensor is on the device.
_INDEXING = {"aten::index", "aten::index_put", "aten::index_put_", "aten::_index_put_impl_"}


class DeviceMismatch(RuntimeError):
    """An op that CUDA would refuse: device and CPU tensors mixed."""


class EmulatorGap(RuntimeError):
    """A real (value-less) meta tensor reached the mode: the emulation, not lexppl, failed."""


class DeviceTensor(torch.Tensor):
    """A tensor on the emulated device: reports :data:`DEVICE`, computes on ``elem`` (CPU)."""

    elem: torch.Tensor

    @staticmethod
    def __new__(cls, elem: torch.Tensor) -> DeviceTensor:
        tensor = torch.Tensor._make_wrapper_subclass(
            cls,
            elem.shape,
            strides=elem.stride(),
            storage_offset=elem.storage_offset(),
            dtype=elem.dtype,
            layout=elem.layout,
            device=DEVICE,
            requires_grad=False,
        )
        tensor.elem = elem
        return tensor

    def __repr__(self) -> str:
        return f"DeviceTensor({self.elem!r})"

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        return NotImplemented  # only the mode computes on device tensors

    def tolist(self) -> list:
        # A copy to the host, as on CUDA (tolist does not reach the dispatcher).
        return self.elem.tolist()


def _on_device(device) -> bool:
    return device is not None and torch.device(device).type == DEVICE.type


def _unwrap(value):
    return value.elem if isinstance(value, DeviceTensor) else value


def _wrap(value):
    if isinstance(value, torch.Tensor) and not isinstance(value, DeviceTensor):
        return DeviceTensor(value)
    return value


def _host_constructor(real, method: bool):
    # torch.tensor and its kin build their result below the dispatcher: asked for "meta" they
    # would give a real, value-less meta tensor. Build on the CPU, then move (a dispatched copy).
    def constructor(*args, **kwargs):
        device = kwargs.get("device")
        if device is None and method:
            device = args[0].device  # Tensor.new_tensor defaults to its tensor's device
        if not _on_device(device):
            return real(*args, **kwargs)
        kwargs["device"] = "cpu"
        return real(*map(_unwrap, args), **kwargs).to(DEVICE)

    return constructor


_CONSTRUCTORS = [
    (torch, "tensor", False),
    (torch, "as_tensor", False),
    (torch, "asarray", False),
    (torch.Tensor, "new_tensor", True),
]


class FakeCuda(TorchDispatchMode):
    """The emulated device's rules, and its ``torch.tensor`` constructors, while active."""

    def __enter__(self) -> FakeCuda:
        # Patched here, not at import, so that other tests in the same process see plain torch.
        self._saved = [(owner, name, owner.__dict__.get(name)) for owner, name, _ in _CONSTRUCTORS]
        for owner, name, method in _CONSTRUCTORS:
            setattr(owner, name, _host_constructor(getattr(owner, name), method))
        try:
            return super().__enter__()
        except BaseException:
            self._restore()
            raise

    def __exit__(self, *exc_info):
        try:
            return super().__exit__(*exc_info)
        finally:
            self._restore()

    def _restore(self) -> None:
        for owner, name, original in reversed(self._saved):
            if original is None:  # inherited (Tensor.new_tensor is TensorBase's)
                delattr(owner, name)
            else:
                setattr(owner, name, original)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func._schema.name
        tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        if any(t.device.type == DEVICE.type and not isinstance(t, DeviceTensor) for t in tensors):
            raise EmulatorGap(f"{func}: a real meta tensor, built outside the emulation")
        on_device = [t for t in tensors if isinstance(t, DeviceTensor)]
        if name in _INDEXING and isinstance(args[0], DeviceTensor):
            indices = {id(t) for t in tree_flatten(args[1])[0] if isinstance(t, torch.Tensor)}
            tensors = [t for t in tensors if id(t) not in indices]
        host = [tuple(t.shape) for t in tensors if not isinstance(t, DeviceTensor) and t.dim()]
        if on_device and host and name != "aten::copy_":  # the one op that crosses devices
            raise DeviceMismatch(f"{func}: CPU tensor(s) of shape {host} mixed with {DEVICE}")
        # The result lives where device= says (factories, .to), else where the inputs are.
        to_device = bool(on_device)
        if kwargs.get("device") is not None:
            to_device = _on_device(kwargs["device"])
            kwargs = dict(kwargs, device=torch.device("cpu"))
        out = func(*tree_map(_unwrap, args), **tree_map(_unwrap, kwargs))
        if torch.Tag.inplace_view in func.tags and isinstance(args[0], DeviceTensor):
            # transpose_ and kin reshape the payload in place: reshape the wrapper alike.
            with torch._C._ExcludeDispatchKeyGuard(_PYTHON_KEY):
                func(*args, **kwargs)
        if func._schema.is_mutable and name.endswith("_"):
            return args[0]  # in place: the caller's tensor, whose payload was updated
        return tree_map(_wrap, out) if to_device else out
