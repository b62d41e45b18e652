"""The experiments engine: one record per run, resumable, fanned out.

A *run* is one (experiment, candidate, seed) of
:data:`tripletutils.experiments.EXPERIMENTS`. When it ends, its *record* is
written atomically to ``tripletutils/results/<experiment>/<run id>.json`` (package
data: an installed package carries the book's records): the
run's whole configuration, its seed, the fingerprint of the code that ran it
(:func:`tripletutils.fingerprint.code_fingerprint`), the fingerprint of the data,
the machine, the precision actually computed, the metrics, the seconds and the
date. The run id hashes everything that defines the run (experiment,
candidate, its configuration, what all runs share, the seed).

* :func:`run_experiments` (``make experiments [NAME=...]``, ``python -m
  tripletutils.engine``) runs only the runs whose record is missing, stale
  (made by other code or data) or corrupt (named, then re-run). It holds a lock
  on the results folder, so a second invocation waits; a killed one loses at
  most the runs in flight. The runs are independent tasks given to a
  ``concurrent.futures.Executor``: a local pool of ``workers`` processes of
  one thread each, or, with ``scheduler="tcp://HOST:8786"``, a Dask
  ``distributed`` cluster through its client's executor. Every run computes
  with one thread, so a run's metrics are the same, bit for bit, whichever
  way it ran.
* An experiment may come *after* others (``Experiment.after``): its
  candidates are then a function of their results, resolved when it is
  planned (:func:`resolve_candidates`), so its run ids change when the
  choice does. :func:`run_experiments` runs the experiments in stages, each
  once those it comes after are complete; an experiment whose dependencies
  are incomplete waits (one line says for what) and runs nothing.
* :func:`load_results` gives a chapter an experiment's results, built from its
  records; it refuses stale records (unless named) and missing runs.
* :func:`check_records` lists every problem of a results folder (CI runs it on
  the committed records).

This module builds on :mod:`tripletutils.experiments`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime
import fcntl
import hashlib
import json
import math
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path
from typing import (
    Callable,
    Dict,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)

from . import __version__
from .runtime import import_tensorflow

import_tensorflow()  # quietly, before the experiments import TensorFlow
from .experiments import EXPERIMENTS, Experiment  # noqa: E402
from .fingerprint import code_fingerprint, data_fingerprint  # noqa: E402

__all__ = [
    "RESULTS",
    "RECORD_FORMAT",
    "Run",
    "plan",
    "resolve_candidates",
    "run_experiments",
    "load_results",
    "check_records",
    "main",
]

#: Where the committed results live, the package's ``results`` folder (installed
#: with it, so that a chapter opened alone, in Colab or an empty folder, reads them).
RESULTS = Path(__file__).resolve().parent / "results"
#: The version of the record layout (part of every run id).
RECORD_FORMAT = 1
#: The name of the lock file in a results folder.
_LOCK = ".lock"
_RECORD_KEYS = (
    "format",
    "run_id",
    "experiment",
    "candidate",
    "seed",
    "config",
    "code_fingerprint",
    "data_fingerprint",
    "metrics",
    "seconds",
)


class Run:
    """One (experiment, candidate, seed): what a record describes.

    Parameters
    ----------
    experiment : str
        A key of :data:`tripletutils.experiments.EXPERIMENTS`.
    candidate : str
        One of that experiment's ``candidate_keys``.
    seed : int
    config : dict, optional
        The candidate's configuration. Required when the experiment's
        candidates are chosen from records (:func:`plan` resolves them);
        otherwise it must be the experiment's own (the default).

    Attributes
    ----------
    config : dict
        ``{"candidate": ..., "common": ..., "data": "mnist"}``: everything
        that defines the run besides its seed.
    run_id : str
        ``<candidate>.s<seed>.<12 hex digits>``: the hash covers the record
        format, the experiment, the candidate, ``config`` and the seed.
    """

    def __init__(
        self, experiment: str, candidate: str, seed: int, config: Optional[Dict] = None
    ):
        exp = _experiment(experiment)
        if candidate not in exp.candidate_keys:
            raise ValueError(
                f"{experiment} has no candidate {candidate!r}; "
                f"known: {list(exp.candidate_keys)}"
            )
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        if exp.dynamic and config is None:
            raise ValueError(
                f"{experiment}'s candidates are chosen from the records of "
                f"{list(exp.after)}: plan its runs with plan({experiment!r}, "
                "folder=...)"
            )
        if not exp.dynamic:
            if config is not None and config != exp.candidates[candidate]:
                raise ValueError(
                    f"config differs from {experiment}'s candidate {candidate!r}"
                )
            config = exp.candidates[candidate]
        self.experiment, self.candidate, self.seed = experiment, candidate, seed
        self.config = {
            "candidate": config,
            "common": exp.common,
            "data": "mnist",
        }
        text = json.dumps(
            [RECORD_FORMAT, experiment, candidate, self.config, seed], sort_keys=True
        )
        digest = hashlib.sha256(text.encode()).hexdigest()[:12]
        self.run_id = f"{candidate}.s{seed}.{digest}"

    def path(self, folder: Union[str, Path]) -> Path:
        """The record's file: ``<folder>/<experiment>/<run id>.json``."""
        return Path(folder) / self.experiment / f"{self.run_id}.json"

    def __repr__(self) -> str:
        return f"Run({self.experiment!r}, {self.candidate!r}, {self.seed})"


