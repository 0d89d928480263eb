"""Shared harness of the experiment scripts in ``experiments/``.

Every study measures each configuration in its own fresh interpreter, so that the increase
of the child's ``ru_maxrss`` is that configuration's peak memory. This module holds the
pieces the scripts share instead of each keeping a copy:

- command-line options common to the scripts (:func:`parser`, :func:`add_child_option`,
  :func:`add_threads_option`, :func:`add_json_option`, :func:`add_mem_cap_option`,
  :func:`add_case_options`) and the
  parse that runs a child's work in a child process (:func:`parse_args`);
- child-process runs with an address-space cap and a time-out (:func:`call_child`,
  :func:`child_result`, :func:`emit`, :func:`cap_memory`, :func:`is_oom`, :data:`RESULT_TAG`,
  :data:`EXIT_LIMIT`) and the timed training steps of a child (:func:`time_steps`);
- memory and thread helpers (:func:`maxrss_mb`, :func:`mem_available_mb`,
  :func:`default_mem_cap`, :func:`set_threads`);
- result writing and table printing (:func:`write_json`, :func:`say`, :func:`fmt_mb`,
  :func:`fmt_s`, :func:`fmt_duration`, :func:`aligned`, :func:`say_results`).

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
import time
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
    """Add ``--threads N`` (torch threads in each child process, default ``default``) to
    the script's parser ``ap``, with the help text ``help``."""
    ap.add_argument("--threads", type=int, default=default, help=help)


def add_json_option(ap: argparse.ArgumentParser,
                    help: str = "also write the numbers here") -> None:
    """Add ``--json PATH`` (optional JSON copy of every number) to the script's parser
    ``ap``, with the help text ``help``."""
    ap.add_argument("--json", type=Path, default=None, help=help)


def add_case_options(ap: argparse.ArgumentParser) -> None:
    """Add the options of a script over named validation cases: ``cases`` (``NAME@SEED``,
    one or more), ``--cache`` (the steady-state cache), ``--json`` and ``--quick``."""
    import tempfile

    ap.add_argument("cases", nargs="+", metavar="NAME@SEED")
    ap.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "chromarate-validation"))
    add_json_option(ap, "also write the figures here")
    ap.add_argument("--quick", action="store_true", help="the suite's small case versions")


def simulated_case(name: str, cache: str, *, quick: bool = False, path: str = "localizations"):
    """``(case, simulated case, default config)`` of a case ``NAME@SEED`` of the validation
    suite on the observation ``path`` ("localizations" or "fields"), or SystemExit with the
    reason (imports chromarate when called)."""
    from chromarate.validation.cases import simulate_case
    from chromarate.validation.run import default_config
    from chromarate.validation.suite import case_by_name

    try:
        case = case_by_name(name, quick=quick, path=path)
    except ValueError as exc:
        raise SystemExit(str(exc)) from exc
    return case, simulate_case(case, cache_dir=cache), default_config(case)


def override_pair(text: str) -> tuple[str, object]:
    """``(key, value)`` of a ``KEY=VALUE`` override, the value read as the CLI's ``--set``
    reads it (YAML: ``null`` is None, ``0.5`` a number); SystemExit when malformed."""
    from chromarate._cli.common import _parse_value

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise SystemExit(f"--override takes KEY=VALUE (got {text!r})")
    return key.strip(), _parse_value(value.strip())


def largest_nucleus(locs, config):
    """The :class:`~chromarate.pipeline.NucleusTask` of the largest nucleus the pipeline
    with ``config`` prepares from ``locs`` (imports chromarate when called)."""
    from chromarate.pipeline import NucleusTask, Pipeline

    return largest_task([t for t in Pipeline(config).iter_prepare(locs) if isinstance(t, NucleusTask)])


def largest_task(tasks):
    """The task of ``tasks`` with the largest mask, or SystemExit when there is none."""
    if not tasks:
        raise SystemExit("segmentation found no nucleus")
    return max(tasks, key=lambda t: int(t.mask.sum()))


def corr(a, b) -> float:
    """Pearson r of two arrays over the entries finite in both."""
    import numpy as np

    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.std(x[ok]) == 0 or np.std(y[ok]) == 0:
        return float("nan")
    return float(np.corrcoef(x[ok], y[ok])[0, 1])


