"""The results ledger: every score the experiments' records give the book.

Each committed experiment (:data:`tripletutils.experiments.EXPERIMENTS`) holds
one record per run. The ledger turns them into one row per group of runs (a
candidate, or a configuration of a table experiment, over its seeds) and
score: the mean, the 95 % t-interval of the mean and the 95 % prediction
interval over the seeds, what the score was measured on (the query and
reference sets and their sizes, counted from the labels), the precision the
runs computed in and the CPU they ran on. The book's appendix page "Results
ledger" prints it (built from the records every time the book is built), and
a test checks that every interval statistic a chapter glues is one the ledger
lists.

A group of class-disjoint fold runs (candidates named ``<name>_fold<k>``) is
one group per name: each seed's value is the mean of its folds, as
:func:`tripletutils.experiments.closed_set_scores` computes it.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = [
    "LEDGER_EXPERIMENTS",
    "TEST_INFLUENCE",
    "SCORES",
    "set_sizes",
    "evaluation_sets",
    "experiment_rows",
    "ledger_rows",
    "ledger_values",
]

#: The experiments the book reads, in the order its chapters first read them,
#: with those chapters.
LEDGER_EXPERIMENTS: Dict[str, Tuple[int, ...]] = {
    "seed_reproduction": (4, 5, 10),
    "fast_loop": (4, 10),
    "online_mining": (6, 7),
    "recipe_search": (7,),
    "transfer_closed_set": (6, 7),
    "unseen_classes": (8,),
    "transfer_validation": (8,),
    "transfer_test": (8,),
    "transfer_knobs": (8,),
    "transfer_folds_test": (8,),
}

#: Whether a test score influenced what each experiment compares (the protocol
#: appendix states each departure).
TEST_INFLUENCE: Dict[str, str] = {
    "seed_reproduction": "no: the seed's fixed recipe, nothing chosen",
    "fast_loop": "no: chapter 4's choice is made on its validation scores",
    "online_mining": (
        "no for the margins (chosen on validation MAP@R); the test scores are "
        "read once per scheme at its chosen margin"
    ),
    "recipe_search": (
        "yes: the starting recipe came out of tries scored on the test set and "
        "keeps batch-all from chapter 7's test ranking; the choice among the "
        "candidates is made on validation"
    ),
    "transfer_closed_set": (
        "indirectly: chapter 8's BEST_RECIPE, whose start was shaped by test "
        "scores; nothing is chosen on these scores"
    ),
    "unseen_classes": (
        "no, but chosen on the seen digits' validation images, which cannot "
        "answer the question (chapter 10)"
    ),
    "transfer_validation": "no: held-out classes of the digits 0-5 only",
    "transfer_test": (
        "no choice made on it; the candidates' network and budget come from "
        "BEST_RECIPE, shaped by test scores on all ten digits"
    ),
    "transfer_knobs": "no: held-out classes of the digits 0-5 only",
    "transfer_folds_test": "no choice made on it (as transfer_test)",
}

#: The scores the ledger lists, by the end of their names in the records.
SCORES: Tuple[str, ...] = (
    "seed_metric_own_triplets",
    "seed_metric",
    "precision_at_1",
    "r_precision",
    "map_at_r",
    "one_nn_accuracy",
)

_FOLD = re.compile(r"^(?P<name>.+)_fold(?P<fold>\d+)$")
#: Fields of a table experiment's rows that describe neither the configuration
#: nor a score.
_NOT_CONFIG = {
    "fit_seconds",
    "precision",
    "mean_norm",
    "stopped_at_step",
    "per_class",
    "train_triplets",
    "train_digits",
    "val_digits",
}


def _score_name(field: str) -> Optional[str]:
    for score in SCORES:
        if field == score or field.endswith("_" + score):
            return score
    return None


def set_sizes(y_train: np.ndarray, y_test: np.ndarray) -> Dict[str, object]:
    """The sizes of the sets the experiments score on, counted from the labels.

    Parameters
    ----------
    y_train, y_test : numpy.ndarray
        MNIST's training and test labels, integer arrays of shape ``(60000,)``
        and ``(10000,)`` (any lengths are accepted: what is counted is what
        the experiments' splits give on these labels).

    Returns
    -------
    dict
        ``train`` and ``val`` (the book's split), ``test``, ``val_seen`` (the
        validation images of the digits 0-5), ``test_seen`` and
        ``test_unseen`` (the test images of 0-5 and 6-9), ``fold_val`` (a
        tuple: each class-disjoint fold's validation images), and the
        numbers of the seed's test and validation triplets,
        ``test_triplets`` and ``val_triplets``.

    Raises
    ------
    TypeError
        If a label array is not an integer array.
    ValueError
        If a label array is not 1-D or is empty.
    """
    from .experiments import TRANSFER_FOLDS, TRANSFER_SEEN, TRANSFER_TEST
    from .sampling import seed_offline_triplets, split_indices

    for name, y in (("y_train", y_train), ("y_test", y_test)):
        if not isinstance(y, np.ndarray) or not np.issubdtype(y.dtype, np.integer):
            raise TypeError(f"{name} must be an integer numpy array")
        if y.ndim != 1 or len(y) == 0:
            raise ValueError(f"{name} must be 1-D and non-empty, got {y.shape}")
    train_idx, val_idx = split_indices(y_train, 0.1, seed=0)
    y_val = y_train[val_idx]
    return {
        "train": len(train_idx),
        "val": len(val_idx),
        "test": len(y_test),
        "val_seen": int(np.isin(y_val, TRANSFER_SEEN).sum()),
        "test_seen": int(np.isin(y_test, TRANSFER_SEEN).sum()),
        "test_unseen": int(np.isin(y_test, TRANSFER_TEST).sum()),
        "fold_val": tuple(
            int(np.isin(y_val, held_out).sum()) for _, held_out in TRANSFER_FOLDS
        ),
        "test_triplets": len(seed_offline_triplets(y_test, seed=1)),
        "val_triplets": len(seed_offline_triplets(y_val, seed=1)),
    }


def _loo(what: str, n: int) -> Tuple[str, str]:
    return f"{what}: {n:,}", f"the other {what} (leave-one-out): {n - 1:,} each"


def evaluation_sets(experiment: str, field: str, sizes: Mapping) -> Tuple[str, str]:
    """What a score of an experiment was measured on, with the sets' sizes.

    Parameters
    ----------
    experiment : str
        A key of :data:`LEDGER_EXPERIMENTS`.
    field : str
        The score's name in the records (``"val_map_at_r"``,
        ``"fold1_test_unseen_precision_at_1"``, ``"seed_metric"``, ...).
    sizes : mapping
        What :func:`set_sizes` returns.

    Returns
    -------
    (str, str)
        The queries (or triplets) and the references, each with its size.

    Raises
    ------
    ValueError
        If the experiment is not in the ledger or the field is no score of it.
    """
    if experiment not in LEDGER_EXPERIMENTS:
        raise ValueError(f"{experiment!r} is not in the ledger")
    if field == "seed_metric":
        return f"MNIST test triplets (seed=1): {sizes['test_triplets']:,}", "-"
    if field == "seed_metric_own_triplets":
        return (
            f"MNIST test triplets drawn anew per seed: {sizes['test_triplets']:,}",
            "-",
        )
    if field == "val_seed_metric":
        return f"validation triplets (seed=1): {sizes['val_triplets']:,}", "-"
    folds = experiment in ("transfer_validation", "transfer_knobs")
    folds = folds or experiment == "transfer_closed_set"
    if folds and field.startswith("val_"):
        per_fold = " / ".join(f"{n:,}" for n in sizes["fold_val"])
        return (
            f"validation images of each fold's two held-out digits: {per_fold}",
            "the other images of the fold's held-out digits (leave-one-out)",
        )
    if field.startswith("val_"):
        if experiment == "unseen_classes":
            return _loo("validation images of the digits 0-5", sizes["val_seen"])
        return _loo("validation images", sizes["val"])
    if "test_unseen_" in field:
        return _loo("test images of the digits 6-9", sizes["test_unseen"])
    if field.startswith("test_seen_"):
        return _loo("test images of the digits 0-5", sizes["test_seen"])
    if field == "test_one_nn_accuracy" or experiment == "recipe_search":
        if field.startswith("test_"):
            return (
                f"test images: {sizes['test']:,}",
                f"the book split's training images: {sizes['train']:,}",
            )
    if experiment == "online_mining" and field.startswith("test_"):
        return _loo("test images", sizes["test"])
    raise ValueError(f"{field!r} is not a score of {experiment!r}")


def _groups(results: Mapping) -> Dict[str, Dict[int, List[Dict]]]:
    """{group: {seed: [metric dicts]}} from load_results' ``runs``."""
    groups: Dict[str, Dict[int, List[Dict]]] = {}
    for run in results["runs"]:
        seed, metrics = run["seed"], run["metrics"]
        if set(metrics) == {"runs"} and isinstance(metrics["runs"], list):
            rows = metrics["runs"]
            for row in rows:
                config = {
                    k: v
                    for k, v in row.items()
                    if k not in _NOT_CONFIG and _score_name(k) is None
                }
                name = ", ".join(f"{k}={v}" for k, v in config.items())
                groups.setdefault(name, {}).setdefault(seed, []).append(row)
            continue
        for candidate, m in metrics.items():
            match = _FOLD.match(candidate)
            name = match["name"] if match else candidate
            groups.setdefault(name, {}).setdefault(seed, []).append(m)
    return groups


def _prediction(mean: float, sd: float, n: int) -> Tuple[float, float]:
    from scipy import stats

    half = float(stats.t.ppf(0.975, n - 1)) * sd * math.sqrt(1 + 1 / n)
    return mean - half, mean + half


def experiment_rows(name: str, results: Mapping, sizes: Mapping) -> List[Dict]:
    """The ledger's rows of one experiment.

    Parameters
    ----------
    name : str
        A key of :data:`LEDGER_EXPERIMENTS`.
    results : mapping
        The experiment's results as :func:`tripletutils.engine.load_results`
        gives them (``runs``, ``machines``, ``precisions`` are read).
    sizes : mapping
        What :func:`set_sizes` returns.

    Returns
    -------
    list of dict
        One per (group, score), in the records' order: ``experiment``,
        ``group``, ``score`` (its name in the records), ``queries``,
        ``references``, ``seeds`` (how many), ``folds`` (per seed, 1 if not a
        fold experiment), ``mean``, ``low``, ``high`` (95 % t-interval of the
        mean over the seeds), ``pred_low``, ``pred_high`` (95 % prediction
        interval of one more seed), ``precision`` (what the runs computed
        in), ``cpu`` and ``test_influence``. A score with fewer than two
        finite values (runs that diverged) has NaN statistics and the count
        of its finite values.

    Raises
    ------
    ValueError
        If ``name`` is not in the ledger, or a score is not one of the sets
        :func:`evaluation_sets` knows.
    """
    from .experiments import t_interval

    if name not in LEDGER_EXPERIMENTS:
        raise ValueError(f"{name!r} is not in the ledger")
    machines = results.get("machines") or []
    cpu = ", ".join(sorted(set(machines))) or "unknown"
    rows = []
    for group, per_seed in _groups(results).items():
        fields: List[str] = []
        for runs in per_seed.values():
            for m in runs:
                fields += [f for f in m if _score_name(f) and f not in fields]
        precision = sorted(
            {str(m.get("precision")) for runs in per_seed.values() for m in runs}
        )
        for field in fields:
            values = []
            for runs in per_seed.values():
                found = [m.get(field) for m in runs]
                if all(isinstance(v, (int, float)) for v in found) and found:
                    values.append(float(np.mean(found)))
            queries, references = evaluation_sets(name, field, sizes)
            row = {
                "experiment": name,
                "group": group,
                "score": field,
                "queries": queries,
                "references": references,
                "seeds": len(values),
                "folds": max(len(runs) for runs in per_seed.values()),
            }
            stats = dict.fromkeys(("mean", "low", "high", "pred_low", "pred_high"))
            if len(values) >= 2:
                ci = t_interval(values)
                low, high = _prediction(ci["mean"], ci["sd"], ci["n"])
                stats = {"mean": ci["mean"], "low": ci["low"], "high": ci["high"]}
                stats |= {"pred_low": low, "pred_high": high}
            else:
                stats = {k: math.nan for k in stats}
            rows.append(
                row
                | stats
                | {
                    "precision": ", ".join(precision),
                    "cpu": cpu,
                    "test_influence": TEST_INFLUENCE[name],
                }
            )
    return rows


def ledger_rows(
    y_train: np.ndarray,
    y_test: np.ndarray,
    folder: Union[str, Path, None] = None,
    experiments: Sequence[str] = tuple(LEDGER_EXPERIMENTS),
) -> List[Dict]:
    """The whole ledger, from the committed records.

    Parameters
    ----------
    y_train, y_test : numpy.ndarray
        MNIST's labels (:func:`set_sizes`).
    folder : str or Path, optional
        The results folder; default the package's
        (:data:`tripletutils.engine.RESULTS`).
    experiments : sequence of str, default every experiment of the ledger

    Returns
    -------
    list of dict
        :func:`experiment_rows` of each experiment, in order.

    Raises
    ------
    ValueError
        If an experiment is not in the ledger, or a record is stale or
        corrupt (:func:`tripletutils.engine.load_results`).
    FileNotFoundError
        If a run has no record.
    """
    from .engine import RESULTS, load_results

    if isinstance(experiments, str):
        raise TypeError("experiments must be a sequence of names, not a str")
    unknown = [e for e in experiments if e not in LEDGER_EXPERIMENTS]
    if unknown:
        raise ValueError(f"not in the ledger: {unknown}")
    sizes = set_sizes(y_train, y_test)
    folder = RESULTS if folder is None else folder
    rows: List[Dict] = []
    for name in experiments:
        rows += experiment_rows(name, load_results(name, folder=folder), sizes)
    return rows


def ledger_values(rows: Sequence[Mapping]) -> np.ndarray:
    """Every statistic the ledger lists, as one sorted float array.

    Parameters
    ----------
    rows : sequence of dict
        What :func:`ledger_rows` returns.

    Returns
    -------
    numpy.ndarray
        float64, shape ``(m,)``: the finite ``mean``, ``low``, ``high``,
        ``pred_low`` and ``pred_high`` of every row, sorted.
    """
    keys = ("mean", "low", "high", "pred_low", "pred_high")
    values = [float(r[k]) for r in rows for k in keys]
    return np.sort(np.array([v for v in values if math.isfinite(v)], dtype=np.float64))
