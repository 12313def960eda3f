"""Registries: the one place that maps a name in the config to the code behind it.

Architectures (`gansmith.models.ARCHITECTURES`), losses (`gansmith.losses.LOSSES`) and regularizers
(`gansmith.regularizers.REGULARIZERS`) each keep one. A new one is a spec object registered from its own module;
the CLI's choices, its --help text and the config's validation read the registry, so nothing else changes.
"""
from __future__ import annotations

from typing import Generic, Iterator, TypeVar

from .errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, option: str):
        self.kind, self.option = kind, option   # e.g. "loss", "--loss": named in error messages
        self._specs: dict[str, T] = {}

    def register(self, spec: T) -> T:
        """Add a spec (anything with a `name`); returns it, so `X = REGISTRY.register(Spec(...))` reads well."""
        if spec.name in self._specs:
            raise ValueError(f"a {self.kind} named {spec.name!r} is registered already")
        self._specs[spec.name] = spec
        return spec

    def unregister(self, name: str) -> None:
        self._specs.pop(name, None)

    def get(self, name: str) -> T:
        try:
            return self._specs[name]
        except KeyError:
            raise UserError(f"{self.option} must be one of {', '.join(self.names())}, not {name!r}") from None

    def names(self) -> tuple[str, ...]:
        return tuple(self._specs)

    def __contains__(self, name: str) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[T]:
        return iter(self._specs.values())
