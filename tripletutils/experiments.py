"""Repeated runs as code, results as committed data.

An *experiment* trains and scores the same configuration over several seeds.
:func:`run_experiment` runs one and writes ``notebooks/results/<name>.json``:
the configuration and its hash, every seed's metrics and times, the package
version, the machine and the command that made the file. The chapters read
these files (:func:`load_results`) for their multi-seed tables and plots, and
check one live run against them. Intervals:

* :func:`t_interval`: mean and 95 % t-interval across seeds (the spread of a
  *recipe*);
* :func:`bootstrap_interval`: a bootstrap 95 % interval over test queries (the
  uncertainty of *one model's* metric on a finite test set).

:func:`compare_intervals` says which of two is better by the book's rule: only
an interval wholly above the other's is; intervals that overlap (or touch) mean
that no difference was found.

``python -m tripletutils.experiments [NAME ...]`` (``make experiments``) runs
them. The experiments so far:

* ``seed_reproduction``: the seed's recipe over 10 seeds, under the seed's own
  protocol (all 60,000 training images, its 54,200 offline triplets) and
  under the book's split (54,000 training images), each scored with the seed's
  metric on the seed's 8,910 test triplets (chapter 5).
* ``fast_loop``: the compiled loop with the fast settings against ``fit``,
  over 5 seeds, for the seed recipe (the seed's metric on the test triplets)
  and the best recipe (Precision@1 on the validation split) (chapter 10).
* ``online_mining``: chapter 6's schemes over 5 seeds, each with its margin
  chosen on the validation split, and the L2 x margin grid (chapter 6).
* ``unseen_classes``: chapter 8's triplet embedding (chapter 7's search run
  again on the digits 0-5) and softmax baseline (3 learning rates), trained on
  the digits 0-5 over 5 seeds; the validation images of 0-5 choose, the test
  images of 6-9 report (chapter 8).
* ``recipe_search``: the best recipe and four variations over 3 seeds; the
  validation split chooses, the test set scores the chosen recipe (chapter 7).

This module builds on :mod:`tripletutils.training` and :mod:`tripletutils.recipes`.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import math
import platform
import sys
import time
from pathlib import Path
from typing import (
    Callable,
    Dict,
    Hashable,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)

import numpy as np

from . import __version__
from .bench import hardware_info
from .data import load_mnist
from .evaluation import embed, per_class_report, seed_metric, triplet_gaps
from .metrics import nearest_neighbours, retrieval_metrics
from .recipes import (
    BEST_FIT_RECIPE,
    BEST_RECIPE,
    FAST_SEED_RECIPE,
    SEED_RECIPE,
    _replace,
)
from .runtime import bfloat16_is_native
from .sampling import seed_offline_triplets, split_indices
from .training import (
    MINING_SCHEMES,
    Recipe,
    recipe_inputs,
    train,
    train_softmax_baseline,
)

__all__ = [
    "RESULTS",
    "SEED_REPORTED",
    "Experiment",
    "EXPERIMENTS",
    "MINING_BASE",
    "MINING_SCHEMES_COMPARED",
    "MINING_MARGINS",
    "L2_MARGIN_GRID",
    "UNSEEN_BASE",
    "UNSEEN_CANDIDATES",
    "UNSEEN_LEARNING_RATES",
    "SEEN_DIGITS",
    "SEARCH_START",
    "RECIPE_CANDIDATES",
    "t_interval",
    "bootstrap_interval",
    "compare_intervals",
    "choose_on_validation",
    "run_experiment",
    "load_results",
    "main",
]

#: Where the committed results live (relative to the repository root).
RESULTS = Path("notebooks") / "results"

#: The seed's published evaluation (SpikeKing/triplet-loss-mnist, README,
#: section "验证"): per-class "acc" on its 8,910 test triplets (891 a class), and
#: their overall value. Cited figures, not results of this book.
SEED_REPORTED: Dict[str, object] = {
    "source": "https://github.com/SpikeKing/triplet-loss-mnist#验证",
    "per_class": [
        0.996632996633,
        0.99214365881,
        0.991021324355,
        0.995510662177,
        0.991021324355,
        0.994388327722,
        0.995510662177,
        0.989898989899,
        0.979797979798,
        0.985409652076,
    ],
    "overall": 0.9911,
}


def _check_values(values, name: str = "values") -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or len(v) < 2:
        raise ValueError(f"{name} must be 1-D with at least 2 entries, got {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError(
            f"{name} must be finite, got {int((~np.isfinite(v)).sum())} "
            "non-finite entries"
        )
    return v


def _check_confidence(confidence: float) -> float:
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)):
        raise TypeError(f"confidence must be a float, got {type(confidence).__name__}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return float(confidence)


def t_interval(values: Sequence[float], confidence: float = 0.95) -> Dict[str, float]:
    """Mean and Student-t confidence interval of the mean, across seeds.

    Parameters
    ----------
    values : sequence of float
        One metric per seed, shape ``(n,)`` with ``n >= 2``, all finite.
    confidence : float, default 0.95

    Returns
    -------
    dict of str to float
        ``n``, ``mean``, ``sd`` (sample standard deviation, ``ddof=1``),
        ``low`` and ``high``: ``mean -/+ t_{(1+c)/2, n-1} * sd / sqrt(n)``.

    Raises
    ------
    ValueError
        On fewer than 2 values, a non-finite value or a confidence outside (0, 1).
    """
    from scipy import stats

    v = _check_values(values)
    c = _check_confidence(confidence)
    mean, sd = float(v.mean()), float(v.std(ddof=1))
    half = float(stats.t.ppf((1 + c) / 2, len(v) - 1)) * sd / math.sqrt(len(v))
    return {
        "n": len(v),
        "mean": mean,
        "sd": sd,
        "low": mean - half,
        "high": mean + half,
    }


def bootstrap_interval(
    per_query: Sequence[float],
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> Dict[str, float]:
    """Percentile bootstrap interval of a mean over test queries (one model).

    Parameters
    ----------
    per_query : sequence of float
        The metric's value per query, shape ``(Q,)`` (e.g. 1.0 where the nearest
        neighbour has the query's label, else 0.0): the metric is their mean.
    confidence : float, default 0.95
    resamples : int, default 2000
        Bootstrap resamples (queries drawn with replacement).
    seed : int, default 0

    Returns
    -------
    dict of str to float
        ``n``, ``mean``, ``low``, ``high``.
    """
    v = _check_values(per_query, "per_query")
    c = _check_confidence(confidence)
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 100:
        raise ValueError(f"resamples must be an int >= 100, got {resamples!r}")
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, 100):  # bounded memory: 100 x Q at a time
        stop = min(start + 100, resamples)
        idx = rng.integers(0, len(v), size=(stop - start, len(v)))
        means[start:stop] = v[idx].mean(axis=1)
    low, high = np.quantile(means, [(1 - c) / 2, (1 + c) / 2])
    return {
        "n": len(v),
        "mean": float(v.mean()),
        "low": float(low),
        "high": float(high),
    }


def _interval_bounds(interval, name: str) -> Tuple[float, float]:
    try:
        low, high = interval["low"], interval["high"]
    except (TypeError, KeyError, IndexError):
        raise TypeError(
            f"{name} must have 'low' and 'high' entries (as t_interval and "
            f"bootstrap_interval return), got {type(interval).__name__}"
        ) from None
    try:
        low, high = float(low), float(high)
    except (TypeError, ValueError):
        raise TypeError(
            f"{name}'s low and high must be numbers, got {low!r} and {high!r}"
        ) from None
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"{name} must be finite, got [{low}, {high}]")
    if low > high:
        raise ValueError(f"{name} has low > high: [{low}, {high}]")
    return low, high


def compare_intervals(a, b) -> int:
    """Which of two intervals is better, by the book's rule.

    An interval is better only when it lies wholly above the other: its low
    end above the other's high end. Intervals that overlap, or touch, mean
    that no difference was found.

    Parameters
    ----------
    a, b : mapping
        Anything with numeric ``"low"`` and ``"high"`` entries (the dicts of
        :func:`t_interval` and :func:`bootstrap_interval`, a row of a table of
        them), with ``low <= high``.

    Returns
    -------
    int
        ``1`` if ``a`` is better (``a["low"] > b["high"]``), ``-1`` if ``b``
        is, ``0`` if they overlap.

    Raises
    ------
    TypeError
        If an interval lacks ``low``/``high`` or they are not numbers.
    ValueError
        If a bound is not finite or ``low > high``.
    """
    a_low, a_high = _interval_bounds(a, "a")
    b_low, b_high = _interval_bounds(b, "b")
    if a_low > b_high:
        return 1
    if b_low > a_high:
        return -1
    return 0


def choose_on_validation(
    scores: Mapping[Hashable, Sequence[Optional[float]]], metric: str
) -> Hashable:
    """The candidate with the highest mean validation score: how the book chooses.

    Every choice in the book (a margin, a learning rate, a recipe, an
    embedding) goes through this function, so a choice names the score it was
    made on, and a choice made on a test score fails instead of leaking.

    Parameters
    ----------
    scores : mapping of candidate to sequence of float or None
        Each candidate's validation scores, one per seed (same length for all).
        A candidate with a missing or non-finite score (a seed that diverged)
        cannot be chosen.
    metric : str
        The name of the score, e.g. ``"val_map_at_r"``: it must start with
        ``"val"``.

    Returns
    -------
    hashable
        The candidate with the highest mean; the first in ``scores``' order on
        a tie.

    Raises
    ------
    TypeError
        If ``scores`` is not a mapping or ``metric`` not a str.
    ValueError
        If ``metric`` is not a validation score, ``scores`` is empty, the
        candidates have different numbers of seeds, or no candidate has all
        its scores finite.
    """
    if not isinstance(metric, str):
        raise TypeError(f"metric must be a str, got {type(metric).__name__}")
    if not metric.startswith("val"):
        raise ValueError(
            f"choices are made on validation scores only: metric must start with "
            f"'val', got {metric!r}"
        )
    if not isinstance(scores, Mapping):
        raise TypeError(f"scores must be a mapping, got {type(scores).__name__}")
    if not scores:
        raise ValueError("scores is empty: there is nothing to choose from")
    values = {}
    for candidate, seq in scores.items():
        v = np.array([np.nan if x is None else x for x in seq], dtype=np.float64)
        if v.ndim != 1 or len(v) == 0:
            raise ValueError(
                f"scores[{candidate!r}] must be a non-empty 1-D sequence, got {v.shape}"
            )
        values[candidate] = v
    lengths = {len(v) for v in values.values()}
    if len(lengths) != 1:
        raise ValueError(
            f"every candidate needs the same number of seeds, got {sorted(lengths)}"
        )
    finite = {c: float(v.mean()) for c, v in values.items() if np.isfinite(v).all()}
    if not finite:
        raise ValueError(f"no candidate has all its {metric} scores finite")
    return max(finite, key=finite.__getitem__)


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A configuration trained and scored once per seed.

    Attributes
    ----------
    name : str
        The results file is ``<name>.json``.
    description : str
    seeds : tuple of int
    config : dict
        JSON-serialisable: everything that defines the runs (hashed).
    run
        A function ``run(seed, mnist) -> dict``: JSON-serialisable metrics
        for one seed;
        ``mnist`` is what :func:`tripletutils.data.load_mnist` returns.
    """

    name: str
    description: str
    seeds: Tuple[int, ...]
    config: Dict
    run: Callable[[int, tuple], Dict]