def add_mem_cap_option(ap: argparse.ArgumentParser,
                       help: str = "memory cap of each child process "
                                   "(default: half the available memory)") -> None:
    """Add ``--mem-cap-mb M`` (address-space headroom of each child, see :func:`cap_memory`)
    to the script's parser ``ap``, with the help text ``help``."""
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


def parse_args(ap: argparse.ArgumentParser, argv: Sequence[str] | None,
               child: Callable[[dict], Any],
               status: Callable[[Any], int] | None = None) -> argparse.Namespace:
    """Add :func:`add_child_option` and parse ``argv``; in a child, do the child's work.

    Parameters
    ----------
    ap : argparse.ArgumentParser
        The script's parser, with its own options.
    argv : sequence of str or None
        Command line (None: ``sys.argv[1:]``).
    child : callable
        ``child(spec) -> result``: the work of a child process (``--child SPEC``).
    status : callable, optional
        ``status(result) -> int``: the child's exit code (default 0).

    Returns
    -------
    argparse.Namespace
        The parent's arguments. In a child it does not return: it runs ``child``, reports
        the result with :func:`emit` and exits with ``status(result)``.
    """
    add_child_option(ap)
    args = ap.parse_args(argv)
    spec = child_spec(args)
    if spec is None:
        return args
    result = child(spec)
    emit(result)
    raise SystemExit(0 if status is None else status(result))


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


def _proc_kb(path: str, key: str) -> int | None:
    """The kB figure of the line ``key: N kB`` of a ``/proc`` file, None where there is none."""
    try:
        with open(path, encoding="ascii") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def vm_size_bytes() -> int | None:
    """Current virtual memory size of this process in bytes (``VmSize`` of
    ``/proc/self/status``), None where ``/proc`` is not available."""
    kb = _proc_kb("/proc/self/status", "VmSize")
    return None if kb is None else kb * 1024


def mem_available_mb() -> float | None:
    """Memory available to new processes in MB (``MemAvailable`` of ``/proc/meminfo``),
    None where ``/proc`` is not available."""
    kb = _proc_kb("/proc/meminfo", "MemAvailable")
    return None if kb is None else kb / 1024.0


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


def time_steps(step: Callable[[], float], steps: int, out: dict, base_mb: float, *,
               max_s: float | None = None, oom_prefix: str = "out of memory",
               oom_chars: int = 160) -> tuple[list[float], list[float]] | None:
    """Time one warm-up call and then ``steps`` calls of a training step.

    Parameters
    ----------
    step : callable
        One training step; returns its loss.
    steps : int
        Timed steps after the warm-up step.
    out : dict
        The configuration's result: gets ``warmup_s``, and on a failure ``ok=False``,
        ``reason`` (``"too_slow"``: the warm-up took longer than ``max_s``; ``"oom"``: an
        allocation failed, see :func:`is_oom`), ``peak_mb`` and ``message``.
    base_mb : float
        :func:`maxrss_mb` before the steps (``peak_mb`` is the increase over it).
    max_s : float, optional
        Longest warm-up step that goes on to the timed steps.
    oom_prefix : str
        Start of the out-of-memory message, before ``": "`` and the exception's first line.
    oom_chars : int
        Characters of the exception's first line in that message.

    Returns
    -------
    (list of float, list of float) or None
        Seconds of each timed step and the losses (warm-up step first); None after a
        handled failure (see ``out``). Other exceptions propagate.
    """
    try:
        t0 = time.perf_counter()
        losses = [step()]
        out["warmup_s"] = time.perf_counter() - t0
        if max_s and out["warmup_s"] > max_s:
            out.update(ok=False, reason="too_slow", peak_mb=maxrss_mb() - base_mb,
                       message=f"warm-up step took {out['warmup_s']:.1f} s > {max_s:g} s")
            return None
        times = []
        for _ in range(int(steps)):
            t0 = time.perf_counter()
            losses.append(step())
            times.append(time.perf_counter() - t0)
    except (RuntimeError, MemoryError) as exc:
        if is_oom(exc):
            out.update(ok=False, reason="oom", peak_mb=maxrss_mb() - base_mb,
                       message=f"{oom_prefix}: {str(exc).splitlines()[0][:oom_chars]}")
            return None
        raise
    return times, losses


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
    """Megabytes with a thousands separator and one decimal (``'6,293.2'``), ``-`` for None."""
    return "-" if x is None else f"{x:,.1f}"


