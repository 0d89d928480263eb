"""Shared harness of the experiment scripts in ``experiments/``.

Every study measures each configuration in its own fresh interpreter, so that the increase
of the child's ``ru_maxrss`` is that configuration's peak memory. This module holds the
pieces the scripts share instead of each keeping a copy:

- command-line options common to the scripts (:func:`parser`, :func:`add_child_option`,
  :func:`add_threads_option`, :func:`add_json_option`, :func:`add_mem_cap_option`);
- child-process runs with an address-space cap and a time-out (:func:`call_child`,
  :func:`child_result`, :func:`emit`, :func:`cap_memory`, :func:`is_oom`, :data:`RESULT_TAG`,
  :data:`EXIT_LIMIT`);
- memory and thread helpers (:func:`maxrss_mb`, :func:`mem_available_mb`,
  :func:`default_mem_cap`, :func:`set_threads`);
- result writing and table printing (:func:`write_json`, :func:`say`, :func:`fmt_mb`,
  :func:`fmt_s`, :func:`fmt_duration`, :func:`aligned`).

The scripts import it after putting their own folder first on ``sys.path``::

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _harness as H

Nothing here imports torch or chromarate: the parent processes stay light and fast to
start.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

#: Prefix of the one stdout line in which a child reports its result as JSON.
RESULT_TAG = "@@BENCH_RESULT "

#: Exit code of a child that ran out of its memory cap or was too slow (handled, not a crash).
EXIT_LIMIT = 3


# --------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------

def parser(doc: str | None, *, first: str = "paragraph") -> argparse.ArgumentParser:
    """Argument parser whose description is the start of a script's docstring.

    Parameters
    ----------
    doc : str or None
        The script's ``__doc__``.
    first : {"paragraph", "line"}
        Use the first paragraph (kept as written, ``RawDescriptionHelpFormatter``) or only
        the first line of ``doc`` as the description.

    Returns
    -------
    argparse.ArgumentParser
        A parser without options yet.
    """
    doc = doc or ""
    if first == "line":
        return argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    return argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def add_child_option(ap: argparse.ArgumentParser) -> None:
    """Add the hidden ``--child SPEC`` option through which a script re-invokes itself.

    Parameters
    ----------
    ap : argparse.ArgumentParser
        The script's parser.
    """
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)


def add_threads_option(ap: argparse.ArgumentParser, default: int = 1,
                       help: str = "torch threads per child (default 1)") -> None:
    """Add ``--threads N`` (torch threads in each child process).

    Parameters
    ----------
    ap : argparse.ArgumentParser
        The script's parser.
    default : int
        Default number of threads.
    help : str
        Help text.
    """
    ap.add_argument("--threads", type=int, default=default, help=help)


def add_json_option(ap: argparse.ArgumentParser,
                    help: str = "also write the numbers here") -> None:
    """Add ``--json PATH`` (optional JSON copy of every number).

    Parameters
    ----------
    ap : argparse.ArgumentParser
        The script's parser.
    help : str
        Help text.
    """
    ap.add_argument("--json", type=Path, default=None, help=help)


def add_mem_cap_option(ap: argparse.ArgumentParser,
                       help: str = "memory cap of each child process "
                                   "(default: half the available memory)") -> None:
    """Add ``--mem-cap-mb M`` (address-space headroom of each child, see :func:`cap_memory`).

    Parameters
    ----------
    ap : argparse.ArgumentParser
        The script's parser.
    help : str
        Help text.
    """
    ap.add_argument("--mem-cap-mb", type=float, default=None, help=help)


def child_spec(args: argparse.Namespace) -> dict | None:
    """The decoded ``--child`` specification, or None in the parent process.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed arguments of a parser with :func:`add_child_option`.

    Returns
    -------
    dict or None
        The JSON specification the parent passed, None when not a child.
    """
    return None if getattr(args, "child", None) is None else json.loads(args.child)


# --------------------------------------------------------------------------------------
# memory and threads
# --------------------------------------------------------------------------------------

def maxrss_mb() -> float:
    """Peak resident set size of this process so far.

    Returns
    -------
    float
        MB (Linux reports kB, macOS bytes).
    """
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if sys.platform == "darwin":
        return r / 2**20
    return r / 1024.0


def vm_size_bytes() -> int | None:
    """Current virtual memory size of this process (``VmSize`` of ``/proc/self/status``).

    Returns
    -------
    int or None
        Bytes, None where ``/proc`` is not available.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def mem_available_mb() -> float | None:
    """Memory available to new processes (``MemAvailable`` of ``/proc/meminfo``).

    Returns
    -------
    float or None
        MB, None where ``/proc`` is not available.
    """
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def default_mem_cap(cap_mb: float | None) -> float | None:
    """``cap_mb`` if given, else half the available memory (None if unknown).

    Parameters
    ----------
    cap_mb : float or None
        The ``--mem-cap-mb`` value.

    Returns
    -------
    float or None
        The cap in MB.
    """
    if cap_mb is not None:
        return cap_mb
    avail = mem_available_mb()
    return 0.5 * avail if avail else None