def _seed_reproduction_run(seed: int, mnist: tuple) -> Dict:
    (x_all, y_all), (x_test, y_test) = mnist
    fixed = seed_offline_triplets(y_test, seed=1)  # chapter 5's test triplets
    own = seed_offline_triplets(y_test, seed=seed + 1)  # drawn anew per seed
    train_idx, _ = split_indices(y_all, 0.1, seed=0)  # the book's split
    protocols = {
        "seed_protocol": (x_all, y_all),
        "book_split": (x_all[train_idx], y_all[train_idx]),
    }
    out = {}
    for protocol, (x, y) in protocols.items():
        net, _, history = train(SEED_RECIPE, x, y, seed=seed)
        e = embed(net, recipe_inputs(SEED_RECIPE, x_test))
        gaps = triplet_gaps(e, fixed, squared=True)
        report = per_class_report(gaps, y_test[fixed[:, 0]])
        out[protocol] = {
            "seed_metric": seed_metric(gaps),
            "seed_metric_own_triplets": seed_metric(triplet_gaps(e, own, squared=True)),
            "per_class": [float(row["acc"]) for row in report],
            "train_triplets": len(seed_offline_triplets(y, seed=seed)),
            "fit_seconds": history["fit_seconds"],
        }
    return out


def _fast_loop_run(seed: int, mnist: tuple) -> Dict:
    (x_all, y_all), (x_test, y_test) = mnist
    fixed = seed_offline_triplets(y_test, seed=1)  # chapter 5's test triplets
    net, _, history = train(FAST_SEED_RECIPE, x_all, y_all, seed=seed)
    e = embed(net, recipe_inputs(FAST_SEED_RECIPE, x_test))
    out = {
        "seed_fast": {
            "seed_metric": seed_metric(triplet_gaps(e, fixed, squared=True)),
            "fit_seconds": history["fit_seconds"],
        }
    }
    train_idx, val_idx = split_indices(y_all, 0.1, seed=0)  # the book's split
    x_tr, y_tr = x_all[train_idx], y_all[train_idx]
    x_val, y_val = x_all[val_idx], y_all[val_idx]
    for key, recipe in (("best_plain", BEST_FIT_RECIPE), ("best_fast", BEST_RECIPE)):
        net, _, history = train(recipe, x_tr, y_tr, seed=seed)
        scores = retrieval_metrics(embed(net, recipe_inputs(recipe, x_val)), y_val)
        out[key] = {
            "val_precision_at_1": scores["precision_at_1"],
            "val_map_at_r": scores["mean_average_precision_at_r"],
            "fit_seconds": history["fit_seconds"],
        }
    return out


