"""Read a pickled PyTorch checkpoint (``torch.save``) as data, running nothing from it.

A pickle names functions and classes that unpickling calls; a malicious file names
``os.system``. This reader lets torch handle the zip container and the tensor
storages, and resolves every name the pickle asks for through an allowlist: the few
that rebuild tensors and plain containers are the real ones; anything else becomes an
``Opaque`` record of what the file wanted to build (its name, arguments and state), so
a configuration object (an OmegaConf tree, a dill-pickled workspace) comes back as
inert data that the importer reads field by field. Nothing from the file's classes or
functions is imported or executed.
"""
from __future__ import annotations

import pickle
import types
from pathlib import Path
from typing import Any

import torch

# What may be rebuilt for real: tensors, storages and plain containers.
_ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch", "Size"),
    ("torch", "device"),
    ("torch", "float32"), ("torch", "float16"), ("torch", "bfloat16"), ("torch", "float64"),
    ("torch", "int64"), ("torch", "int32"), ("torch", "uint8"), ("torch", "bool"),
    ("collections", "OrderedDict"),
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "tuple"), ("builtins", "list"),
    ("builtins", "dict"), ("builtins", "slice"), ("builtins", "complex"),
}


class Opaque:
    """Something the pickle wanted to build from ``module.name``, kept as data."""

    module = ""
    name = ""

    def __init__(self, *args, **kwargs):
        self.args = args
        self.kwargs = kwargs
        self.state: Any = None
        self.items: list[Any] = []
        self.dict_items: dict[Any, Any] = {}

    def __new__(cls, *args, **kwargs):  # NEWOBJ calls cls.__new__(cls, *args)
        obj = super().__new__(cls)
        obj.args, obj.kwargs, obj.state, obj.items, obj.dict_items = args, kwargs, None, [], {}
        return obj

    def __setstate__(self, state: Any) -> None:
        self.state = state

    # list/dict subclasses are filled with APPENDS / SETITEMS
    def append(self, item: Any) -> None:
        self.items.append(item)

    def extend(self, items) -> None:
        self.items.extend(items)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.dict_items[key] = value

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}"

    def __repr__(self) -> str:
        return f"Opaque({self.qualname})"


_opaque_types: dict[tuple[str, str], type] = {}


def opaque_type(module: str, name: str) -> type:
    """A subclass of ``Opaque`` standing for ``module.name`` (one per name)."""
    key = (module, name)
    if key not in _opaque_types:
        _opaque_types[key] = type(name, (Opaque,), {"module": module, "name": name})
    return _opaque_types[key]


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        return opaque_type(module, name)


class _PickleModule(types.ModuleType):
    """What ``torch.load(pickle_module=...)`` needs: ``Unpickler`` and ``load``."""

    Unpickler = RestrictedUnpickler

    @staticmethod
    def load(file, **kwargs):
        return RestrictedUnpickler(file, **kwargs).load()


_pickle_module = _PickleModule("dp_ros_restricted_pickle")


class PickleError(ValueError):
    """A checkpoint file that cannot be read; the message says why."""


def load_restricted(path: str | Path) -> Any:
    """Load a ``torch.save`` file with tensors rebuilt and everything else ``Opaque``."""
    path = Path(path)
    if not path.is_file():
        raise PickleError(f"{path} does not exist or is not a file")
    try:
        # weights_only=False only because our own pickle module does the restricting:
        # torch's weights_only unpickler refuses unknown names instead of recording them.
        return torch.load(str(path), map_location="cpu", pickle_module=_pickle_module, weights_only=False)
    except Exception as exc:  # a truncated zip, a bad storage record, not a torch file at all
        raise PickleError(f"{path} could not be read as a PyTorch checkpoint: {type(exc).__name__}: {exc}") from None


def opaque_names(obj: Any, seen: set[int] | None = None) -> set[str]:
    """Every ``module.name`` the loaded object tree wanted to build (for messages and tests)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return set()
    seen.add(id(obj))
    out: set[str] = set()
    if isinstance(obj, Opaque):
        out.add(obj.qualname)
        for part in (obj.args, obj.kwargs, obj.state, obj.items, obj.dict_items):
            out |= opaque_names(part, seen)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out |= opaque_names(k, seen) | opaque_names(v, seen)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for v in obj:
            out |= opaque_names(v, seen)
    return out