def _experiment(name) -> Experiment:
    if not isinstance(name, str):
        raise TypeError(f"experiment names are str, got {type(name).__name__}")
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; known: {sorted(EXPERIMENTS)}")
    return EXPERIMENTS[name]


def _dependency_order(names: Sequence[str]) -> List[str]:
    """The experiments and those they come after, each after its dependencies.

    Raises ValueError on an unknown experiment or a cycle.
    """
    order: List[str] = []
    visiting: List[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            cycle = " -> ".join(visiting[visiting.index(name) :] + [name])
            raise ValueError(f"the experiments come after each other: {cycle}")
        visiting.append(name)
        for dep in _experiment(name).after:
            visit(dep)
        visiting.pop()
        order.append(name)

    for name in names:
        visit(name)
    return order


def _dependency_results(name: str, dep: str, folder: Union[str, Path]) -> Dict:
    """``load_results(dep)`` for ``name``'s candidates: complete records only."""
    try:
        result = load_results(dep, folder)
    except (FileNotFoundError, ValueError) as err:
        raise type(err)(
            f"{name} chooses its candidates from {dep}'s records, which are not "
            f"complete and fresh (run `make experiments NAME={dep}`): {err}"
        ) from None
    return result


def resolve_candidates(
    name: str, folder: Union[str, Path] = RESULTS
) -> Dict[str, Dict]:
    """An experiment's candidates: its dict, or chosen from other records.

    Parameters
    ----------
    name : str
        A key of :data:`tripletutils.experiments.EXPERIMENTS`.
    folder : str or Path, default :data:`RESULTS`
        Where the records of the experiments it comes after are read.

    Returns
    -------
    dict of str to dict
        Each candidate's configuration, in the order of ``candidate_keys``.
        For an experiment whose ``candidates`` is a function, its value on
        ``{dep: load_results(dep, folder) for dep in after}``.

    Raises
    ------
    FileNotFoundError, ValueError
        If an experiment it comes after lacks a record or has a stale or
        corrupt one (the message names it), or the function gives other
        keys than ``candidate_keys`` or configurations that are not
        JSON-serialisable dicts.
    """
    exp = _experiment(name)
    if not exp.dynamic:
        return dict(exp.candidates)
    _dependency_order([name])  # no cycle
    results = {dep: _dependency_results(name, dep, folder) for dep in exp.after}
    chosen = exp.candidates(results)
    if not isinstance(chosen, Mapping) or set(chosen) != set(exp.candidate_keys):
        got = sorted(chosen) if isinstance(chosen, Mapping) else chosen
        raise ValueError(
            f"{name}'s candidates function must give the keys "
            f"{list(exp.candidate_keys)}, got {got!r}"
        )
    for key in exp.candidate_keys:
        if not isinstance(chosen[key], dict):
            raise ValueError(f"{name}'s candidate {key!r} is not a dict")
        try:
            json.dumps(chosen[key], sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"{name}'s candidate {key!r} is not JSON-serialisable: {err}"
            ) from None
    return {key: chosen[key] for key in exp.candidate_keys}


def plan(
    name: str,
    seeds: Optional[Sequence[int]] = None,
    folder: Union[str, Path] = RESULTS,
) -> List[Run]:
    """Every run of an experiment, candidates in order, seeds within each.

    Parameters
    ----------
    name : str
        A key of :data:`tripletutils.experiments.EXPERIMENTS`.
    seeds : sequence of int, optional
        Default: the experiment's own.
    folder : str or Path, default :data:`RESULTS`
        Where the records its candidates are chosen from lie (read only for
        an experiment that comes after others: :func:`resolve_candidates`).

    Returns
    -------
    list of Run

    Raises
    ------
    ValueError
        On an unknown experiment, or seeds that are not a non-empty sequence
        of distinct ints >= 0.
    FileNotFoundError, ValueError
        As :func:`resolve_candidates`, if an experiment it comes after is
        incomplete.
    """
    exp = _experiment(name)
    seeds = tuple(exp.seeds if seeds is None else seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct and non-empty, got {seeds!r}")
    candidates = resolve_candidates(name, folder)
    return [Run(name, c, s, candidates[c]) for c in candidates for s in seeds]


def _current_code(experiment: Optional[str] = None) -> str:
    """The fingerprint of the code an experiment's runs compute with.

    The training modules, with :mod:`tripletutils.experiments` counted only
    through the definitions its run function (and its candidate chooser)
    need: adding or changing another experiment leaves its records fresh. An
    experiment whose functions live elsewhere (a test's), or none named: the
    whole of every training module.
    """
    if experiment is None:
        return code_fingerprint()
    exp = EXPERIMENTS[experiment]
    names = [
        fn.__name__
        for fn in (exp.run, exp.candidates)
        if callable(fn)
        and getattr(fn, "__module__", None) == "tripletutils.experiments"
        and getattr(sys.modules[fn.__module__], fn.__name__, None) is fn
    ]
    if not names or not callable(exp.run) or exp.run.__name__ not in names:
        return code_fingerprint()
    return code_fingerprint(entry_points={"experiments.py": names})


def _read_record(path: Path) -> Tuple[Optional[Dict], Optional[str]]:
    """(record, None), or (None, why it cannot be read); (None, None) if absent."""
    if not path.is_file():
        return None, None
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return None, f"not readable JSON ({type(err).__name__}: {err})"
    if not isinstance(record, dict):
        return None, "not a JSON object"
    missing = [k for k in _RECORD_KEYS if k not in record]
    if missing:
        return None, f"lacks {missing}"
    if record["run_id"] != path.stem:
        return None, f"holds run {record['run_id']!r}, not {path.stem!r}"
    return record, None


def _write_atomically(path: Path, text: str) -> None:
    """Write to a temporary file beside ``path``, flush it to disk, rename it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def _locked(folder: Path, log: Callable[[str], None]) -> Iterator[None]:
    """Hold the results folder's lock; wait, saying so, while another holds it."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / _LOCK, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(
                f"another `make experiments` holds {folder / _LOCK}: "
                "waiting for it to finish"
            )
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# ---------------------------------------------------------------- the workers

_WORKER: Dict[str, object] = {}


def _one_thread() -> None:
    """Compute with one thread (before TensorFlow starts, where it has not yet)."""
    if _WORKER.get("threads"):
        return
    for var in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ[var] = "1"
    tf = import_tensorflow()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError as err:  # TensorFlow already ran something here
        if tf.config.threading.get_intra_op_parallelism_threads() != 1:
            raise RuntimeError(
                f"this process computes with more than one thread ({err}): runs "
                "must start in a fresh process"
            ) from None
    _WORKER["threads"] = 1


def _start_worker() -> None:
    """A pool worker's start: one thread, and the fingerprint of its code."""
    _one_thread()
    _WORKER["code"] = {name: _current_code(name) for name in EXPERIMENTS}


def _mnist() -> tuple:
    if "mnist" not in _WORKER:
        from .data import load_mnist

        _WORKER["mnist"] = load_mnist()
    return _WORKER["mnist"]  # type: ignore[return-value]


def _mnist_fingerprint(mnist: tuple) -> str:
    (x, y), (xt, yt) = mnist
    return data_fingerprint(x, y, xt, yt, salt="mnist")


def _execute(
    experiment: str, candidate: str, seed: int, config: Optional[Dict] = None
) -> Dict:
    """One run, in a worker: its metrics and what identifies how it ran.

    ``config``: the candidate's configuration, passed on to the run function
    of an experiment whose candidates are chosen from records.

    The code's fingerprint is taken when the worker starts its first run and
    again after each run: if the package's files changed in between, the run
    ran code that no record can name (TensorFlow even re-reads the changed
    source when it traces), so it fails instead of leaving a record.
    """
    _one_thread()
    from .runtime import bfloat16_is_native, hardware_info

    codes = _WORKER.setdefault("code", {})
    if experiment not in codes:
        codes[experiment] = _current_code(experiment)
    code = codes[experiment]
    mnist = _mnist()
    started = time.perf_counter()
    exp = EXPERIMENTS[experiment]
    if exp.dynamic:
        metrics = exp.run(candidate, seed, mnist, config)
    else:
        metrics = exp.run(candidate, seed, mnist)
    seconds = time.perf_counter() - started
    now = _current_code(experiment)
    if now != code:
        raise RuntimeError(
            f"the package's code changed during the run (fingerprint {code} when "
            f"this worker started, {now} now): its result is not kept"
        )
    return {
        "metrics": metrics,
        "seconds": seconds,
        "code_fingerprint": code,
        "data_fingerprint": _mnist_fingerprint(mnist),
        "machine": hardware_info(),
        "bfloat16_native": bfloat16_is_native(),
        "pid": os.getpid(),
    }


def _precisions(metrics) -> List[str]:
    """Every ``precision`` entry in the metrics (what the runs computed in)."""
    found = set()
    stack = [metrics]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("precision"), str):
                found.add(item["precision"])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return sorted(found)