#: Chapter 6's recipe (the seed's network, P x K = 8 x 12 or 96 images a step,
#: 600 steps, L2-normalised 128-d embeddings), run in the compiled loop in
#: float32, which gives the same batches and weights as ``fit``, faster.
MINING_BASE = Recipe(
    "mining_base",
    margin=0.2,
    p=8,
    k=12,
    steps=600,
    network="seed",
    embedding_dim=128,
    loop="compiled",
    steps_per_execution=100,
)
#: Chapter 6's schemes and the margins each (but soft-margin) is tried with.
MINING_SCHEMES_COMPARED = MINING_SCHEMES
MINING_MARGINS = (0.1, 0.2, 0.5)
#: Chapter 6's grid of batch-all runs, as (l2_normalize, margin) pairs.
L2_MARGIN_GRID = ((True, 0.2), (True, 1.0), (False, 0.2), (False, 1.0))


def _mining_configs() -> List[Dict]:
    configs = []
    for scheme in MINING_SCHEMES_COMPARED:
        margins = (None,) if scheme == "soft_margin" else MINING_MARGINS
        for margin in margins:
            configs.append({"mining": scheme, "margin": margin, "l2_normalize": True})
    for l2, margin in L2_MARGIN_GRID:
        config = {"mining": "batch_all", "margin": margin, "l2_normalize": l2}
        if config not in configs:
            configs.append(config)
    return configs


