"""The book's experiments, and how their results are compared.

An *experiment* trains and scores some candidate configurations, each over
several seeds: one *run* per (candidate, seed). This module defines them
(:data:`EXPERIMENTS`: the candidates, the seeds and a function that does one
run); :mod:`tripletutils.engine` runs them, writes one record per run to
``tripletutils/results/<experiment>/`` (package data) and gives the chapters
their results (:func:`tripletutils.engine.load_results`). Intervals:

* :func:`t_interval`: mean and 95 % Student-t interval of the mean across seeds
  (how precisely the seeds pin down a recipe's *mean*; it narrows as seeds are
  added, and single runs often fall outside it: hold a single figure against
  a prediction interval, ``mean -/+ t * sd * sqrt(1 + 1/n)``, instead);
* :func:`bootstrap_interval`: a bootstrap 95 % interval over test queries (the
  uncertainty of *one model's* metric on a finite test set).

:func:`compare_intervals` says which of two is better by the book's rule: only
an interval wholly above the other's is; intervals that overlap (or touch) mean
that no difference was found.

``python -m tripletutils.engine [NAME ...]`` (``make experiments``) runs
them. The experiments so far:

* ``seed_reproduction``: the seed's recipe over 10 seeds, under the seed's own
  protocol (all 60,000 training images, its 54,200 offline triplets) and
  under the book's split (54,001 training images), each scored with the seed's
  metric on the seed's 8,910 test triplets (chapter 5).
* ``fast_loop``: the compiled loop with the fast settings against ``fit``,
  over 5 seeds, for the seed recipe (the seed's metric on the test triplets)
  and the best recipe (Precision@1 on the validation split) (chapters 4 and
  10).
* ``online_mining``: chapter 6's schemes over 5 seeds, each with its margin
  chosen on the validation split, and the L2 x margin grid (chapter 6).
* ``unseen_classes``: chapter 8's triplet embedding (chapter 7's search run
  again on the digits 0-5) and softmax baseline (3 learning rates), trained on
  the digits 0-5 over 5 seeds; the validation images of 0-5 choose, the test
  images of 6-9 report (chapter 8).
* ``recipe_search``: the search's starting recipe (margin 0.5, keyed ``best``,
  shaped by earlier test-scored tries) and four one-change variations over 3
  seeds; the validation split chooses among them, the test set scores the
  chosen recipe (chapter 7).
* ``smoke``: a 4-run check of the engine (only by name).

This module builds on :mod:`tripletutils.training` and :mod:`tripletutils.recipes`.
"""

from __future__ import annotations

import dataclasses
import math
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

from .evaluation import embed, per_class_report, seed_metric, triplet_gaps
from .metrics import nearest_neighbours, retrieval_metrics
from .recipes import (
    BEST_FIT_RECIPE,
    BEST_RECIPE,
    FAST_SEED_RECIPE,
    SEED_RECIPE,
)
from .sampling import (
    check_classes,
    class_disjoint_folds,
    seed_offline_triplets,
    split_indices,
)
from .training import (
    MINING_SCHEMES,
    Recipe,
    recipe_inputs,
    train,
    train_softmax_baseline,
)

