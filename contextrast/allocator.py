"""The process's memory allocator: jemalloc, keeping freed pages, where the system has it.

Why: glibc's malloc hands every block of 32 MiB or more to the kernel when it is freed (its mmap threshold
cannot be raised above that), so each forward pass at 1024×2048 maps its large activations afresh and
touches every 4 KiB page of them for the first time again: a page fault each, expensive under a hypervisor.
On the project's 2-core reference machine that was a quarter of eager inference at 1024×2048 (1.8 s → 1.4 s
with jemalloc, medians of five calls) and a quarter of the compiled bf16 network's (0.46 s → 0.34 s). jemalloc with `dirty_decay_ms:-1` keeps freed
pages mapped and hands them out again, as a caching allocator does; the price is that the process keeps the
memory of its largest moment (a server that once ran a 2048-side image holds on to that peak).

A library cannot change its allocator once the process runs: `contextrast` and `python -m benchmarks`
start themselves again (`exec`, same process id) with jemalloc preloaded, before anything heavy is
imported. `CONTEXTRAST_ALLOCATOR=system` keeps the system allocator; without a jemalloc on the library path
(Debian/Ubuntu: `apt install libjemalloc2`) nothing changes. Child processes get the environment as it was:
a child `contextrast` command makes its own choice, other programs (a browser, a compiler) are left alone.
(torchrun's ranks are `contextrast` commands too); Python children that are not programs of their own
(multiprocessing's spawned processes: the worker's training child) run with the system allocator.
"""

from __future__ import annotations

import ctypes
import glob
import os
import sys

ENV = "CONTEXTRAST_ALLOCATOR"
CHOICES = ("jemalloc", "system")  # the first is the default
# freed pages stay mapped (reused, never returned to the kernel); with any finite decay jemalloc purged blocks
# of this size at once here, and each forward pass faulted them in again
JEMALLOC_CONF = "dirty_decay_ms:-1"
# set for the restarted process only (and removed by it): what it has to undo in its environment
_PRELOADED = "_CONTEXTRAST_PRELOADED"
_CONF_ADDED = "_CONTEXTRAST_MALLOC_CONF_ADDED"
_started_with_conf: str | None = None  # jemalloc's options this process was started with, once restarted


def requested(environ: dict[str, str] | None = None) -> str:
    """The allocator asked for through `CONTEXTRAST_ALLOCATOR` (default: jemalloc); ValueError if unknown."""
    value = (os.environ if environ is None else environ).get(ENV, "").strip().lower() or CHOICES[0]
    if value not in CHOICES:
        raise ValueError(f"{ENV} must be one of {', '.join(CHOICES)}; got {value!r}")
    return value


# where distributions and environments put it (Debian/Ubuntu multiarch, Fedora, source builds, conda/venv prefix)
_SEARCH = ("/usr/lib/*-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib", "/lib/*-linux-gnu")


def jemalloc_library() -> str | None:
    """The absolute path of a jemalloc shared library (`libjemalloc.so.2`) in the usual places, or None. A look at
    a few folders (no `ldconfig` or compiler run, as `ctypes.util.find_library` does at every start)."""
    if not sys.platform.startswith("linux"):
        return None
    for folder in (os.path.join(sys.prefix, "lib"), *_SEARCH):
        for found in sorted(glob.glob(os.path.join(folder, "libjemalloc.so.2"))):
            if os.path.isfile(found):
                return found
    return None


def current() -> str:
    """'jemalloc' when jemalloc serves this process's malloc, else 'system'."""
    return "jemalloc" if hasattr(ctypes.CDLL(None), "mallctl") else "system"


def describe() -> dict[str, str | None]:
    """What serves malloc here, for result files: allocator, jemalloc's options (MALLOC_CONF) if in use, and the
    choice asked for."""
    allocator = current()
    conf = (_started_with_conf or os.environ.get("MALLOC_CONF")) if allocator == "jemalloc" else None
    try:
        asked: str | None = requested()
    except ValueError:
        asked = None
    return {"allocator": allocator, "malloc_conf": conf, "requested": asked}


def _restore_environment() -> None:
    """In the restarted process: the environment as its parent had it, for this process's children."""
    global _started_with_conf
    _started_with_conf = os.environ.get("MALLOC_CONF")
    library = os.environ.pop(_PRELOADED, None)
    if library is not None:
        kept = [p for p in os.environ.get("LD_PRELOAD", "").split(":") if p and p != library]
        if kept:
            os.environ["LD_PRELOAD"] = ":".join(kept)
        else:
            os.environ.pop("LD_PRELOAD", None)
    if os.environ.pop(_CONF_ADDED, None) is not None:
        os.environ.pop("MALLOC_CONF", None)


def restart_with_jemalloc() -> None:
    """Start this program again with jemalloc preloaded, when it is asked for (the default), found, and not in
    use yet; returns when nothing is to be done (or `exec` is refused). Call it first thing in a program's
    entry point, never from a library call: it replaces the running process."""
    if os.environ.get(_PRELOADED) is not None:  # this is the restarted process (preloaded or, failing that, not)
        _restore_environment()
        return
    try:
        if requested() != "jemalloc" or current() == "jemalloc":
            return
    except ValueError as e:
        print(f"warning: {e}; the system allocator is kept", file=sys.stderr)
        return
    # only a program started from its own file or module can be started again: not an interactive session, nor a
    # script read from standard input (already consumed)
    if sys.flags.interactive or not getattr(sys, "orig_argv", None) or sys.argv[:1] in ([""], ["-"]):
        return
    library = jemalloc_library()
    if library is None:
        return
    env = dict(os.environ)
    env["LD_PRELOAD"] = ":".join(p for p in (library, env.get("LD_PRELOAD", "")) if p)
    env[_PRELOADED] = library
    if "MALLOC_CONF" not in env:  # a user's own jemalloc options win
        env["MALLOC_CONF"], env[_CONF_ADDED] = JEMALLOC_CONF, "1"
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
    except OSError as e:
        print(f"warning: could not restart with jemalloc ({e}); the system allocator is kept", file=sys.stderr)