def _online_mining_run(seed: int, mnist: tuple) -> Dict:
    (x_all, y_all), (x_test, y_test) = mnist
    train_idx, val_idx = split_indices(y_all, 0.1, seed=0)  # the book's split
    x_tr, y_tr = x_all[train_idx], y_all[train_idx]
    x_val, y_val = x_all[val_idx], y_all[val_idx]
    runs = []
    for config in _mining_configs():
        margin = MINING_BASE.margin if config["margin"] is None else config["margin"]
        recipe = dataclasses.replace(
            MINING_BASE,
            name=f"mining_{config['mining']}",
            mining=config["mining"],
            margin=margin,
            l2_normalize=config["l2_normalize"],
        )
        net, _, history = train(recipe, x_tr, y_tr, seed=seed)
        e_tr = embed(net, x_tr)
        scores = {}
        # each split's images among themselves (leave-one-out: cheap, where
        # MAP@R against 54,000 references costs more than the training), and
        # 1-NN accuracy against the training images; validation chooses, test
        # reports
        for split, (x, y) in (("val", (x_val, y_val)), ("test", (x_test, y_test))):
            e = embed(net, x)
            m = retrieval_metrics(e, y, ks=(1,))
            scores[f"{split}_precision_at_1"] = m["precision_at_1"]
            scores[f"{split}_map_at_r"] = m["mean_average_precision_at_r"]
            nearest = nearest_neighbours(e, e_tr, 1)[:, 0]
            scores[f"{split}_one_nn_accuracy"] = float(np.mean(y_tr[nearest] == y))
        runs.append(
            {
                **config,
                **scores,
                "mean_norm": float(np.mean(np.linalg.norm(e_tr, axis=1))),
                "fit_seconds": history["fit_seconds"],
            }
        )
    return {"runs": runs}