def _record(run: Run, out: Dict) -> Dict:
    return {
        "format": RECORD_FORMAT,
        "run_id": run.run_id,
        "experiment": run.experiment,
        "candidate": run.candidate,
        "seed": run.seed,
        "config": run.config,
        "code_fingerprint": out["code_fingerprint"],
        "data_fingerprint": out["data_fingerprint"],
        "package_version": __version__,
        "machine": out["machine"],
        "bfloat16_native": out["bfloat16_native"],
        "precision": _precisions(out["metrics"]),
        "threads": 1,
        "command": f"make experiments NAME={run.experiment}",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "seconds": out["seconds"],
        "metrics": out["metrics"],
    }


# -------------------------------------------------------------- the executors


def _executor(workers: int, scheduler: Optional[str]):
    """(executor, what to call after its shutdown)."""
    if scheduler is not None:
        try:
            from distributed import Client
        except ImportError:
            raise ConnectionError(
                "--scheduler needs Dask's distributed package: pip install "
                "'tripletutils[experiments]'"
            ) from None
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError, ValueError) as err:
            raise ConnectionError(
                f"no Dask scheduler answers at {scheduler}: {err}"
            ) from None
        threads = client.nthreads()
        if not threads or any(n != 1 for n in threads.values()):
            client.close()
            raise ConnectionError(
                f"the Dask workers at {scheduler} must each have one thread (runs "
                f"seed and compute process-wide), got {sorted(threads.values())}: "
                "start them with --nthreads 1"
            )
        return client.get_executor(pure=False), client.close
    context = multiprocessing.get_context("spawn")
    # One run per process: a run's numbers cannot depend on what ran before it
    # in the same worker, and memory cannot build up over a long sitting (a
    # reused worker grew to 12 GB over 145 runs and was killed for memory).
    pool = concurrent.futures.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_start_worker,
        max_tasks_per_child=1,
    )
    return pool, None


