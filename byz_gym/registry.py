"""Name -> class registries shared by tasks, attacks, aggregation rules and agents.

A registry is a plain dict filled by a decorator (as in Brax). ``make(name, **params)`` rejects
unknown names and unknown parameters with a message that lists the valid ones, unlike factories
that silently drop misspelt keyword arguments.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")

__all__ = ["Registry"]


class Registry(Generic[T]):
    """A registry of named factories of one kind (``"task"``, ``"tampering"``, ...)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator registering a class or factory function under ``name``."""

        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries and self._entries[name] is not factory:
                raise ValueError(f"{self.kind} {name!r} is already registered by {self._entries[name]!r}")
            self._entries[name] = factory
            return factory

        return decorator

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def get(self, name: str) -> Callable[..., T]:
        """The factory registered under ``name``; ``ValueError`` listing the names otherwise."""
        try:
            return self._entries[name]
        except KeyError:
            raise ValueError(
                f"unknown {self.kind} {name!r}; available: {', '.join(self.names()) or '(none)'}"
            ) from None

    def parameters(self, name: str) -> list[str]:
        """Keyword parameters accepted by the factory registered under ``name``."""
        signature = inspect.signature(self.get(name))
        return [
            p.name
            for p in signature.parameters.values()
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"
        ]

    def check_params(self, name: str, params: Mapping[str, Any], *, reserved: tuple[str, ...] = ()) -> None:
        """Raise ``ValueError`` if ``params`` holds a key the factory does not accept."""
        valid = [p for p in self.parameters(name) if p not in reserved]
        unknown = sorted(set(params) - set(valid))
        if unknown:
            raise ValueError(f"{self.kind} {name!r} got unknown parameter(s) {unknown}; valid: {valid or '(none)'}")

    def make(self, name: str, **params: Any) -> T:
        """Build the entry ``name`` with ``params`` after checking both."""
        self.check_params(name, params)
        return self.get(name)(**params)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