def _scores(
    e: np.ndarray,
    y: np.ndarray,
    references: Optional[np.ndarray] = None,
    reference_labels: Optional[np.ndarray] = None,
) -> Tuple[Optional[float], Optional[float]]:
    """Precision@1 and MAP@R, or None for a diverged run.

    Leave-one-out among ``e`` without references, else ``e`` against them.
    """
    arrays = (e,) if references is None else (e, references)
    if not all(np.all(np.isfinite(a)) for a in arrays):
        return None, None
    m = retrieval_metrics(e, y, references, reference_labels, ks=(1,))
    return m["precision_at_1"], m["mean_average_precision_at_r"]


def _unseen_classes_run(seed: int, mnist: tuple) -> Dict:
    (x_all, y_all), (x_test, y_test) = mnist
    train_idx, val_idx = split_indices(y_all, 0.1, seed=0)  # the book's split
    seen_train = train_idx[y_all[train_idx] < SEEN_DIGITS]
    seen_val = val_idx[y_all[val_idx] < SEEN_DIGITS]  # choosing: no digit 6-9
    x_seen, y_seen = x_all[seen_train], y_all[seen_train]
    seen_test, unseen_test = y_test < SEEN_DIGITS, y_test >= SEEN_DIGITS
    parts = {
        "val": (x_all[seen_val], y_all[seen_val]),
        "test_seen": (x_test[seen_test], y_test[seen_test]),
        "test_unseen": (x_test[unseen_test], y_test[unseen_test]),
    }

    def scored(run, recipe, net, normalise=False):
        for part, (x, y) in parts.items():
            e = embed(net, recipe_inputs(recipe, x))
            if normalise:
                e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
            p1, mapr = _scores(e, y)
            run[f"{part}_precision_at_1"], run[f"{part}_map_at_r"] = p1, mapr
        return run

    runs = []
    for key, recipe in UNSEEN_CANDIDATES.items():
        net, _, history = train(recipe, x_seen, y_seen, seed=seed)
        run = {"embedding": "triplet", "candidate": key}
        run["learning_rate"] = recipe.learning_rate
        runs.append(scored(run, recipe, net) | {"fit_seconds": history["fit_seconds"]})
    for lr in UNSEEN_LEARNING_RATES:
        recipe = dataclasses.replace(UNSEEN_BASE, learning_rate=lr)
        net, _, history = train_softmax_baseline(recipe, x_seen, y_seen, seed=seed)
        for name, normalise in (("softmax", False), ("softmax_l2", True)):
            run = {"embedding": name, "candidate": None, "learning_rate": lr}
            run = scored(run, recipe, net, normalise)
            runs.append(run | {"fit_seconds": history["fit_seconds"]})
    return {"runs": runs}


#: The recipe chapter 7's search started from, named as it was then (the book's
#: best recipe before it was chosen on validation, with margin 0.5).
SEARCH_START = dataclasses.replace(BEST_RECIPE, name="best", margin=0.5)
#: The candidates of chapter 7's search, the starting recipe (keyed "best",
#: its name when the search ran) and four variations of it, one change each,
#: each trained for its 2,000 steps (the 2-minute budget) on the book's split.
#: The chapter chooses among them on the validation images only; the chosen
#: one is :data:`tripletutils.recipes.BEST_RECIPE`.
RECIPE_CANDIDATES: Dict[str, Recipe] = {
    "best": SEARCH_START,
    "margin_0.2": dataclasses.replace(SEARCH_START, name="best_m02", margin=0.2),
    "lr_1e-3": dataclasses.replace(SEARCH_START, name="best_lr1e3", learning_rate=1e-3),
    "semi_hard": dataclasses.replace(
        SEARCH_START, name="best_semi_hard", mining="semi_hard", margin=0.2
    ),
    "seed_network": dataclasses.replace(
        SEARCH_START, name="best_seed_net", network="seed"
    ),
}


