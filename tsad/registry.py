"""One small registry: names a user writes in the config (model=, dataset.family=, dataset.protocol=) -> objects.

Entries register themselves with a decorator when their module is imported; a lookup that misses
imports every module of the registry's package once, so adding an entry needs no list edited anywhere.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Generic, TypeVar

from tsad.errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries of one kind, found by name; `key` is the config key a user sets to choose one."""

    def __init__(self, key: str, package: str):
        self.key, self.package = key, package
        self._entries: dict[str, T] = {}
        self._imported = False

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: make the decorated object available as `<key>=<name>`."""

        def add(entry: T) -> T:
            self._entries[name] = entry
            return entry

        return add

    def get(self, name) -> T:
        if name not in self._entries:
            self._import_all()
        if name not in self._entries:
            raise UserError(f"unknown {self.key} {name!r}; known: {', '.join(self.names())}")
        return self._entries[name]

    def names(self) -> list[str]:
        self._import_all()
        return sorted(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return [(name, self._entries[name]) for name in self.names()]

    def _import_all(self) -> None:
        if self._imported:
            return
        package = importlib.import_module(self.package)
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{self.package}.{module.name}")
        self._imported = True