def fmt_s(x: float | None) -> str:
    """Seconds without a unit, four decimals below 1 s and two above (``'0.1294'``,
    ``'7.02'``), ``-`` for None."""
    if x is None:
        return "-"
    return f"{x:.4f}" if x < 1 else f"{x:.2f}"


def fmt_duration(x: float | None) -> str:
    """Seconds with a unit, ``ms`` below 1 s and ``s`` above (``'12.5 ms'``, ``'1.25 s'``),
    ``-`` for None."""
    if x is None:
        return "-"
    return f"{x * 1000:.1f} ms" if x < 1 else f"{x:.2f} s"


def say_results(rows: Sequence[tuple[str, dict]], line: Callable[[dict], str], width: int,
                indent: str = "") -> None:
    """Print a table row per result: ``indent``, the label left-aligned in ``width``
    characters, then ``line(result)`` -- or ``FAILED:`` and the message of a result that is
    not ``ok``.

    Parameters
    ----------
    rows : sequence of (str, dict)
        Label and child result.
    line : callable
        The cells of a successful result, as one string.
    width : int
        Width of the label column.
    indent : str
        Start of every line.
    """
    for label, r in rows:
        if r.get("ok"):
            say(f"{indent}{label:<{width}} {line(r)}")
        else:
            say(f"{indent}{label:<{width}} FAILED: {r.get('message')}")


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


def seed_name(name: str) -> tuple[int, int | None] | None:
    """``(N, M)`` of a ``seedN`` (M None) or ``seedN-nM`` case name (the nucleus of
    ``chromarate simulate --seed N``, drawn with M localizations); None for any other name
    not starting with ``seed``; SystemExit for a malformed ``seed…`` name."""
    import re

    if not name.startswith("seed"):
        return None
    match = re.fullmatch(r"seed(\d+)(?:-n(\d+))?", name)
    if match is None:
        raise SystemExit(f"expected seedN or seedN-nM (M localizations), got {name!r}")
    return int(match.group(1)), None if match.group(2) is None else int(match.group(2))


def localization_case(name: str, cache: str, cli_cache, quick: bool = False):
    """``(localizations, pipeline config, scoring target, its pixel size, its origin)`` of
    ``seedN`` (``chromarate simulate --seed N``, through ``experiments/cli_seeds.py``'s
    cache ``cli_cache``; ``seedN-nM``: the same nucleus drawn with M localizations) or of a
    localization case ``NAME@SEED`` of the suite."""
    import numpy as np

    seed = seed_name(name)
    if seed is not None:
        import cli_seeds
        from chromarate.config import PipelineConfig

        Path(cli_cache).mkdir(parents=True, exist_ok=True)
        locs, t = cli_seeds._simulate(seed[0], Path(cli_cache), seed[1])
        return locs, PipelineConfig(), np.asarray(t["rate"], float), float(t["pixel_size_nm"]), \
            tuple(t["origin_nm"])
    from chromarate.validation.run import target_rate

    _, syn, cfg = simulated_case(name, cache, quick=quick)
    return syn.localizations, cfg, target_rate(syn)[0], syn.pixel_size_nm, syn.origin_nm


def bias_summary(bias) -> dict:
    """Mean, RMS and worst (largest in size, with its sign) of relative biases of the mean
    rate, and how many are beyond 10 %."""
    import numpy as np

    b = np.asarray(bias, dtype=float)
    return {"mean": float(b.mean()), "rms": float(np.sqrt((b ** 2).mean())),
            "worst": float(b[np.argmax(np.abs(b))]), "over_10pct": int(np.sum(np.abs(b) > 0.10))}


def with_level_factor(bias: float, factor: float) -> float:
    """The relative bias of a mean rate multiplied by ``factor`` (the censored level's
    factor; ``1 / factor`` divides it out): r is unchanged, the mean scales."""
    return (1.0 + float(bias)) * float(factor) - 1.0