#: Chapter 8 trains on the digits below this one and searches among the rest.
SEEN_DIGITS = 6
#: Chapter 8's budget on the six seen digits (6 classes x 16 images a step,
#: 800 steps).
_SEEN_BUDGET = {"p": 6, "k": 16, "steps": 800}
#: The learning rates of chapter 8's softmax baseline; its triplet search tries
#: the same three.
UNSEEN_LEARNING_RATES = (1e-3, 3e-3, 1e-2)
#: Chapter 8's triplet candidates, chapter 7's search run again on the seen
#: digits (each of :data:`RECIPE_CANDIDATES` on chapter 8's budget), plus the
#: starting recipe at learning rate 1e-2, so that the triplet loss tries the
#: softmax baseline's three learning rates. Chapter 8 chooses among them on the
#: validation images of the digits 0-5 only; nothing of 6-9 takes part.
UNSEEN_CANDIDATES: Dict[str, Recipe] = {
    key: dataclasses.replace(recipe, name=f"seen_{recipe.name}", **_SEEN_BUDGET)
    for key, recipe in RECIPE_CANDIDATES.items()
}
UNSEEN_CANDIDATES["lr_1e-2"] = dataclasses.replace(
    UNSEEN_CANDIDATES["best"], name="seen_best_lr1e2", learning_rate=1e-2
)
#: The network, images per step and steps of chapter 8's softmax baseline, the
#: starting recipe's (its mining and margin do not apply to it).
UNSEEN_BASE = UNSEEN_CANDIDATES["best"]


def _recipe_search_run(seed: int, mnist: tuple) -> Dict:
    (x_all, y_all), (x_test, y_test) = mnist
    train_idx, val_idx = split_indices(y_all, 0.1, seed=0)  # the book's split
    x_tr, y_tr = x_all[train_idx], y_all[train_idx]
    x_val, y_val = x_all[val_idx], y_all[val_idx]
    out = {}
    for key, recipe in RECIPE_CANDIDATES.items():
        net, _, history = train(recipe, x_tr, y_tr, seed=seed)
        run = {"fit_seconds": history["fit_seconds"]}
        e_val = embed(net, recipe_inputs(recipe, x_val))
        run["val_precision_at_1"], run["val_map_at_r"] = _scores(e_val, y_val)
        e_tr = embed(net, recipe_inputs(recipe, x_tr))
        e_test = embed(net, recipe_inputs(recipe, x_test))
        test = _scores(e_test, y_test, e_tr, y_tr)  # against the training images
        run["test_precision_at_1"], run["test_map_at_r"] = test
        out[key] = run
    return out


