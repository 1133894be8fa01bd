"""contextrast.allocator: the program restarts itself with jemalloc where it is found, and leaves the
environment of its own children as it was."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from contextrast import allocator

ROOT = Path(__file__).resolve().parents[1]
# what a program does first (`contextrast`, `python -m benchmarks`), then what the process looks like after it
PROBE = ("from contextrast.allocator import restart_with_jemalloc, current, describe; restart_with_jemalloc()\n"
         "import json, os, sys\n"
         "print(json.dumps({'allocator': current(), 'described': describe(), 'argv': sys.argv[1:], "
         "'env': {k: os.environ.get(k) for k in ('LD_PRELOAD', 'MALLOC_CONF', '_CONTEXTRAST_PRELOADED', "
         "'_CONTEXTRAST_MALLOC_CONF_ADDED')}}))")
HAS_JEMALLOC = allocator.jemalloc_library() is not None
needs_jemalloc = pytest.mark.skipif(not HAS_JEMALLOC, reason="no jemalloc on this machine's library path")


def _run(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items()
            if k not in ("LD_PRELOAD", "MALLOC_CONF", allocator.ENV, "_CONTEXTRAST_PRELOADED")}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env={**base, **env}, capture_output=True, text=True,
                          timeout=60)


def _probe(*argv: str, **env: str) -> dict:
    done = _run("-c", PROBE, *argv, **env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_requested_reads_the_switch_and_refuses_unknown_names() -> None:
    assert allocator.requested({}) == "jemalloc"
    assert allocator.requested({allocator.ENV: " System "}) == "system"
    with pytest.raises(ValueError, match="jemalloc, system"):
        allocator.requested({allocator.ENV: "tcmalloc"})


def test_the_default_is_jemalloc_where_found_and_children_get_the_environment_as_it_was() -> None:
    seen = _probe("--flag", "a b")
    assert seen["allocator"] == ("jemalloc" if HAS_JEMALLOC else "system")
    assert seen["argv"] == ["--flag", "a b"]  # the restarted program got its arguments
    assert seen["env"] == {"LD_PRELOAD": None, "MALLOC_CONF": None, "_CONTEXTRAST_PRELOADED": None,
                           "_CONTEXTRAST_MALLOC_CONF_ADDED": None}
    if HAS_JEMALLOC:
        assert seen["described"] == {"allocator": "jemalloc", "malloc_conf": allocator.JEMALLOC_CONF,
                                     "requested": "jemalloc"}


def test_system_keeps_glibc_and_a_bad_value_warns_without_failing() -> None:
    assert _probe(**{allocator.ENV: "system"})["allocator"] == "system"
    done = _run("-c", PROBE, **{allocator.ENV: "bogus"})
    assert done.returncode == 0 and "must be one of jemalloc, system" in done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["allocator"] == "system"


@needs_jemalloc
def test_a_users_own_preload_and_jemalloc_options_are_kept() -> None:
    libm = "libm.so.6"
    seen = _probe(LD_PRELOAD=libm, MALLOC_CONF="narenas:2")
    assert seen["allocator"] == "jemalloc"
    assert seen["env"]["LD_PRELOAD"] == libm and seen["env"]["MALLOC_CONF"] == "narenas:2"
    assert seen["described"]["malloc_conf"] == "narenas:2"


def test_the_command_line_restarts_with_its_arguments() -> None:
    done = _run("-m", "contextrast.cli", "summary", "--help")
    assert done.returncode == 0 and "usage: contextrast summary" in done.stdout, done.stderr
    assert "warning" not in done.stderr