__all__ = [
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
    "SMOKE_RECIPE",
    "SMOKE_MARGINS",
    "TRANSFER_SEEN",
    "TRANSFER_TEST",
    "TRANSFER_FOLDS",
    "fold_data",
    "fold_validation_scores",
]

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
    """Candidates trained and scored once per seed: one *run* per pair.

    Attributes
    ----------
    name : str
        The records go to ``tripletutils/results/<name>/`` (one file per run,
        :mod:`tripletutils.engine`).
    description : str
    seeds : tuple of int
    candidates : dict
        Each candidate's name and configuration, JSON-serialisable (hashed into its
        runs' ids): the recipe as a dict, a learning rate, a scheme.
    common : dict
        What every run shares, JSON-serialisable (hashed too): the splits, the
        test triplets, the references of the scores.
    run
        ``run(candidate, seed, mnist) -> dict`` (or a list of dicts when
        ``rows``): JSON-serialisable metrics of one run; ``mnist`` is what
        :func:`tripletutils.data.load_mnist` returns.
    rows : bool
        Default False. True: the runs give table rows: the chapters read
        each seed's rows of every candidate, in candidate order, as
        ``{"runs": [...]}``; otherwise ``{candidate: metrics}``.
    default : bool
        Default True: run by ``make experiments`` without a name (False: only
        by name).
    """

    name: str
    description: str
    seeds: Tuple[int, ...]
    candidates: Dict[str, Dict]
    common: Dict
    run: Callable[[str, int, tuple], Union[Dict, List[Dict]]]
    rows: bool = False
    default: bool = True


def _book_split(mnist: tuple):
    """The book's split of MNIST's training images: (x, y) of train and val."""
    (x_all, y_all), _ = mnist
    train_idx, val_idx = split_indices(y_all, 0.1, seed=0)
    return (x_all[train_idx], y_all[train_idx]), (x_all[val_idx], y_all[val_idx])


#: The book's split, as the records' configurations name it.
_SPLIT = "split_indices(y_train, 0.1, seed=0)"


def _seed_reproduction_run(protocol: str, seed: int, mnist: tuple) -> Dict:
    (x_all, y_all), (x_test, y_test) = mnist
    fixed = seed_offline_triplets(y_test, seed=1)  # chapter 5's test triplets
    own = seed_offline_triplets(y_test, seed=seed + 1)  # drawn anew per seed
    if protocol == "seed_protocol":
        x, y = x_all, y_all
    else:
        (x, y), _ = _book_split(mnist)
    net, _, history = train(SEED_RECIPE, x, y, seed=seed)
    e = embed(net, recipe_inputs(SEED_RECIPE, x_test))
    gaps = triplet_gaps(e, fixed, squared=True)
    report = per_class_report(gaps, y_test[fixed[:, 0]])
    return {
        "seed_metric": seed_metric(gaps),
        "seed_metric_own_triplets": seed_metric(triplet_gaps(e, own, squared=True)),
        "per_class": [float(row["acc"]) for row in report],
        "train_triplets": len(seed_offline_triplets(y, seed=seed)),
        "fit_seconds": history["fit_seconds"],
        "precision": history["precision"],
    }


#: fast_loop's candidates: the recipe each trains.
_FAST_LOOP = {
    "seed_fast": "FAST_SEED_RECIPE",
    "best_plain": "BEST_FIT_RECIPE",
    "best_fast": "BEST_RECIPE",
}


def _fast_loop_run(key: str, seed: int, mnist: tuple) -> Dict:
    (x_all, y_all), (x_test, y_test) = mnist
    recipe = globals()[_FAST_LOOP[key]]
    if key == "seed_fast":
        fixed = seed_offline_triplets(y_test, seed=1)  # chapter 5's test triplets
        net, _, history = train(recipe, x_all, y_all, seed=seed)
        e = embed(net, recipe_inputs(recipe, x_test))
        scores = {"seed_metric": seed_metric(triplet_gaps(e, fixed, squared=True))}
    else:
        (x_tr, y_tr), (x_val, y_val) = _book_split(mnist)
        net, _, history = train(recipe, x_tr, y_tr, seed=seed)
        m = retrieval_metrics(embed(net, recipe_inputs(recipe, x_val)), y_val)
        scores = {
            "val_precision_at_1": m["precision_at_1"],
            "val_map_at_r": m["mean_average_precision_at_r"],
        }
    return {
        **scores,
        "fit_seconds": history["fit_seconds"],
        "precision": history["precision"],
    }


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