def cap_memory(cap_mb: float | None) -> None:
    """Limit this process's address space to its current size plus ``cap_mb``.

    A no-op when ``cap_mb`` is falsy or the current size is unknown; never raises.

    Parameters
    ----------
    cap_mb : float or None
        Headroom in MB.
    """
    if not cap_mb:
        return
    vm = vm_size_bytes()
    if vm is None:
        return
    limit = vm + int(cap_mb * 2**20)
    try:
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ValueError, OSError):
        pass


def is_oom(exc: BaseException) -> bool:
    """Whether an exception says that an allocation failed.

    Parameters
    ----------
    exc : BaseException
        The exception caught around the measured work.

    Returns
    -------
    bool
        True for ``MemoryError`` and allocator messages (numpy, torch, C++ ``bad_alloc``).
    """
    if isinstance(exc, MemoryError):
        return True
    msg = str(exc).lower()
    return any(s in msg for s in ("can't allocate", "cannot allocate", "out of memory",
                                  "bad_alloc", "not enough memory"))


def set_threads(n: int | None, *, omp_env: bool = False) -> None:
    """Set torch's intra-op thread count (imports torch); nothing for 0 or None.

    Parameters
    ----------
    n : int or None
        Number of threads.
    omp_env : bool
        Also set ``OMP_NUM_THREADS`` (if not set yet) for BLAS libraries loaded later, and
        tolerate a missing torch.
    """
    if not n:
        return
    if omp_env:
        os.environ.setdefault("OMP_NUM_THREADS", str(n))
    try:
        import torch
    except ImportError:  # pragma: no cover
        if omp_env:
            return
        raise
    torch.set_num_threads(int(n))


# --------------------------------------------------------------------------------------
# child processes
# --------------------------------------------------------------------------------------

def emit(result: Any) -> None:
    """Report a child's result to the parent: one ``RESULT_TAG`` line of JSON on stdout.

    Parameters
    ----------
    result : object
        JSON-serialisable result.
    """
    sys.stdout.write(RESULT_TAG + json.dumps(result) + "\n")
    sys.stdout.flush()


def call_child(script: str, spec: dict, timeout: float, *, env: dict | None = None,
               tail_lines: int = 8) -> tuple[Any, dict | None]:
    """Run ``script --child <spec as JSON>`` in a fresh interpreter.

    Parameters
    ----------
    script : str
        Path of the script (usually the caller's ``__file__``).
    spec : dict
        JSON-serialisable configuration the child decodes with :func:`child_spec`.
    timeout : float
        Seconds before the child is killed.
    env : dict, optional
        Environment of the child (default: this one's).
    tail_lines : int
        Lines of the child's stderr (or stdout) quoted in a failure message.

    Returns
    -------
    tuple
        ``(result, None)`` with the decoded :data:`RESULT_TAG` line, or ``(None, failure)``
        with ``failure = {"ok": False, "reason": "timeout" | "oom" | "crash",
        "message": ...}``.
    """
    cmd = [sys.executable, os.path.abspath(script), "--child", json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return None, {"ok": False, "reason": "timeout",
                      "message": f"child exceeded {timeout:.0f} s"}
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):]), None
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-tail_lines:]
    reason = "oom" if proc.returncode in (-9, 137) else "crash"
    return None, {"ok": False, "reason": reason,
                  "message": f"child exited with {proc.returncode}: " + " | ".join(tail)}


