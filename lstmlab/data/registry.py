"""Data sets found by name, so configs and Python code say ``build("shakespeare", ...)``.

A data module registers its factories with :func:`register`; the modules listed in ``_MODULES`` are
imported on first use. A factory takes keyword arguments (the config's ``data`` group minus ``name``)
and returns an object following :class:`lstmlab.data.base.Dataset`.
"""

from __future__ import annotations

import importlib
import inspect
import typing
from collections.abc import Callable
from typing import Any

from lstmlab.data.base import Dataset

_MODULES = [
    # one line per data module; each registers its names on import
    "lstmlab.data.text",  # shakespeare, text
    "lstmlab.data.speech",  # vowels
    "lstmlab.data.series",  # sunspots, airline, sines, mackey_glass, csv
    "lstmlab.data.synthetic",  # adding, temporal_order, copy, reber
]
_FACTORIES: dict[str, Callable[..., Dataset]] = {}
_loaded = False


def register(name: str) -> Callable[[Callable[..., Dataset]], Callable[..., Dataset]]:
    def add(factory: Callable[..., Dataset]) -> Callable[..., Dataset]:
        if name in _FACTORIES and _FACTORIES[name] is not factory:
            raise ValueError(f"data set {name!r} registered twice")
        _FACTORIES[name] = factory
        return factory

    return add


def unregister(name: str) -> None:
    """Remove data set ``name`` from the registry; ValueError listing the valid names otherwise."""
    _parameters(name)
    del _FACTORIES[name]


def names() -> list[str]:
    _load()
    return sorted(_FACTORIES)


def _parameters(name: str) -> dict[str, inspect.Parameter]:
    """The keyword parameters of data set ``name``'s factory; ValueError listing the valid names otherwise."""
    _load()
    if name not in _FACTORIES:
        raise ValueError(f"data.name={name!r} is not a data set; valid: {', '.join(sorted(_FACTORIES))}")
    factory = _FACTORIES[name]
    parameters = inspect.signature(factory).parameters
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        # a factory that passes **kwargs on to the class it returns takes that class's options
        returned = typing.get_type_hints(factory).get("return")
        if inspect.isclass(returned):
            parameters = inspect.signature(returned).parameters
    return {k: p for k, p in parameters.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}


def options(name: str) -> list[str]:
    """The keyword arguments data set ``name`` takes; ValueError listing the valid names otherwise."""
    return list(_parameters(name))


def defaults(name: str) -> dict[str, Any]:
    """``{option: default}`` of data set ``name``, read from its factory's signature (the one place
    they are written; the command line's ``data`` configs are built from it). Tuples become lists;
    ``seed`` is left out, because a run passes its own."""
    return {
        key: list(p.default) if isinstance(p.default, tuple) else p.default
        for key, p in _parameters(name).items()
        if p.default is not p.empty and key != "seed"
    }


def build(name: str, **kwargs: Any) -> Dataset:
    """The data set ``name`` built with ``kwargs``; ValueError listing the valid names otherwise."""
    _load()
    if name not in _FACTORIES:
        raise ValueError(f"data.name={name!r} is not a data set; valid: {', '.join(sorted(_FACTORIES))}")
    return _FACTORIES[name](**kwargs)


def _load() -> None:
    global _loaded
    if not _loaded:
        for module in _MODULES:
            importlib.import_module(module)
        _loaded = True
