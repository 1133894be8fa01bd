"""Gradio imported without its type-stub writer.

When Gradio's component metaclass creates a component class (its own eighty and the lab's), it re-reads and
re-parses that class's whole source file and writes a `.pyi` stub beside it: an aid for authors of Gradio
components in their editor, about half of `import gradio` (1.3 of 2.7 s on 2 cores: most of the lab's start-up
after torch), and a write into the installed package and into this folder at every start. `skip_type_stubs()`
turns that step off as `gradio.component_meta` loads; once Gradio is imported it changes nothing (the lab
imports this module first, in `app/__init__.py`)."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

MODULE = "gradio.component_meta"


class _WithoutStubs(importlib.abc.MetaPathFinder):
    """Finds `gradio.component_meta` as the path finder does; once it has run, its stub writer does nothing. It leaves
    `sys.meta_path` after that one module has loaded (not while the import system walks the list)."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname != MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec  # not a plain source module: the import goes on as it would have
        loader = spec.loader
        run_module = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            try:
                run_module(module)
            finally:
                del loader.exec_module  # type: ignore[attr-defined]  # the loader's own method again
                if self in sys.meta_path:
                    sys.meta_path.remove(self)
            if callable(getattr(module, "create_or_modify_pyi", None)):  # a Gradio without it: nothing to turn off
                module.create_or_modify_pyi = _no_stub  # type: ignore[attr-defined]

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _no_stub(*args: object, **kwargs: object) -> None:
    return None


def skip_type_stubs() -> None:
    """Before Gradio is imported: its components are created without writing type stubs."""
    if MODULE not in sys.modules and not any(isinstance(f, _WithoutStubs) for f in sys.meta_path):
        sys.meta_path.insert(0, _WithoutStubs())