#: The named experiments.
EXPERIMENTS: Dict[str, Experiment] = {
    "seed_reproduction": Experiment(
        name="seed_reproduction",
        description=(
            "The seed's recipe over 10 seeds: trained on all 60,000 training "
            "images (the seed's protocol) and on the book's 54,000-image split; "
            "the seed's metric on the seed's 8,910 test triplets (chapter 5's, "
            "drawn with seed 1, and drawn anew per run)."
        ),
        seeds=tuple(range(10)),
        config={
            "recipe": dataclasses.asdict(SEED_RECIPE),
            "protocols": {
                "seed_protocol": "all 60,000 training images",
                "book_split": "split_indices(y_train, 0.1, seed=0)[0]",
            },
            "test_triplets": "seed_offline_triplets(y_test, seed=1); "
            "own: seed=run seed + 1",
        },
        run=_seed_reproduction_run,
    ),
    "fast_loop": Experiment(
        name="fast_loop",
        description=(
            "The compiled loop with the fast settings against the plain fit, "
            "over 5 seeds: FAST_SEED_RECIPE on all 60,000 training images, the "
            "seed's metric on chapter 5's test triplets (the plain runs are "
            "seed_reproduction's); BEST_FIT_RECIPE (fit, float32) and BEST_RECIPE "
            "(compiled loop, bfloat16) on the "
            "book's 54,000-image split, Precision@1 and MAP@R on its 6,000 "
            "validation images (leave-one-out)."
        ),
        seeds=tuple(range(5)),
        config={
            "seed_fast": dataclasses.asdict(FAST_SEED_RECIPE),
            "best_plain": dataclasses.asdict(BEST_FIT_RECIPE),
            "best_fast": dataclasses.asdict(BEST_RECIPE),
            "test_triplets": "seed_offline_triplets(y_test, seed=1)",
            "split": "split_indices(y_train, 0.1, seed=0)",
        },
        run=_fast_loop_run,
    ),
    "online_mining": Experiment(
        name="online_mining",
        description=(
            "Chapter 6's six ways to pick triplets on equal terms, over 5 seeds: "
            "each scheme (but soft-margin) with margins 0.1, 0.2 and 0.5, and "
            "batch-all with and without L2 normalisation at margins 0.2 and 1.0; "
            "600 steps of 96 images on the book's 54,000-image split. Scores: "
            "Precision@1 and MAP@R of the 6,000 validation images (for choosing) "
            "and of the 10,000 test images (for reporting), each split among "
            "itself (leave-one-out), and 1-NN accuracy against the training images."
        ),
        seeds=tuple(range(5)),
        config={
            "base": dataclasses.asdict(MINING_BASE),
            "configs": _mining_configs(),
            "split": "split_indices(y_train, 0.1, seed=0)",
            "references": "leave-one-out within each split; 1-NN: the training images",
        },
        run=_online_mining_run,
    ),
    "unseen_classes": Experiment(
        name="unseen_classes",
        description=(
            "Chapter 8's two models trained on the digits 0-5 only, over 5 seeds: "
            "the triplet embedding, chapter 7's search run again on the seen "
            "digits (its five candidates, 6 x 16 images a step, 800 steps, and "
            "the starting recipe at learning rate 1e-2), and the softmax "
            "classifier's penultimate layer (the starting recipe's network, "
            "images and steps; raw and L2-normalised) at learning rates 1e-3, "
            "3e-3 and 1e-2. Scores, each split among itself (leave-one-out): "
            "Precision@1 and MAP@R of the validation images of 0-5 (for "
            "choosing), of the test images of 0-5 and of 6-9 (reporting)."
        ),
        seeds=tuple(range(5)),
        config={
            "triplet_candidates": {
                k: dataclasses.asdict(r) for k, r in UNSEEN_CANDIDATES.items()
            },
            "softmax_base": dataclasses.asdict(UNSEEN_BASE),
            "learning_rates": list(UNSEEN_LEARNING_RATES),
            "seen_digits": list(range(SEEN_DIGITS)),
            "embeddings": ["triplet", "softmax", "softmax_l2"],
            "split": "split_indices(y_train, 0.1, seed=0), digits 0-5 of each part",
            "references": "leave-one-out within each part",
        },
        run=_unseen_classes_run,
    ),
    "recipe_search": Experiment(
        name="recipe_search",
        description=(
            "Chapter 7's search for the best recipe, over 3 seeds: the best recipe "
            "and four variations (margin 0.2, learning rate 1e-3, semi-hard "
            "mining at margin 0.2, the seed's network), each 2,000 steps on the "
            "book's 54,000-image split. Scores: Precision@1 and MAP@R of the "
            "6,000 validation images, leave-one-out (for choosing), and of the "
            "10,000 test images against the training images (for reporting the "
            "chosen recipe only)."
        ),
        seeds=tuple(range(3)),
        config={
            "candidates": {
                k: dataclasses.asdict(r) for k, r in RECIPE_CANDIDATES.items()
            },
            "split": "split_indices(y_train, 0.1, seed=0)",
            "references": "validation: leave-one-out; test: the training images",
        },
        run=_recipe_search_run,
    ),
}


