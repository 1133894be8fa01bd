"""A tiny name → factory registry (timm-style): one per kind of choice (backbone, align, context, loss,
negatives, dataset). Config validation, the CLI's help, the factories and the docs all read these, so adding a
variant is one decorated function or class."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories; an unknown name raises a `ValueError` listing the known ones."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, Callable[..., T]] = {}
        self._descriptions: dict[str, str] = {}

    def register(self, name: str, description: str = "") -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator: register `factory` under `name`. `description` (default: the first line of the factory's
        docstring) is what help texts and docs show."""

        def wrap(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._items:
                raise KeyError(f"{self.kind} {name!r} registered twice")
            self._items[name] = factory
            doc = (getattr(factory, "__doc__", None) or "").strip().splitlines()
            self._descriptions[name] = description or (doc[0] if doc else "")
            return factory

        return wrap

    def get(self, name: str) -> Callable[..., T]:
        try:
            return self._items[name]
        except (KeyError, TypeError):
            raise ValueError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None

    def check(self, name: object) -> None:
        """Raise a `ValueError` naming the choices (in registration order) when `name` is not registered."""
        check_choice(self.kind, name, self.choices())

    def choices(self) -> list[str]:
        """Registered names in registration order (how docs and help list them, default first)."""
        return list(self._items)

    def names(self) -> list[str]:
        return sorted(self._items)

    def describe(self) -> dict[str, str]:
        """name → one-line description, sorted by name."""
        return {name: self._descriptions[name] for name in self.names()}

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def check_choice(name: str, value: object, allowed: tuple[str, ...] | list[str]) -> None:
    """Raise a `ValueError` naming the allowed values when `value` is not one of them."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(str, allowed))}; got {value!r}")