def child_result(script: str, spec: dict, timeout: float, *,
                 on_failure: Callable[[dict], Any] | None = None, **kw) -> Any:
    """Run one configuration in a child (:func:`call_child`) and return one value.

    Parameters
    ----------
    script, spec, timeout
        As for :func:`call_child`.
    on_failure : callable, optional
        Maps the failure dict to what the caller returns instead (default: the failure
        dict itself).
    **kw
        ``env`` and ``tail_lines`` of :func:`call_child`.

    Returns
    -------
    object
        The child's result, or ``on_failure(failure)``.
    """
    res, failure = call_child(script, spec, timeout, **kw)
    if failure is None:
        return res
    return failure if on_failure is None else on_failure(failure)


# --------------------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------------------

def say(*args: Any) -> None:
    """``print`` that flushes (progress lines of long runs appear at once).

    Parameters
    ----------
    *args
        As for ``print``.
    """
    print(*args, flush=True)


def write_json(path: Path | str, obj: Any, *, newline: bool = False, **kw) -> None:
    """Write ``json.dumps(obj, **kw)`` to ``path`` as UTF-8.

    Parameters
    ----------
    path : path-like
        Output file (its folder must exist).
    obj : object
        The report.
    newline : bool
        End the file with a newline.
    **kw
        ``json.dumps`` options (``indent``, ``default``, ``allow_nan``...).
    """
    text = json.dumps(obj, **kw) + ("\n" if newline else "")
    Path(path).write_text(text, encoding="utf-8")


def fmt_mb(x: float | None) -> str:
    """Megabytes with a thousands separator and one decimal, ``-`` for None.

    Parameters
    ----------
    x : float or None
        MB.

    Returns
    -------
    str
        e.g. ``'6,293.2'``.
    """
    return "-" if x is None else f"{x:,.1f}"


def fmt_s(x: float | None) -> str:
    """Seconds without a unit: four decimals below 1 s, two above; ``-`` for None.

    Parameters
    ----------
    x : float or None
        Seconds.

    Returns
    -------
    str
        e.g. ``'0.1294'`` or ``'7.02'``.
    """
    if x is None:
        return "-"
    return f"{x:.4f}" if x < 1 else f"{x:.2f}"


def fmt_duration(x: float | None) -> str:
    """Seconds with a unit: ``ms`` below 1 s, ``s`` above; ``-`` for None.

    Parameters
    ----------
    x : float or None
        Seconds.

    Returns
    -------
    str
        e.g. ``'12.5 ms'`` or ``'1.25 s'``.
    """
    if x is None:
        return "-"
    return f"{x * 1000:.1f} ms" if x < 1 else f"{x:.2f} s"


def aligned(cells: Sequence[Sequence[str]], sep: str = "  ",
            right: Sequence[int] = ()) -> list[str]:
    """Text table: every column as wide as its widest cell.

    Parameters
    ----------
    cells : sequence of sequences of str
        Rows (the first one usually the header), all of the same length.
    sep : str
        Column separator.
    right : sequence of int
        Indices of the right-aligned columns (numbers); the others are left-aligned.

    Returns
    -------
    list of str
        One line per row.

    Examples
    --------
    >>> aligned([["name", "n"], ["a", "10"]], right=[1])
    ['name   n', 'a     10']
    """
    if not cells:
        return []
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    return [sep.join(c.rjust(w) if i in right else c.ljust(w)
                     for i, (c, w) in enumerate(zip(row, widths))) for row in cells]