def _config_hash(config: Dict) -> str:
    text = json.dumps(config, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_experiment(
    name: str,
    seeds: Optional[Sequence[int]] = None,
    mnist: Optional[tuple] = None,
    folder: Union[str, Path] = RESULTS,
    log: Callable[[str], None] = print,
) -> Dict:
    """Run a named experiment over its seeds and write ``<folder>/<name>.json``.

    Parameters
    ----------
    name : str
        A key of :data:`EXPERIMENTS`.
    seeds : sequence of int, optional
        Default: the experiment's own seeds.
    mnist : tuple, optional
        ``((x_train, y_train), (x_test, y_test))``; default
        :func:`tripletutils.data.load_mnist()`.
    folder : str or Path, default ``notebooks/results``
    log : callable, default print
        Receives one line per finished seed.

    Returns
    -------
    dict
        What was written: ``name``, ``description``, ``command``, ``config``,
        ``config_hash``, ``package_version``, ``machine``,
        ``bfloat16_native`` (False: the recipes that ask for bfloat16 computed
        in float32, see :func:`tripletutils.training.compute_precision`), ``date``,
        ``seconds`` (whole experiment) and ``runs`` (one dict per seed:
        ``seed``, ``seconds``, ``metrics``).
    """
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; known: {sorted(EXPERIMENTS)}")
    exp = EXPERIMENTS[name]
    seeds = tuple(exp.seeds if seeds is None else seeds)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) for s in seeds):
        raise ValueError(f"seeds must be a non-empty sequence of ints, got {seeds!r}")
    if mnist is None:
        mnist = load_mnist()
    started = time.perf_counter()
    runs: List[Dict] = []
    for seed in seeds:
        t0 = time.perf_counter()
        metrics = exp.run(seed, mnist)
        runs.append(
            {"seed": seed, "seconds": time.perf_counter() - t0, "metrics": metrics}
        )
        log(f"{name}: seed {seed} done in {runs[-1]['seconds']:.0f} s")
    result = {
        "name": name,
        "seeds": list(seeds),
        "description": exp.description,
        "command": f"python -m tripletutils.experiments {name}  (make experiments "
        f"NAME={name})",
        "config": exp.config,
        "config_hash": _config_hash(exp.config),
        "package_version": __version__,
        "machine": hardware_info(),
        # with False, recipes that ask for bfloat16 computed in float32
        "bfloat16_native": bfloat16_is_native(),
        "python": platform.python_version(),
        "date": datetime.date.today().isoformat(),
        "seconds": time.perf_counter() - started,
        "runs": runs,
    }
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=1) + "\n"
    _replace(lambda tmp: tmp.write_text(text), folder / f"{name}.json")
    return result


def load_results(name: str, folder: Union[str, Path] = RESULTS) -> Dict:
    """Read ``<folder>/<name>.json`` and check it against the experiment's code.

    Parameters
    ----------
    name : str
    folder : str or Path, default ``notebooks/results``
        From a chapter (run in ``notebooks/``): ``"results"``.

    Returns
    -------
    dict
        As :func:`run_experiment` wrote it.

    Raises
    ------
    FileNotFoundError
        If the file is missing (``make experiments NAME=<name>`` makes it).
    ValueError
        If its configuration hash no longer matches the experiment's
        configuration (the code changed since the file was made), or it holds
        other seeds than the experiment's (a quick run with ``--seeds``).
    """
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; known: {sorted(EXPERIMENTS)}")
    path = Path(folder) / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: run `make experiments NAME={name}` to make it"
        )
    result = json.loads(path.read_text())
    expected = _config_hash(EXPERIMENTS[name].config)
    if result.get("config_hash") != expected:
        raise ValueError(
            f"{path} was made with another configuration (hash "
            f"{result.get('config_hash')}, the code's is {expected}): run "
            f"`make experiments NAME={name}` again"
        )
    seeds = list(EXPERIMENTS[name].seeds)
    held = [run["seed"] for run in result.get("runs", [])]
    if held != seeds:
        raise ValueError(
            f"{path} holds seeds {held}, the experiment has {seeds} "
            f"(a quick run?): run `make experiments NAME={name}` again"
        )
    return result


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m tripletutils.experiments [NAME ...]``: run experiments.

    Parameters
    ----------
    argv : list of str, optional
        Experiment names (default: all), ``--folder PATH`` (default
        ``notebooks/results``), ``--seeds N`` (only the first N seeds, for a
        quick check; the committed files use all).

    Returns
    -------
    int
        0 on success.
    """
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m tripletutils.experiments", description=main.__doc__
    )
    parser.add_argument("names", nargs="*", help="experiments to run (default: all)")
    parser.add_argument("--folder", default=str(RESULTS))
    parser.add_argument("--seeds", type=int, default=None)
    args = parser.parse_args(argv)
    if args.seeds is not None and args.seeds < 1:
        parser.error(f"--seeds must be at least 1, got {args.seeds}")
    if args.seeds is not None and args.folder == str(RESULTS):
        parser.error(
            "--seeds is for quick checks: give a --folder other than the "
            f"committed {RESULTS}"
        )
    names = args.names or sorted(EXPERIMENTS)
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        parser.error(f"unknown experiments {unknown}; known: {sorted(EXPERIMENTS)}")
    for name in names:
        seeds = EXPERIMENTS[name].seeds
        if args.seeds is not None:
            seeds = seeds[: args.seeds]
        result = run_experiment(name, seeds=seeds, folder=args.folder)
        print(f"{name}: {len(result['runs'])} seeds in {result['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