def _check_workers(workers) -> int:
    if isinstance(workers, bool) or not isinstance(workers, int):
        raise TypeError(f"workers must be an int, got {type(workers).__name__}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    return workers


def _estimate(todo: List[Run], folder: Path, workers: int) -> List[str]:
    """Time estimates from earlier records' seconds: total, then per experiment."""
    known: Dict[Tuple[str, str], List[float]] = {}
    by_exp: Dict[str, List[float]] = {}
    for path in folder.glob("*/*.json"):
        record, _ = _read_record(path)
        if record is not None and isinstance(record["seconds"], (int, float)):
            key = (record["experiment"], record["candidate"])
            known.setdefault(key, []).append(float(record["seconds"]))
            by_exp.setdefault(record["experiment"], []).append(float(record["seconds"]))
    seconds: Dict[str, float] = {}
    runs: Dict[str, int] = {}
    unknown: Dict[str, int] = {}
    for run in todo:
        past = known.get((run.experiment, run.candidate)) or by_exp.get(run.experiment)
        runs[run.experiment] = runs.get(run.experiment, 0) + 1
        if past:
            seconds[run.experiment] = seconds.get(run.experiment, 0.0)
            seconds[run.experiment] += statistics.median(past)
        else:
            unknown[run.experiment] = unknown.get(run.experiment, 0) + 1

    def line(total: float, never: int) -> str:
        if total == 0:
            return "no earlier records to estimate the time from"
        text = f"about {total / 60:.0f} min of runs, {total / 60 / workers:.0f} min"
        text += f" wall on {workers} workers"
        return text + (f" (+ {never} runs never timed)" if never else "")

    lines = [line(sum(seconds.values()), sum(unknown.values()))]
    for name, n in runs.items():
        lines.append(
            f"  {name}: {n} runs, " + line(seconds.get(name, 0.0), unknown.get(name, 0))
        )
    return lines


def _run_status(
    run: Run, folder: Path, expected: Tuple[str, str]
) -> Tuple[str, Optional[str]]:
    """(``"fresh"``, ``"stale"``, ``"corrupt"`` or ``"missing"``, the problem)."""
    record, problem = _read_record(run.path(folder))
    if problem is not None:
        return "corrupt", problem
    if record is None:
        return "missing", None
    made = (record["code_fingerprint"], record["data_fingerprint"])
    return ("fresh" if made == tuple(expected) else "stale"), None


def _runs_lacking(name: str, folder: Path, expected: Tuple[str, str]) -> int:
    """How many runs of an experiment (all its seeds) have no fresh record."""
    exp = EXPERIMENTS[name]
    try:
        runs = plan(name, folder=folder)
    except (FileNotFoundError, ValueError):  # it waits for others itself
        return len(exp.candidate_keys) * len(exp.seeds)
    return sum(_run_status(run, folder, expected)[0] != "fresh" for run in runs)


def _waves(names: Sequence[str]) -> List[List[str]]:
    """The experiments in stages: each after the stages of those it comes after."""
    level: Dict[str, int] = {}
    for name in _dependency_order(names):
        if name in names:
            deps = [level[d] for d in EXPERIMENTS[name].after if d in level]
            level[name] = 1 + max(deps) if deps else 0
    return [[n for n in names if level[n] == i] for i in range(max(level.values()) + 1)]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def run_experiments(
    names: Sequence[str],
    folder: Union[str, Path] = RESULTS,
    workers: int = 2,
    scheduler: Optional[str] = None,
    seeds: Optional[int] = None,
    log: Callable[[str], None] = print,
    progress: Optional[bool] = None,
    dry_run: bool = False,
) -> Dict[str, int]:
    """Run every missing, stale or corrupt run of some experiments.

    The experiments run in stages: one that comes after others (its
    ``after``) is planned once their runs all have fresh records, whether
    they had them already or this call made them (then its candidates are
    resolved, :func:`resolve_candidates`); while one of them lacks a record,
    it logs ``"<name>: waits for <dep> (N runs missing)"`` and runs nothing.
    The experiments named run in one stage when none comes after another,
    their runs given to the workers together.

    Parameters
    ----------
    names : sequence of str
        Keys of :data:`tripletutils.experiments.EXPERIMENTS`.
    folder : str or Path, default :data:`RESULTS`
    workers : int, default 2
        Local processes of one thread each (ignored with ``scheduler``). On
        the book's 2-core machine two such processes did more work than one
        process of two threads (README).
    scheduler : str, optional
        A Dask scheduler's address (``"tcp://HOST:8786"``): the runs go to its
        cluster instead of a local pool.
    seeds : int, optional
        Only each experiment's first ``seeds`` seeds (a quick check; an
        experiment that comes after others still needs all their seeds).
    log : callable, default print
        Receives the plan and, without a progress bar, one line per run.
    progress : bool, optional
        A tqdm progress bar on standard error; default: when it is a terminal.
    dry_run : bool, default False
        Only print the plan and the estimate: run nothing. An experiment that
        comes after incomplete ones gets one line: whose records choose its
        candidates, and how many runs it will have.

    Returns
    -------
    dict of str to int
        ``planned``, ``fresh`` (kept), ``stale``, ``corrupt``, ``ran``,
        ``failed`` (runs that raised: logged, no record; the others go on)
        and ``waiting`` (runs of experiments not planned because one they
        come after is incomplete).

    Raises
    ------
    ValueError, TypeError
        On an unknown experiment, experiments that come after each other, bad
        ``workers`` or ``seeds``; nothing is written then.
    ConnectionError
        If no Dask scheduler answers at ``scheduler``; nothing is written.
    """
    if isinstance(names, str):
        raise TypeError("names must be a sequence of experiment names, not a str")
    names = list(dict.fromkeys(names))  # each experiment once
    for name in names:
        _experiment(name)
    if not names:
        raise ValueError("names is empty: name at least one experiment")
    waves = _waves(names)  # may raise on a cycle: nothing written
    workers = _check_workers(workers)
    if seeds is not None and (
        isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1
    ):
        raise ValueError(f"seeds must be an int >= 1, got {seeds!r}")
    executor, close = _executor(workers, scheduler)  # may raise: nothing written
    folder = Path(folder)
    counts = dict.fromkeys(
        ("planned", "fresh", "stale", "corrupt", "ran", "failed", "waiting"), 0
    )
    try:
        with _locked(folder, log):
            data = _mnist_fingerprint(_mnist())
            expected = {name: (_current_code(name), data) for name in EXPERIMENTS}
            for wave in waves:
                runs = []
                for name in wave:
                    exp = EXPERIMENTS[name]
                    own = exp.seeds if seeds is None else exp.seeds[:seeds]
                    lacking = [
                        (dep, n)
                        for dep in exp.after
                        if (n := _runs_lacking(dep, folder, expected[dep]))
                    ]
                    if lacking:
                        dep, n = lacking[0]
                        total = len(exp.candidate_keys) * len(own)
                        counts["waiting"] += total
                        keys = _count(len(exp.candidate_keys), "candidate")
                        log(
                            f"{name}: its candidates are chosen from {dep}'s "
                            f"records ({_count(n, 'run')} missing): "
                            f"{_count(total, 'run')} ({keys} x "
                            f"{_count(len(own), 'seed')}) once they are complete"
                            if dry_run
                            else f"{name}: waits for {dep} ({_count(n, 'run')} missing)"
                        )
                        continue
                    runs.extend(plan(name, own, folder))
                if not runs:
                    continue
                counts["planned"] += len(runs)
                todo, tally = [], {"fresh": 0, "stale": 0, "corrupt": 0}
                for run in runs:
                    status, problem = _run_status(run, folder, expected[run.experiment])
                    if status == "corrupt":
                        log(
                            f"corrupt record {run.path(folder)}: {problem}; "
                            "re-running it"
                        )
                    if status in tally:
                        tally[status] += 1
                    if status != "fresh":
                        todo.append(run)
                for key, value in tally.items():
                    counts[key] += value
                where = scheduler or f"{workers} local processes of 1 thread"
                estimate = _estimate(todo, folder, 1 if scheduler else workers)
                log(
                    f"{len(todo)} of {len(runs)} runs to do ({tally['fresh']} "
                    f"fresh, {tally['stale']} stale, {tally['corrupt']} corrupt) "
                    f"on {where}; " + estimate[0]
                )
                for line in estimate[1:] if todo else []:
                    log(line)
                if dry_run:
                    continue
                ran, failed = _run_all(
                    todo, executor, folder, log, progress, expected=expected
                )
                counts["ran"] += ran
                counts["failed"] += len(failed)
    finally:
        if close is None:
            executor.shutdown(wait=True, cancel_futures=True)
        else:  # a Dask client: cancel what is left, then disconnect
            executor.shutdown(wait=False)
            close()
    return counts


def _run_all(
    todo, executor, folder, log, progress, task=None, expected=None
) -> Tuple[int, List]:
    """Submit every run, write each record as it comes; (runs done, failures).

    ``expected``: the (code, data) fingerprints of this checkout; a run whose
    worker computed with others (another copy of the package, other data)
    fails instead of leaving a record that is stale as it is written.
    """
    if not todo:
        return 0, []
    task = _execute if task is None else task
    if progress is None:
        progress = sys.stderr.isatty()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="run", file=sys.stderr)
    started = time.perf_counter()
    futures = {
        executor.submit(
            task, r.experiment, r.candidate, r.seed, r.config["candidate"]
        ): r
        for r in todo
    }
    done, failed = 0, []
    try:
        for future in concurrent.futures.as_completed(futures):
            run = futures[future]
            try:
                out = future.result()
                got = (out["code_fingerprint"], out["data_fingerprint"])
                want = (
                    expected.get(run.experiment)
                    if isinstance(expected, Mapping)
                    else expected
                )
                if want is not None and got != tuple(want):
                    raise RuntimeError(
                        f"the worker ran code {got[0]} on data {got[1]}, this "
                        f"checkout has code {want[0]} and data {want[1]}"
                    )
            except Exception as err:  # one run's failure: the others go on
                failed.append((run, err))
                log(
                    f"FAILED {run.experiment} {run.run_id}: {type(err).__name__}: {err}"
                )
                continue
            record = _record(run, out)
            _write_atomically(run.path(folder), json.dumps(record, indent=1) + "\n")
            done += 1
            if bar is not None:
                bar.set_postfix_str(f"{run.experiment} {run.run_id}")
                bar.update()
            else:
                wall = time.perf_counter() - started
                log(
                    f"[{done}/{len(todo)}] {run.experiment} {run.candidate} seed "
                    f"{run.seed}: {record['seconds']:.0f} s (wall {wall:.0f} s)"
                )
    finally:
        if bar is not None:
            bar.close()
    return done, failed


