"""Which server folders a client may name: the allow-list behind every path a web user can type.

A `PathPolicy` holds the data roots and checkpoint roots a server was started with. A client sees
each root by its folder name (`camvid`, `checkpoints`) and may name a path either under that name
(`camvid:camvid/…`, `checkpoints/my-model`) or as the server's own path. Anything outside the roots
is refused before the file system is touched, with the same message whether it exists or not, so
a refusal tells nothing about what lies outside. `display` and `redact` write server paths under
their root's name, for what is shown to a client.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def _resolved(path: str | Path) -> Path:
    return Path(os.path.abspath(Path(path).expanduser())).resolve()


@dataclass(frozen=True)
class Root:
    name: str  # how clients see and name it
    path: Path  # resolved


def _roots(paths: Iterable[str | Path]) -> tuple[Root, ...]:
    resolved: list[Path] = []
    for p in paths:
        if str(p).strip() and _resolved(p) not in resolved:
            resolved.append(_resolved(p))
    roots: list[Root] = []
    for path in resolved:
        name = path.name or "root"
        if any(r.name == name for r in roots):  # two roots with one folder name: tell them apart by the parent
            name = f"{path.parent.name}-{name}"
        roots.append(Root(name, path))
    return tuple(roots)


def _inside(path: Path, root: Root) -> bool:
    return path == root.path or path.is_relative_to(root.path)


class PathPolicy:
    """Data roots (dataset specs with a folder) and checkpoint roots (base checkpoints) a client may use."""

    def __init__(self, data_roots: Iterable[str | Path] = (), checkpoint_roots: Iterable[str | Path] = ()) -> None:
        self.data_roots = _roots(data_roots)
        self.checkpoint_roots = _roots(checkpoint_roots)

    def _locate(self, text: str, roots: tuple[Root, ...], what: str, flag: str) -> Path:
        """The server path of `text` inside one of `roots`, else ValueError (the same for any outside path)."""
        parts = Path(text).parts
        for r in roots:
            if parts and parts[0] == r.name:  # named under the root's client-side name
                path = _resolved(r.path.joinpath(*parts[1:]))
                if _inside(path, r):
                    return path
        path = _resolved(text)  # symlinks followed: a link inside a root to a folder outside is outside
        if any(_inside(path, r) for r in roots):
            return path
        allowed = ", ".join(r.name for r in roots) or "none"
        raise ValueError(f"{what} {text!r} is not inside the folders this lab may read ({allowed}); the server's "
                         f"operator can allow another with {flag} DIR")

    def data_spec(self, spec: str) -> str:
        """The spec with its folder as a server path, when it is a generated dataset or its folder lies
        inside a data root; else ValueError."""
        from contextrast.data.build import parse_spec

        parsed = parse_spec(spec)
        if parsed.root is None:
            return spec
        return f"{parsed.name}:{self._locate(parsed.root, self.data_roots, 'the dataset folder', '--data-root')}"

    def checkpoint(self, path: str) -> str:
        """The server path of a checkpoint inside a checkpoint root; else ValueError."""
        return str(self._locate(path, self.checkpoint_roots, "the checkpoint", "--checkpoint"))

    def job_config(self, cfg: Any) -> Any:
        """`cfg` (an ExperimentConfig) with the paths it reads (train.data's folder, train.init_from) as server
        paths inside the roots; ValueError when one lies outside."""
        init_from = self.checkpoint(cfg.train.init_from) if cfg.train.init_from else ""
        train = dataclasses.replace(cfg.train, data=self.data_spec(cfg.train.data), init_from=init_from)
        return dataclasses.replace(cfg, train=train)

    def _all(self) -> list[Root]:
        return sorted((*self.data_roots, *self.checkpoint_roots), key=lambda r: -len(str(r.path)))

    def display(self, path: str | Path) -> str:
        """`path` as a client should see it: under the name of the outermost root that holds it (else its file
        name)."""
        resolved = _resolved(path)
        for r in reversed(self._all()):
            if _inside(resolved, r):
                return str(Path(r.name, resolved.relative_to(r.path)))
        return Path(path).name

    def redact(self, text: str) -> str:
        """`text` with every root's server path written as the root's name."""
        for r in self._all():
            text = text.replace(str(r.path), r.name)
        return text