def _mining_key(config: Dict) -> str:
    margin = "soft" if config["margin"] is None else f"m{config['margin']}"
    l2 = "l2" if config["l2_normalize"] else "raw"
    return f"{config['mining']}_{margin}_{l2}"


def _online_mining_run(key: str, seed: int, mnist: tuple) -> Dict:
    _, (x_test, y_test) = mnist
    (x_tr, y_tr), (x_val, y_val) = _book_split(mnist)
    config = {_mining_key(c): c for c in _mining_configs()}[key]
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
    # each split's images among themselves (leave-one-out: cheap, where MAP@R
    # against 54,000 references costs more than the training), and 1-NN
    # accuracy against the training images; validation chooses, test reports
    for split, (x, y) in (("val", (x_val, y_val)), ("test", (x_test, y_test))):
        e = embed(net, x)
        m = retrieval_metrics(e, y, ks=(1,))
        scores[f"{split}_precision_at_1"] = m["precision_at_1"]
        scores[f"{split}_map_at_r"] = m["mean_average_precision_at_r"]
        nearest = nearest_neighbours(e, e_tr, 1)[:, 0]
        scores[f"{split}_one_nn_accuracy"] = float(np.mean(y_tr[nearest] == y))
    return {
        **config,
        **scores,
        "mean_norm": float(np.mean(np.linalg.norm(e_tr, axis=1))),
        "fit_seconds": history["fit_seconds"],
        "precision": history["precision"],
    }


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