def _rows(metrics: Union[Dict, List[Dict]]) -> List[Dict]:
    """A run's table rows: its list of rows, or its one row (a dict)."""
    return [metrics] if isinstance(metrics, dict) else list(metrics)


def load_results(
    name: str,
    folder: Union[str, Path] = RESULTS,
    accept_stale: Sequence[str] = (),
) -> Dict:
    """An experiment's results, as the chapters read them, from its records.

    Parameters
    ----------
    name : str
        A key of :data:`tripletutils.experiments.EXPERIMENTS`.
    folder : str or Path, default :data:`RESULTS`
    accept_stale : sequence of str, default ()
        Run ids whose records may come from other code (asked for by name).

    Returns
    -------
    dict
        ``name``, ``description``, ``seeds``, ``records``,
        ``code_fingerprints``, ``machines`` (CPU names), ``precisions``,
        ``seconds`` (sum over runs) and ``runs``: one dict per seed, ``seed``,
        ``seconds`` (its runs' sum) and ``metrics``: ``{candidate: metrics}``,
        or ``{"runs": rows}`` for an experiment of table rows.

    An experiment that comes after others has its candidates chosen from
    their records in ``folder`` (:func:`resolve_candidates`), as when it ran.

    Raises
    ------
    FileNotFoundError
        If a run has no record (``make experiments NAME=<name>`` makes them),
        or an experiment it comes after lacks one (the message names it).
    ValueError
        If a record is corrupt, or comes from code other than the current
        (the message names them all), here or in an experiment it comes after.
    """
    exp = _experiment(name)
    if isinstance(accept_stale, str):
        raise TypeError("accept_stale must be a sequence of run ids, not a str")
    runs = plan(name, folder=folder)
    code = _current_code(name)
    missing, corrupt, stale, records = [], [], [], {}
    for run in runs:
        record, problem = _read_record(run.path(folder))
        if problem is not None:
            corrupt.append(f"{run.path(folder).name} ({problem})")
        elif record is None:
            missing.append(run.run_id)
        elif record["code_fingerprint"] != code and run.run_id not in accept_stale:
            stale.append(run.path(folder).name)
        else:
            records[run.run_id] = record
    if corrupt or stale:
        raise ValueError(
            f"{Path(folder) / name}: "
            + (f"corrupt records {corrupt}; " if corrupt else "")
            + (
                f"{len(stale)} records made by other code than the current "
                f"({code}): {stale}; "
                if stale
                else ""
            )
            + f"run `make experiments NAME={name}` again"
        )
    if missing:
        raise FileNotFoundError(
            f"{Path(folder) / name}: {len(missing)} of {len(runs)} runs have no "
            f"record (e.g. {missing[0]}): run `make experiments NAME={name}`"
        )
    per_seed = []
    for seed in exp.seeds:
        mine = [records[r.run_id] for r in runs if r.seed == seed]
        if exp.rows:
            metrics = {"runs": [row for rec in mine for row in _rows(rec["metrics"])]}
        else:
            metrics = {rec["candidate"]: rec["metrics"] for rec in mine}
        seconds = math.fsum(rec["seconds"] for rec in mine)
        per_seed.append({"seed": seed, "seconds": seconds, "metrics": metrics})
    values = list(records.values())
    return {
        "name": name,
        "description": exp.description,
        "seeds": list(exp.seeds),
        "records": len(values),
        "code_fingerprints": sorted({r["code_fingerprint"] for r in values}),
        "machines": sorted({r.get("machine", {}).get("cpu", "?") for r in values}),
        "precisions": sorted({p for r in values for p in r.get("precision", [])}),
        "seconds": math.fsum(r["seconds"] for r in values),
        "runs": per_seed,
    }


