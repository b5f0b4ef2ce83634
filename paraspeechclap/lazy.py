"""A package's public names imported from their modules on first access (PEP 562), so that importing the package
stays cheap: ``import paraspeechclap`` loads no torch until ``ParaSpeechCLAP`` is used.

    __getattr__, __dir__, __all__ = lazy_exports(__name__, {".core": ["read", "write"]}, submodules=["cli"])

Imports nothing of the project (the bottom layer; the torch-free runtime ships it). Written here rather than taken
from ``lazy_loader``, whose ``attach`` names only the package's own submodules (``loading`` re-exports
``paraspeechclap.hub``), words its AttributeError otherwise and imports everything when ``EAGER_IMPORT`` is set.
"""
from __future__ import annotations

import importlib
import sys
from typing import Any, Callable, Iterable, Mapping


def lazy_exports(package: str, exports: Mapping[str, Iterable[str]], submodules: Iterable[str] = ()
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for the module ``package``.

    ``exports`` maps a module (relative to ``package``, like ``".core"``, or absolute) to the names taken from it;
    ``submodules`` are the package's own submodules, returned as modules. Nothing is imported until a name is asked
    for, and nothing is cached: the package always shows its module's current value.
    """
    where = {name: module for module, names in exports.items() for name in names}
    modules = frozenset(submodules)
    public = sorted(where) + sorted(modules)

    def __getattr__(name: str) -> Any:
        if name in modules:
            return importlib.import_module(f".{name}", package)
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module, package), name)

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(public))

    return __getattr__, __dir__, public
