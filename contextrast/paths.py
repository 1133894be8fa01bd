"""Which server folders a client may name: the allow-list behind every path a web user can type.

A `PathPolicy` holds the data roots and checkpoint roots a server was started with. A dataset spec or
checkpoint path outside them is refused before the file system is touched, with the same message
whether it exists or not, so a refusal tells nothing about what lies outside. `display` and
`redact` write server paths relative to the root that holds them, for what is shown to a client.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def _resolved(path: str | Path) -> Path:
    return Path(os.path.abspath(Path(path).expanduser())).resolve()


@dataclass(frozen=True)
class Root:
    given: str  # as the server's operator wrote it, shown in messages
    path: Path  # resolved


def _roots(paths: Iterable[str | Path]) -> tuple[Root, ...]:
    out: dict[Path, Root] = {}
    for p in paths:
        if str(p).strip():
            out.setdefault(_resolved(p), Root(str(p), _resolved(p)))
    return tuple(out.values())


class PathPolicy:
    """Data roots (dataset specs with a folder) and checkpoint roots (base checkpoints) a client may use."""

    def __init__(self, data_roots: Iterable[str | Path] = (), checkpoint_roots: Iterable[str | Path] = ()) -> None:
        self.data_roots = _roots(data_roots)
        self.checkpoint_roots = _roots(checkpoint_roots)

    def _inside(self, text: str, roots: tuple[Root, ...], what: str, flag: str) -> Path:
        path = _resolved(text)  # symlinks followed: a link inside a root to a folder outside is outside
        if any(path == r.path or path.is_relative_to(r.path) for r in roots):
            return path
        allowed = ", ".join(r.given for r in roots) or "none"
        raise ValueError(f"{what} {text!r} is not inside the folders this lab may read ({allowed}); the server's "
                         f"operator can allow another with {flag} DIR")

    def data_spec(self, spec: str) -> str:
        """`spec`, when it is a generated dataset or its folder lies inside a data root; else ValueError."""
        from contextrast.data.build import parse_spec

        parsed = parse_spec(spec)
        if parsed.root is not None:
            self._inside(parsed.root, self.data_roots, "the dataset folder", "--data-root")
        return spec

    def checkpoint(self, path: str) -> str:
        """`path`, when it lies inside a checkpoint root; else ValueError."""
        self._inside(path, self.checkpoint_roots, "the checkpoint", "--checkpoint")
        return path

    def job_config(self, cfg: Any) -> None:
        """The paths an ExperimentConfig reads (train.data's folder, train.init_from) lie inside the roots."""
        self.data_spec(cfg.train.data)
        if cfg.train.init_from:
            self.checkpoint(cfg.train.init_from)

    def display(self, path: str | Path) -> str:
        """`path` as a client should see it: under the root that holds it, as the operator named that root."""
        resolved = _resolved(path)
        for r in sorted((*self.data_roots, *self.checkpoint_roots), key=lambda r: -len(r.path.parts)):
            if resolved == r.path or resolved.is_relative_to(r.path):
                rel = resolved.relative_to(r.path)
                return str(Path(r.given) / rel) if rel.parts else r.given
        return Path(path).name

    def redact(self, text: str) -> str:
        """`text` with every absolute root path written as its root's given name."""
        for r in sorted((*self.data_roots, *self.checkpoint_roots), key=lambda r: -len(str(r.path))):
            text = text.replace(str(r.path), r.given)
        return text