def _unseen_classes_run(key: str, seed: int, mnist: tuple) -> List[Dict]:
    _, (x_test, y_test) = mnist
    (x_tr, y_tr), (x_val, y_val) = _book_split(mnist)
    seen_tr, seen_val = y_tr < SEEN_DIGITS, y_val < SEEN_DIGITS  # no digit 6-9
    x_seen, y_seen = x_tr[seen_tr], y_tr[seen_tr]
    seen_test, unseen_test = y_test < SEEN_DIGITS, y_test >= SEEN_DIGITS
    parts = {
        "val": (x_val[seen_val], y_val[seen_val]),
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

    if key in UNSEEN_CANDIDATES:
        recipe = UNSEEN_CANDIDATES[key]
        net, _, history = train(recipe, x_seen, y_seen, seed=seed)
        run = {"embedding": "triplet", "candidate": key}
        run["learning_rate"] = recipe.learning_rate
        extra = {"fit_seconds": history["fit_seconds"]}
        return [scored(run, recipe, net) | extra | {"precision": history["precision"]}]
    lr = _SOFTMAX_RATES[key]
    recipe = dataclasses.replace(UNSEEN_BASE, learning_rate=lr)
    net, _, history = train_softmax_baseline(recipe, x_seen, y_seen, seed=seed)
    rows = []
    for name, normalise in (("softmax", False), ("softmax_l2", True)):
        run = {"embedding": name, "candidate": None, "learning_rate": lr}
        run = scored(run, recipe, net, normalise)
        rows.append(
            run | {"fit_seconds": history["fit_seconds"], "precision": "float32"}
        )
    return rows


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
#: unseen_classes' softmax candidates: one per learning rate.
_SOFTMAX_RATES = {f"softmax_lr{lr:g}": lr for lr in UNSEEN_LEARNING_RATES}
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


def _recipe_search_run(key: str, seed: int, mnist: tuple) -> Dict:
    _, (x_test, y_test) = mnist
    (x_tr, y_tr), (x_val, y_val) = _book_split(mnist)
    recipe = RECIPE_CANDIDATES[key]
    net, _, history = train(recipe, x_tr, y_tr, seed=seed)
    run = {"fit_seconds": history["fit_seconds"], "precision": history["precision"]}
    e_val = embed(net, recipe_inputs(recipe, x_val))
    run["val_precision_at_1"], run["val_map_at_r"] = _scores(e_val, y_val)
    e_tr = embed(net, recipe_inputs(recipe, x_tr))
    e_test = embed(net, recipe_inputs(recipe, x_test))
    test = _scores(e_test, y_test, e_tr, y_tr)  # against the training images
    run["test_precision_at_1"], run["test_map_at_r"] = test
    return run


#: The digits the transfer protocol's choices may see (Musgrave et al. 2020, in
#: miniature), in class-disjoint folds of two digits (train on four, score
#: retrieval among the other two); the digits 6-9 are the test classes, read
#: once per final model.
TRANSFER_SEEN = (0, 1, 2, 3, 4, 5)
#: The test digits of the transfer protocol, never seen by a choice.
TRANSFER_TEST = (6, 7, 8, 9)
#: The three class-disjoint folds of the seen digits, as (training digits,
#: held-out digits) pairs.
TRANSFER_FOLDS = class_disjoint_folds(TRANSFER_SEEN, fold_size=2)


def fold_data(mnist: tuple, fold: int):
    """A fold's training and validation images, all from MNIST's training set.

    Parameters
    ----------
    mnist : tuple
        As :func:`tripletutils.data.load_mnist` returns it; only its training
        part is read.
    fold : int
        An index of :data:`TRANSFER_FOLDS`.

    Returns
    -------
    (x_train, y_train), (x_val, y_val)
        The book split's training images of the fold's four training digits,
        and its validation images of the fold's two held-out digits.

    Raises
    ------
    ValueError
        On a fold index out of range.
    """
    if isinstance(fold, bool) or not isinstance(fold, int):
        raise TypeError(f"fold must be an int, got {type(fold).__name__}")
    if not 0 <= fold < len(TRANSFER_FOLDS):
        raise ValueError(f"fold must be in 0..{len(TRANSFER_FOLDS) - 1}, got {fold}")
    train_classes, held_out = TRANSFER_FOLDS[fold]
    (x_tr, y_tr), (x_val, y_val) = _book_split(mnist)
    keep_tr, keep_val = np.isin(y_tr, train_classes), np.isin(y_val, held_out)
    return (x_tr[keep_tr], y_tr[keep_tr]), (x_val[keep_val], y_val[keep_val])


def fold_validation_scores(
    embeddings: np.ndarray, labels: np.ndarray, fold: int
) -> Dict[str, Optional[float]]:
    """A candidate's validation score on one fold: retrieval among held-out digits.

    The only scoring a choice between candidates reads: it refuses any image
    of a class other than the fold's held-out ones, the test digits 6-9 above
    all, so no choice can lean on a test class.

    Parameters
    ----------
    embeddings : numpy.ndarray
        ``float32`` embeddings of the fold's validation images, shape ``(N, D)``.
    labels : numpy.ndarray
        Their integer classes, shape ``(N,)``.
    fold : int
        An index of :data:`TRANSFER_FOLDS`.

    Returns
    -------
    dict
        ``val_precision_at_1`` and ``val_map_at_r`` (leave-one-out among the
        fold's validation images), None for a diverged (non-finite) embedding.

    Raises
    ------
    ValueError
        If a label is not one of the fold's held-out classes, or the fold
        index is out of range.
    """
    if isinstance(fold, bool) or not isinstance(fold, int):
        raise TypeError(f"fold must be an int, got {type(fold).__name__}")
    if not 0 <= fold < len(TRANSFER_FOLDS):
        raise ValueError(f"fold must be in 0..{len(TRANSFER_FOLDS) - 1}, got {fold}")
    check_classes(labels, TRANSFER_FOLDS[fold][1], f"fold {fold}'s validation")
    p1, mapr = _scores(np.asarray(embeddings), np.asarray(labels))
    return {"val_precision_at_1": p1, "val_map_at_r": mapr}


#: A tiny experiment that checks the engine end to end (``make experiments
#: NAME=smoke``; not run by default): two margins x two seeds of 20 steps on
#: the first 1,000 training images of the book's split, scored on the first
#: 500 validation images.
SMOKE_RECIPE = Recipe(
    "smoke", p=4, k=4, steps=20, embedding_dim=16, steps_per_execution=10
)
SMOKE_MARGINS = (0.1, 0.2)


def _smoke_run(key: str, seed: int, mnist: tuple) -> Dict:
    (x_tr, y_tr), (x_val, y_val) = _book_split(mnist)
    recipe = dataclasses.replace(SMOKE_RECIPE, margin=float(key.split("_")[1]))
    net, _, history = train(recipe, x_tr[:1000], y_tr[:1000], seed=seed)
    m = retrieval_metrics(embed(net, x_val[:500]), y_val[:500], ks=(1,))
    return {
        "val_precision_at_1": m["precision_at_1"],
        "val_map_at_r": m["mean_average_precision_at_r"],
        "final_loss": float(history["step_loss"][-1]),
        "fit_seconds": history["fit_seconds"],
        "precision": history["precision"],
    }


def _asdict(recipe: Recipe) -> Dict:
    return dataclasses.asdict(recipe)


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
        candidates={
            "seed_protocol": {
                "recipe": _asdict(SEED_RECIPE),
                "train": "all 60,000 training images",
            },
            "book_split": {
                "recipe": _asdict(SEED_RECIPE),
                "train": f"{_SPLIT}[0]",
            },
        },
        common={
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
            "(compiled loop, bfloat16 where native) on the book's 54,000-image "
            "split, Precision@1 and MAP@R on its 6,000 validation images "
            "(leave-one-out)."
        ),
        seeds=tuple(range(5)),
        candidates={
            "seed_fast": {"recipe": _asdict(FAST_SEED_RECIPE), "train": "all 60,000"},
            "best_plain": {"recipe": _asdict(BEST_FIT_RECIPE), "train": _SPLIT},
            "best_fast": {"recipe": _asdict(BEST_RECIPE), "train": _SPLIT},
        },
        common={
            "test_triplets": "seed_offline_triplets(y_test, seed=1)",
            "validation": f"{_SPLIT}[1], leave-one-out",
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
        candidates={_mining_key(c): c for c in _mining_configs()},
        common={
            "base": _asdict(MINING_BASE),
            "split": _SPLIT,
            "references": "leave-one-out within each split; 1-NN: the training images",
        },
        run=_online_mining_run,
        rows=True,
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
        candidates={
            **{
                key: {"embedding": "triplet", "recipe": _asdict(recipe)}
                for key, recipe in UNSEEN_CANDIDATES.items()
            },
            **{
                key: {
                    "embedding": ["softmax", "softmax_l2"],
                    "recipe": _asdict(UNSEEN_BASE),
                    "learning_rate": lr,
                }
                for key, lr in _SOFTMAX_RATES.items()
            },
        },
        common={
            "seen_digits": list(range(SEEN_DIGITS)),
            "split": f"{_SPLIT}, digits 0-5 of each part",
            "references": "leave-one-out within each part",
        },
        run=_unseen_classes_run,
        rows=True,
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
        candidates={
            key: {"recipe": _asdict(recipe)}
            for key, recipe in RECIPE_CANDIDATES.items()
        },
        common={
            "split": _SPLIT,
            "references": "validation: leave-one-out; test: the training images",
        },
        run=_recipe_search_run,
    ),
    "smoke": Experiment(
        name="smoke",
        description=(
            "A check of the engine: two margins x two seeds of a 20-step recipe "
            "on 1,000 training images, Precision@1 and MAP@R of 500 validation "
            "images."
        ),
        seeds=(0, 1),
        candidates={
            f"margin_{m}": {"recipe": _asdict(SMOKE_RECIPE), "margin": m}
            for m in SMOKE_MARGINS
        },
        common={"train": f"{_SPLIT}[0][:1000]", "validation": f"{_SPLIT}[1][:500]"},
        run=_smoke_run,
        default=False,
    ),
}