def check_records(folder: Union[str, Path] = RESULTS) -> List[str]:
    """Every problem of a results folder's records, one line each.

    A record is a problem when it cannot be read, comes from code other than
    the current, or belongs to no run of the current experiments (an orphan:
    its experiment, candidate, configuration or seed is gone; the runs of an
    experiment that comes after others are those its candidates, chosen from
    their records in ``folder``, give). A record of such an experiment whose
    candidates cannot be chosen (an experiment it comes after is incomplete
    or stale) is a problem too.

    Parameters
    ----------
    folder : str or Path, default :data:`RESULTS`

    Returns
    -------
    list of str
        Empty when every record is fresh.
    """
    folder = Path(folder)
    codes: Dict[str, str] = {}
    problems = []
    planned: Dict[str, Union[set, str]] = {}
    for path in sorted(folder.glob("*/*.json")):
        record, problem = _read_record(path)
        if problem is not None:
            problems.append(f"{path}: corrupt ({problem})")
            continue
        name = path.parent.name
        if name not in planned:
            try:
                planned[name] = (
                    {r.run_id for r in plan(name, folder=folder)}
                    if name in EXPERIMENTS
                    else set()
                )
            except (FileNotFoundError, ValueError) as err:
                planned[name] = str(err)
        ids = planned[name]
        if isinstance(ids, str):
            problems.append(f"{path}: its candidates cannot be chosen: {ids}")
        elif record["run_id"] not in ids:
            problems.append(f"{path}: belongs to no run of the current experiments")
        elif record["code_fingerprint"] != (
            code := codes.get(name) or codes.setdefault(name, _current_code(name))
        ):
            problems.append(
                f"{path}: made by code {record['code_fingerprint']}, the current "
                f"is {code}"
            )
    return problems


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m tripletutils.engine [NAME ...]``: run what is missing.

    Parameters
    ----------
    argv : list of str, optional
        Experiment names (default: every experiment run by default),
        ``--folder PATH`` (default :data:`RESULTS`), ``--workers N``
        (default 2), ``--scheduler tcp://HOST:PORT`` (a Dask cluster),
        ``--seeds N`` (the first N seeds only, for a quick check; not in the
        committed folder), ``--check`` (list stale, orphan or corrupt records
        and exit 1 if there are any), ``--dry-run`` (print the plan and the
        time estimate only).

    Returns
    -------
    int
        0 on success; 1 on a failure of the runs or the check, or when an
        experiment named waits for an incomplete one (not in a dry run); 2 on
        bad arguments or experiments that come after each other (one line on
        standard error, nothing written).
    """
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m tripletutils.engine", description=main.__doc__
    )
    parser.add_argument("names", nargs="*")
    parser.add_argument("--folder", default=str(RESULTS))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scheduler", default=None)
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)

    def fail(message: str, code: int = 2) -> int:
        print(f"error: {message}", file=sys.stderr)
        return code

    if args.check:
        problems = check_records(args.folder)
        for line in problems:
            print(line)
        print(f"{len(problems)} problem records in {args.folder}")
        return 1 if problems else 0
    names = args.names or [n for n, e in EXPERIMENTS.items() if e.default]
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        return fail(f"unknown experiments {unknown}; known: {sorted(EXPERIMENTS)}")
    if args.workers < 1:
        return fail(f"--workers must be at least 1, got {args.workers}")
    if args.seeds is not None and args.seeds < 1:
        return fail(f"--seeds must be at least 1, got {args.seeds}")
    if args.seeds is not None and Path(args.folder).resolve() == RESULTS:
        return fail(
            f"--seeds is for quick checks: give a --folder other than {RESULTS}"
        )
    started = time.perf_counter()
    try:
        counts = run_experiments(
            names,
            args.folder,
            args.workers,
            args.scheduler,
            args.seeds,
            dry_run=args.dry_run,
        )
    except ConnectionError as err:
        return fail(str(err), 1)
    except ValueError as err:  # experiments that come after each other
        return fail(str(err))
    print(
        f"{counts['ran']} runs done, {counts['fresh']} were fresh, "
        f"{counts['failed']} failed, {counts['waiting']} wait for other "
        f"experiments, in {time.perf_counter() - started:.0f} s"
    )
    return 1 if counts["failed"] or (counts["waiting"] and not args.dry_run) else 0


if __name__ == "__main__":
    sys.exit(main())
