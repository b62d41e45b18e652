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
  metric on the seed's 8,910 test triplets (chapter 5); the book's split also
  on chapter 4's validation triplets (chapter 4).
* ``fast_loop``: the compiled loop with the fast settings against ``fit``,
  over 5 seeds: the seed recipe on all 60,000 images (the seed's metric on the
  test triplets, chapter 12) and on the book's split (on chapter 4's
  validation triplets), the improved recipe on the book's split (validation
  triplets, chapter 4), and the best recipe (Precision@1 on the validation
  split) (chapters 4 and 12). The runs on the book's split of the seed and
  the improved recipe also score the test triplets, overall and per class,
  for chapter 5 (the improved recipe over seeds beside the seed recipe), so
  they are trained once for both chapters.
* ``online_mining``: chapter 7's schemes over 5 seeds, each with its margin
  chosen on the validation split, and the L2 x margin grid (chapter 7).
* ``unseen_classes``: chapter 10's triplet embedding (chapter 8's search run
  again on the digits 0-5) and softmax baseline (3 learning rates), trained on
  the digits 0-5 over 5 seeds; the validation images of 0-5 choose, the test
  images of 6-9 report (chapter 10).
* ``recipe_search``: the search's starting recipe (margin 0.5, keyed ``best``,
  shaped by earlier test-scored tries) and four one-change variations over 5
  seeds; the validation split chooses among them, the test set scores the
  chosen recipe (chapter 8).
* ``smoke``: a 4-run check of the engine (only by name).
* ``transfer_validation`` and ``transfer_test`` (only by name, for now): the
  transfer protocol (Musgrave et al. 2020 in miniature; the issue rebuilding
  chapter 10). Validation: 8 methods on one network and budget, each with the
  same grid of 2 learning rates (1e-3 and 3e-3, cosine decay; each method's
  loss settings fixed at their published defaults,
  :data:`TRANSFER_LOSS_SETTINGS`), trained on four of the digits 0-5 and
  scored among the other two (3 folds x 3 seeds: 144 runs). Selection
  (:func:`choose_transfer_configs`, fixed before any test score): the metric
  whose candidate ranking agrees more across folds, then each method's best
  learning rate. Test (after the validation): each method's choice retrained
  on the digits 0-5 and scored once among the test images of 6-9, beside
  raw pixels, PCA and the untrained network (5 seeds: 55 runs).

This module builds on :mod:`tripletutils.training` and :mod:`tripletutils.recipes`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
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

import keras
import numpy as np

from .evaluation import embed, per_class_report, seed_metric, triplet_gaps
from .metrics import nearest_neighbours, retrieval_metrics
from .recipes import (
    BEST_FIT_RECIPE,
    BEST_RECIPE,
    FAST_IMPROVED_RECIPE,
    FAST_SEED_RECIPE,
    IMPROVED_RECIPE,
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
    build_recipe_net,
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
    "TRANSFER_METHODS",
    "TRANSFER_CLASSIFIERS",
    "TRANSFER_LEARNING_RATES",
    "TRANSFER_BASELINES",
    "TRANSFER_BASE",
    "TRANSFER_FINAL_PK",
    "TRANSFER_LOSS_SETTINGS",
    "TRANSFER_PCA_COMPONENTS",
    "TRANSFER_VALIDATION_CANDIDATES",
    "TRANSFER_SELECTION_METRICS",
    "transfer_recipe",
    "choose_transfer_configs",
    "CLOSED_SET_RECIPES",
    "CLOSED_SET_BASELINES",
    "TRANSFER_CLOSED_SET_KEYS",
    "closed_set_scores",
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

    SciPy's ``scipy.stats.bootstrap`` (``method="percentile"``), queries drawn
    with replacement, 100 resamples at a time.

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
    from scipy.stats import bootstrap

    found = bootstrap(
        (v,),
        np.mean,
        n_resamples=resamples,
        confidence_level=c,
        method="percentile",
        random_state=np.random.default_rng(seed),
        batch=100,  # bounded memory: 100 x Q at a time
        vectorized=True,
    )
    low, high = found.confidence_interval
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
    candidates : dict or Callable
        Each candidate's name and configuration, JSON-serialisable (hashed into its
        runs' ids): the recipe as a dict, a learning rate, a scheme. Or, for an
        experiment whose candidates are chosen from other experiments' records,
        a function ``candidates(results) -> dict`` called when the experiment is
        planned, ``results`` mapping each name of ``after`` to its
        :func:`tripletutils.engine.load_results` (so it reads nothing else); its
        keys must be ``candidate_keys``.
    common : dict
        What every run shares, JSON-serialisable (hashed too): the splits, the
        test triplets, the references of the scores.
    run
        ``run(candidate, seed, mnist) -> dict`` (or a list of dicts when
        ``rows``): JSON-serialisable metrics of one run; ``mnist`` is what
        :func:`tripletutils.data.load_mnist` returns. When ``candidates`` is a
        function: ``run(candidate, seed, mnist, config)``, ``config`` being the
        candidate's configuration as the function gave it.
    rows : bool
        Default False. True: the runs give table rows: the chapters read
        each seed's rows of every candidate, in candidate order, as
        ``{"runs": [...]}``; otherwise ``{candidate: metrics}``.
    default : bool
        Default True: run by ``make experiments`` without a name (False: only
        by name).
    after : tuple of str
        Default ``()``. Experiments whose runs must all have fresh records
        before this one is planned (the engine runs them first, and this one
        waits while they are incomplete).
    candidate_keys : tuple of str
        The candidates' names, known before any record (so the engine can
        count the runs of an experiment that waits). Default: the keys of a
        ``candidates`` dict; required with a function.

    Raises
    ------
    TypeError, ValueError
        On ``after`` or ``candidate_keys`` that are not tuples of distinct
        str, ``candidate_keys`` that differ from a dict's keys, a function
        without them, or an experiment that comes after itself.
    """

    name: str
    description: str
    seeds: Tuple[int, ...]
    candidates: Union[Dict[str, Dict], Callable[[Mapping[str, Dict]], Dict[str, Dict]]]
    common: Dict
    run: Callable[..., Union[Dict, List[Dict]]]
    rows: bool = False
    default: bool = True
    after: Tuple[str, ...] = ()
    candidate_keys: Tuple[str, ...] = ()

    def __post_init__(self):
        for field in ("after", "candidate_keys"):
            value = getattr(self, field)
            if not isinstance(value, tuple) or not all(
                isinstance(v, str) for v in value
            ):
                raise TypeError(f"{field} must be a tuple of str, got {value!r}")
            if len(set(value)) != len(value):
                raise ValueError(f"{field} repeats a name: {value!r}")
        if self.name in self.after:
            raise ValueError(f"{self.name} cannot come after itself")
        if callable(self.candidates):
            if not self.candidate_keys:
                raise ValueError(
                    f"{self.name}: candidates given by a function need "
                    "candidate_keys (their names, known before any record)"
                )
        elif isinstance(self.candidates, Mapping):
            keys = tuple(self.candidates)
            if self.candidate_keys and self.candidate_keys != keys:
                raise ValueError(
                    f"{self.name}: candidate_keys {self.candidate_keys!r} differ "
                    f"from the candidates' keys {keys!r}"
                )
            object.__setattr__(self, "candidate_keys", keys)
        else:
            raise TypeError(
                "candidates must be a dict or a function of the results of the "
                f"experiments in after, got {type(self.candidates).__name__}"
            )

    @property
    def dynamic(self) -> bool:
        """True when the candidates are chosen from other experiments' records."""
        return callable(self.candidates)


def _book_split(mnist: tuple):
    """The book's split of MNIST's training images: (x, y) of train and val."""
    (x_all, y_all), _ = mnist
    train_idx, val_idx = split_indices(y_all, 0.1, seed=0)
    return (x_all[train_idx], y_all[train_idx]), (x_all[val_idx], y_all[val_idx])


#: The book's split, as the records' configurations name it.
_SPLIT = "split_indices(y_train, 0.1, seed=0)"


def _val_seed_metric(net, recipe: Recipe, x_val, y_val) -> float:
    """The seed's metric on chapter 4's validation triplets."""
    triplets = seed_offline_triplets(y_val, seed=1)  # chapter 4's val_triplets
    e = embed(net, recipe_inputs(recipe, x_val))
    return seed_metric(triplet_gaps(e, triplets, squared=True))


def _test_seed_scores(net, recipe: Recipe, x_test, y_test) -> Dict:
    """The seed's metric on chapter 5's test triplets, overall and per class."""
    fixed = seed_offline_triplets(y_test, seed=1)  # chapter 5's test triplets
    e = embed(net, recipe_inputs(recipe, x_test))
    gaps = triplet_gaps(e, fixed, squared=True)
    report = per_class_report(gaps, y_test[fixed[:, 0]])
    return {
        "seed_metric": seed_metric(gaps),
        "per_class": [float(row["acc"]) for row in report],
    }


def _seed_reproduction_run(protocol: str, seed: int, mnist: tuple) -> Dict:
    (x_all, y_all), (x_test, y_test) = mnist
    fixed = seed_offline_triplets(y_test, seed=1)  # chapter 5's test triplets
    own = seed_offline_triplets(y_test, seed=seed + 1)  # drawn anew per seed
    if protocol == "seed_protocol":
        x, y = x_all, y_all
    else:
        (x, y), (x_val, y_val) = _book_split(mnist)
    net, _, history = train(SEED_RECIPE, x, y, seed=seed)
    e = embed(net, recipe_inputs(SEED_RECIPE, x_test))
    gaps = triplet_gaps(e, fixed, squared=True)
    report = per_class_report(gaps, y_test[fixed[:, 0]])
    out = {
        "seed_metric": seed_metric(gaps),
        "seed_metric_own_triplets": seed_metric(triplet_gaps(e, own, squared=True)),
        "per_class": [float(row["acc"]) for row in report],
        "train_triplets": len(seed_offline_triplets(y, seed=seed)),
        "fit_seconds": history["fit_seconds"],
        "precision": history["precision"],
    }
    if protocol == "book_split":  # the plain side of chapter 4's validation check
        out["val_seed_metric"] = _val_seed_metric(net, SEED_RECIPE, x_val, y_val)
    return out


#: fast_loop's candidates: the recipe each trains.
_FAST_LOOP = {
    "seed_fast": "FAST_SEED_RECIPE",
    "seed_fast_split": "FAST_SEED_RECIPE",
    "improved_plain": "IMPROVED_RECIPE",
    "improved_fast": "FAST_IMPROVED_RECIPE",
    "best_plain": "BEST_FIT_RECIPE",
    "best_fast": "BEST_RECIPE",
}


def _fast_loop_run(key: str, seed: int, mnist: tuple) -> Dict:
    (x_all, y_all), (x_test, y_test) = mnist
    recipe = globals()[_FAST_LOOP[key]]
    if key == "seed_fast":  # chapter 12's comparison with seed_reproduction
        fixed = seed_offline_triplets(y_test, seed=1)  # chapter 5's test triplets
        net, _, history = train(recipe, x_all, y_all, seed=seed)
        e = embed(net, recipe_inputs(recipe, x_test))
        scores = {"seed_metric": seed_metric(triplet_gaps(e, fixed, squared=True))}
    else:
        (x_tr, y_tr), (x_val, y_val) = _book_split(mnist)
        net, _, history = train(recipe, x_tr, y_tr, seed=seed)
        if recipe.triplet_model:  # chapter 4's recipes: its validation triplets
            # (chapter 4's check), and chapter 5's test triplets (reporting)
            scores = {
                "val_seed_metric": _val_seed_metric(net, recipe, x_val, y_val),
                **_test_seed_scores(net, recipe, x_test, y_test),
            }
        else:
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


#: Chapter 7's recipe (the seed's network, P x K = 8 x 12 or 96 images a step,
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
#: Chapter 7's schemes and the margins each (but soft-margin) is tried with.
MINING_SCHEMES_COMPARED = MINING_SCHEMES
MINING_MARGINS = (0.1, 0.2, 0.5)
#: Chapter 7's grid of batch-all runs, as (l2_normalize, margin) pairs.
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
    # against 54,001 references costs more than the training); validation
    # chooses, test reports. The test images' 1-NN accuracy against the
    # training images too (chapter 7's test table; no chapter reads it on
    # validation)
    for split, (x, y) in (("val", (x_val, y_val)), ("test", (x_test, y_test))):
        e = embed(net, x)
        m = retrieval_metrics(e, y, ks=(1,))
        scores[f"{split}_precision_at_1"] = m["precision_at_1"]
        scores[f"{split}_map_at_r"] = m["mean_average_precision_at_r"]
        if split == "test":
            nearest = nearest_neighbours(e, e_tr, 1)[:, 0]
            scores["test_one_nn_accuracy"] = float(np.mean(y_tr[nearest] == y))
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


#: The recipe chapter 8's search started from, named as it was then (the book's
#: best recipe before it was chosen on validation, with margin 0.5).
SEARCH_START = dataclasses.replace(BEST_RECIPE, name="best", margin=0.5)
#: The candidates of chapter 8's search, the starting recipe (keyed "best",
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


#: Chapter 10 trains on the digits below this one and searches among the rest.
SEEN_DIGITS = 6
#: Chapter 10's budget on the six seen digits (6 classes x 16 images a step,
#: 800 steps).
_SEEN_BUDGET = {"p": 6, "k": 16, "steps": 800}
#: The learning rates of chapter 10's softmax baseline; its triplet search tries
#: the same three.
UNSEEN_LEARNING_RATES = (1e-3, 3e-3, 1e-2)
#: unseen_classes' softmax candidates: one per learning rate.
_SOFTMAX_RATES = {f"softmax_lr{lr:g}": lr for lr in UNSEEN_LEARNING_RATES}
#: Chapter 10's triplet candidates, chapter 8's search run again on the seen
#: digits (each of :data:`RECIPE_CANDIDATES` on chapter 10's budget), plus the
#: starting recipe at learning rate 1e-2, so that the triplet loss tries the
#: softmax baseline's three learning rates. Chapter 10 chooses among them on the
#: validation images of the digits 0-5 only; nothing of 6-9 takes part.
UNSEEN_CANDIDATES: Dict[str, Recipe] = {
    key: dataclasses.replace(recipe, name=f"seen_{recipe.name}", **_SEEN_BUDGET)
    for key, recipe in RECIPE_CANDIDATES.items()
}
UNSEEN_CANDIDATES["lr_1e-2"] = dataclasses.replace(
    UNSEEN_CANDIDATES["best"], name="seen_best_lr1e2", learning_rate=1e-2
)
#: The network, images per step and steps of chapter 10's softmax baseline, the
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


#: The transfer protocol's methods, each on the same network (BEST_RECIPE's
#: LeNet-style net, a 64-d embedding), budget and images per step: the triplet
#: loss with three minings, the contrastive, multi-similarity and supervised
#: contrastive losses over every pair of the batch, and two classifiers whose
#: penultimate layer is the embedding.
TRANSFER_METHODS = (
    "batch_all",
    "batch_hard",
    "semi_hard",
    "contrastive",
    "multi_similarity",
    "supervised_contrastive",
    "softmax",
    "cosine",
)
#: The methods trained as classifiers
#: (:func:`tripletutils.training.train_softmax_baseline`).
TRANSFER_CLASSIFIERS = ("softmax", "cosine")
#: The learning rates every method tries (Adam, cosine decay), its whole grid.
TRANSFER_LEARNING_RATES = (1e-3, 3e-3)
#: The baselines every table of the transfer protocol shows beside the methods.
TRANSFER_BASELINES = ("raw_pixels", "pca", "untrained")
#: What every method of the transfer protocol shares, BEST_RECIPE's network and
#: 64-d embedding on the unit sphere, 800 steps of 96 images (P x K = 4 x 24 on
#: a fold's four training digits), the compiled loop with 100 steps per call,
#: float32 (the same numbers on every machine).
TRANSFER_BASE = dataclasses.replace(
    BEST_RECIPE,
    name="transfer",
    p=4,
    k=24,
    steps=800,
    precision="float32",
)
#: P x K of the final models, trained on the six digits 0-5 (the same 96 images
#: a step).
TRANSFER_FINAL_PK = (6, 16)
#: Each method's loss settings, the published defaults, fixed (not searched).
#: Contrastive: positive pairs pulled together (``pos_margin`` 0), negative
#: pairs pushed to a distance of at least 1 on the unit sphere, where distances
#: lie in [0, 2]: an angle of 60 degrees (cosine 0.5), below the distance
#: sqrt(2) of orthogonal embeddings, so a 64-d embedding can meet it for every
#: pair of the digits with room to spare (the class centres of a regular
#: simplex are sqrt(2 C / (C - 1)) apart, 1.55 for C = 6), and the hinge goes
#: quiet for negatives already well apart instead of pushing them all to the
#: antipode (it is also pytorch-metric-learning's default).
TRANSFER_LOSS_SETTINGS: Dict[str, Dict[str, object]] = {
    "batch_all": {"mining": "batch_all", "margin": 0.2},
    "batch_hard": {"mining": "batch_hard", "margin": 0.2},
    "semi_hard": {"mining": "semi_hard", "margin": 0.2},
    "contrastive": {
        "loss": "contrastive",
        "loss_options": {"pos_margin": 0.0, "neg_margin": 1.0},
    },
    "multi_similarity": {
        "loss": "multi_similarity",
        "loss_options": {"alpha": 2.0, "beta": 50.0, "base": 0.5, "epsilon": 0.1},
    },
    "supervised_contrastive": {
        "loss": "supervised_contrastive",
        "loss_options": {"temperature": 0.1},
    },
    "softmax": {"head": "softmax"},
    "cosine": {"head": "cosine", "temperature": 0.05},
}
#: The components of the PCA baseline.
TRANSFER_PCA_COMPONENTS = 64


def transfer_recipe(method: str, learning_rate: float, final: bool = False) -> Recipe:
    """The recipe a method of the transfer protocol trains with.

    Parameters
    ----------
    method : str
        One of :data:`TRANSFER_METHODS`.
    learning_rate : float
        Adam's initial learning rate (cosine decay to 0 over the 800 steps).
    final : bool, default False
        False: a fold's recipe, P x K = 4 x 24 on its four training digits;
        True: the final model's, P x K = 6 x 16 on the six digits 0-5.

    Returns
    -------
    Recipe
        :data:`TRANSFER_BASE` with the method's loss settings
        (:data:`TRANSFER_LOSS_SETTINGS`; a classifier's head is not a recipe
        field and goes to :func:`tripletutils.training.train_softmax_baseline`).

    Raises
    ------
    ValueError
        On an unknown method or a learning rate that is not positive.
    """
    if method not in TRANSFER_METHODS:
        raise ValueError(f"method must be one of {TRANSFER_METHODS}, got {method!r}")
    p, k = TRANSFER_FINAL_PK if final else (TRANSFER_BASE.p, TRANSFER_BASE.k)
    settings = {
        key: value
        for key, value in TRANSFER_LOSS_SETTINGS[method].items()
        if key not in ("head", "temperature")
    }
    stage = "final" if final else "fold"
    return dataclasses.replace(
        TRANSFER_BASE,
        name=f"transfer_{method}_lr{learning_rate:g}_{stage}",
        learning_rate=learning_rate,
        p=p,
        k=k,
        **settings,
    )


def _recipe_config(method: str, learning_rate: float, final: bool) -> Dict:
    """What a record's configuration says of a method's run: its whole recipe,
    and a classifier's head."""
    return {
        "method": method,
        "learning_rate": learning_rate,
        "recipe": dataclasses.asdict(
            transfer_recipe(method, learning_rate, final=final)
        ),
        "head": _head(method),
    }


def _head(method: str) -> Dict[str, object]:
    """A classifier's head and temperature (empty for the metric losses)."""
    settings = TRANSFER_LOSS_SETTINGS[method]
    return {k: v for k, v in settings.items() if k in ("head", "temperature")}


def _unit(e: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero, NaN stays NaN)."""
    norm = np.linalg.norm(e, axis=1, keepdims=True)
    return (e / np.maximum(norm, 1e-12)).astype(np.float32)


class _Trained:
    """A trained method: its features before and after the embedding layer.

    ``features(images, "embedding")``: the embedding layer's output (the
    classifiers' penultimate layer); ``features(images, "backbone")``: the
    backbone's output that feeds it (256-d). Both L2-normalised; a softmax
    classifier's centred first by their mean over its training images.
    """

    def __init__(self, method, recipe, net, history, x_train):
        self.method, self.recipe, self.history = method, recipe, history
        self.diverged = history["stopped_at_step"] is not None
        self.models = {
            "embedding": net,
            "backbone": keras.Model(net.inputs, net.get_layer("embedding").input),
        }
        self.centres = {}
        if method == "softmax" and not self.diverged:
            for kind, model in self.models.items():
                e = embed(model, recipe_inputs(recipe, x_train))
                self.centres[kind] = e.mean(axis=0)

    def features(self, images: np.ndarray, kind: str) -> np.ndarray:
        e = embed(self.models[kind], recipe_inputs(self.recipe, images))
        if kind in self.centres:
            e = e - self.centres[kind]
        return _unit(e)


def _train_transfer(
    method: str,
    learning_rate: float,
    x: np.ndarray,
    y: np.ndarray,
    seed: int,
    final: bool,
    changes: Optional[Mapping[str, object]] = None,
) -> _Trained:
    """Train one method on a fold's four digits or (``final``) on the six;
    ``changes``: recipe fields that differ from the method's recipe."""
    classes = np.unique(y)
    recipe = transfer_recipe(method, learning_rate, final=final)
    if changes:
        recipe = dataclasses.replace(recipe, **changes)
    if method in TRANSFER_CLASSIFIERS:  # class ids 0..C-1, as a classifier needs
        net, _, history = train_softmax_baseline(
            recipe,
            x,
            np.searchsorted(classes, y),
            seed,
            on_non_finite="stop",
            **_head(method),
        )
    else:
        net, _, history = train(recipe, x, y, seed=seed, on_non_finite="stop")
    return _Trained(method, recipe, net, history, x)


def _validation_key(method: str, learning_rate: float, fold: int) -> str:
    return f"{method}_lr{learning_rate:g}_fold{fold}"


#: transfer_validation's candidates, one per (method, learning rate, fold), so
#: the engine fans out the folds too.
TRANSFER_VALIDATION_CANDIDATES: Dict[str, Dict] = {
    _validation_key(method, lr, fold): {
        **_recipe_config(method, lr, final=False),
        "fold": fold,
        "train_digits": list(TRANSFER_FOLDS[fold][0]),
        "held_out": list(TRANSFER_FOLDS[fold][1]),
    }
    for method in TRANSFER_METHODS
    for lr in TRANSFER_LEARNING_RATES
    for fold in range(len(TRANSFER_FOLDS))
}


def _transfer_validation_run(key: str, seed: int, mnist: tuple) -> Dict:
    config = TRANSFER_VALIDATION_CANDIDATES[key]
    method, lr, fold = config["method"], config["learning_rate"], config["fold"]
    (x_tr, y_tr), (x_val, y_val) = fold_data(mnist, fold)
    trained = _train_transfer(method, lr, x_tr, y_tr, seed, final=False)
    run = {
        "method": method,
        "learning_rate": lr,
        "fold": fold,
        "train_digits": sorted(int(c) for c in np.unique(y_tr)),
        "val_digits": sorted(int(c) for c in np.unique(y_val)),
        "fit_seconds": trained.history["fit_seconds"],
        "precision": trained.history["precision"],
        "stopped_at_step": trained.history["stopped_at_step"],
    }
    for kind, prefix in (("embedding", "val_"), ("backbone", "val_backbone_")):
        if trained.diverged:
            scores = {"val_precision_at_1": None, "val_map_at_r": None}
        else:
            e = trained.features(x_val, kind)
            scores = fold_validation_scores(e, y_val, fold)
        for name, value in scores.items():
            run[prefix + name[len("val_") :]] = value
    return run


#: The scores the transfer protocol may choose on, in order of precedence on a
#: tie of their agreement across folds.
TRANSFER_SELECTION_METRICS = ("val_map_at_r", "val_precision_at_1")


def _rank_agreement(table: Dict[int, np.ndarray]) -> float:
    """Mean Spearman correlation over the pairs of folds' score vectors.

    A non-finite score (a diverged candidate) ranks below every finite one; a
    fold whose scores all tie gives no ranking, so its pairs count as 0.
    """
    from scipy.stats import rankdata

    ranks = {
        f: rankdata(np.where(np.isfinite(v), v, -np.inf)) for f, v in table.items()
    }
    folds = sorted(ranks)
    values = []
    for i, a in enumerate(folds):
        for b in folds[i + 1 :]:
            ra, rb = ranks[a] - ranks[a].mean(), ranks[b] - ranks[b].mean()
            denom = math.sqrt(float(ra @ ra) * float(rb @ rb))
            values.append(float(ra @ rb) / denom if denom > 0 else 0.0)
    return float(np.mean(values))


def choose_transfer_configs(validation: Mapping) -> Dict[str, object]:
    """The transfer protocol's choices, made on the validation folds only.

    Fixed before any test score existed. The selection metric is chosen
    first, by a criterion that reads validation scores only: of
    :data:`TRANSFER_SELECTION_METRICS` (MAP@R and Precision@1 after the
    embedding layer), the one whose ranking of the candidates (method x
    learning rate) agrees more across the folds: the mean Spearman
    correlation, over the three pairs of folds, of the folds' per-candidate
    scores (each a mean over the seeds; a candidate with a diverged seed
    ranks below all others in that fold). On a tie MAP@R wins (the field's
    measure, Musgrave et al. 2020). Then, for each method, the learning rate
    with the highest mean of that metric over folds and seeds
    (:func:`choose_on_validation`: a rate with a diverged run cannot be
    chosen; the smaller rate wins a tie).

    Parameters
    ----------
    validation : mapping
        The results of the experiment ``transfer_validation``, as
        :func:`tripletutils.engine.load_results` gives them; nothing else is
        accepted (its name is checked), and every run must have seen only
        digits of :data:`TRANSFER_SEEN`.

    Returns
    -------
    dict
        ``metric`` (the selection metric), ``agreement`` (each metric's mean
        Spearman correlation across folds) and ``learning_rates``
        (``{method: learning rate}``, None for a method whose every rate
        diverged in some run).

    Raises
    ------
    TypeError
        If ``validation`` is not a mapping.
    ValueError
        If it is not transfer_validation's results (or the engine's file from
        before it), a run names a digit outside :data:`TRANSFER_SEEN` or other
        held-out digits than its fold's, or the grid is incomplete (every
        method, learning rate, fold and seed once).
    """
    if not isinstance(validation, Mapping):
        raise TypeError(
            f"validation must be a mapping, got {type(validation).__name__}"
        )
    if validation.get("name") != "transfer_validation":
        raise ValueError(
            "choices are made on transfer_validation's records only, got "
            f"{validation.get('name')!r}"
        )
    cells: Dict[Tuple[str, float, int], List[Dict]] = {}
    for per_seed in validation["runs"]:
        for key, m in per_seed["metrics"].items():
            digits = set(m["train_digits"]) | set(m["val_digits"])
            if not digits <= set(TRANSFER_SEEN):
                raise ValueError(
                    f"{key} (seed {per_seed['seed']}) saw digits "
                    f"{sorted(digits - set(TRANSFER_SEEN))}: a choice may only "
                    f"read the digits {list(TRANSFER_SEEN)}"
                )
            train_digits, held = TRANSFER_FOLDS[m["fold"]]
            if sorted(m["val_digits"]) != sorted(held) or sorted(
                m["train_digits"]
            ) != sorted(train_digits):
                raise ValueError(
                    f"{key} (seed {per_seed['seed']}) trained on "
                    f"{m['train_digits']} and scored {m['val_digits']}, fold "
                    f"{m['fold']} trains on {list(train_digits)} and holds out "
                    f"{list(held)}"
                )
            cells.setdefault((m["method"], m["learning_rate"], m["fold"]), []).append(m)
    grid = [
        (method, lr, fold)
        for method in TRANSFER_METHODS
        for lr in TRANSFER_LEARNING_RATES
        for fold in range(len(TRANSFER_FOLDS))
    ]
    seeds = {len(cells.get(cell, ())) for cell in grid}
    if set(cells) != set(grid) or len(seeds) != 1:
        raise ValueError(
            f"transfer_validation's grid is incomplete: {len(cells)} of "
            f"{len(grid)} (method, learning rate, fold) cells, with "
            f"{sorted(seeds)} seeds each"
        )

    def value(m, metric):
        v = m[metric]
        return np.nan if v is None else float(v)

    agreement = {}
    for metric in TRANSFER_SELECTION_METRICS:
        table = {
            fold: np.array(
                [
                    np.mean([value(m, metric) for m in cells[(method, lr, fold)]])
                    for method in TRANSFER_METHODS
                    for lr in TRANSFER_LEARNING_RATES
                ]
            )
            for fold in range(len(TRANSFER_FOLDS))
        }
        agreement[metric] = _rank_agreement(table)
    metric = max(
        TRANSFER_SELECTION_METRICS, key=agreement.__getitem__
    )  # first on a tie
    rates: Dict[str, Optional[float]] = {}
    for method in TRANSFER_METHODS:
        scores = {
            lr: [
                value(m, metric)
                for fold in range(len(TRANSFER_FOLDS))
                for m in cells[(method, lr, fold)]
            ]
            for lr in TRANSFER_LEARNING_RATES
        }
        try:
            rates[method] = choose_on_validation(scores, metric)
        except ValueError:  # every rate diverged in some run
            rates[method] = None
    return {"metric": metric, "agreement": agreement, "learning_rates": rates}


#: transfer_test's baselines: what each computes from an image.
_TRANSFER_BASELINE_CONFIGS: Dict[str, Dict] = {
    "raw_pixels": {"baseline": "raw_pixels", "features": "flattened [0, 1] images"},
    "pca": {
        "baseline": "pca",
        "components": TRANSFER_PCA_COMPONENTS,
        "whiten": False,
        "random_state": 0,
        "fit_on": f"{_SPLIT}[0], digits 0-5",
    },
    "untrained": {
        "baseline": "untrained",
        "network": TRANSFER_BASE.network,
        "embedding_dim": TRANSFER_BASE.embedding_dim,
        "features": "the initial weights' embedding, L2-normalised",
    },
}


def _transfer_test_candidates(results: Mapping[str, Dict]) -> Dict[str, Dict]:
    """Each method's chosen configuration, and the baselines."""
    rates = choose_transfer_configs(results["transfer_validation"])["learning_rates"]
    chosen = {
        method: _recipe_config(method, rates[method], final=True)
        if rates[method] is not None
        else {"method": method, "learning_rate": None}
        for method in TRANSFER_METHODS
    }
    return {**chosen, **_TRANSFER_BASELINE_CONFIGS}


def _test_scores(e: Optional[np.ndarray], y: np.ndarray, part: str) -> Dict:
    """Precision@1, R-Precision and MAP@R among ``e`` (None if not finite)."""
    names = ("precision_at_1", "r_precision", "map_at_r")
    if e is None or not np.all(np.isfinite(e)):
        return {f"{part}_{n}": None for n in names}
    m = retrieval_metrics(e, y, ks=(1,))
    values = (m["precision_at_1"], m["r_precision"], m["mean_average_precision_at_r"])
    return {f"{part}_{n}": v for n, v in zip(names, values)}


def _transfer_test_run(key: str, seed: int, mnist: tuple, config: Dict) -> Dict:
    _, (x_test, y_test) = mnist
    (x_tr, y_tr), _ = _book_split(mnist)
    keep = np.isin(y_tr, TRANSFER_SEEN)
    x_seen, y_seen = x_tr[keep], y_tr[keep]
    lr = config.get("learning_rate")
    run: Dict[str, object] = {
        "candidate": key,
        "learning_rate": lr,
        "fit_seconds": 0.0,
        "precision": "float32",
        "stopped_at_step": None,
    }
    features: Optional[Callable[[np.ndarray], np.ndarray]] = None
    if key in TRANSFER_BASELINES:
        started = time.perf_counter()
        features = _baseline_features(key, x_seen, seed)
        run["fit_seconds"] = time.perf_counter() - started
    elif lr is not None:  # None: every rate of the method diverged on validation
        trained = _train_transfer(key, lr, x_seen, y_seen, seed, final=True)
        for name in ("fit_seconds", "precision", "stopped_at_step"):
            run[name] = trained.history[name]
        if not trained.diverged:
            features = functools.partial(trained.features, kind="embedding")
    for part, digits in (("test_unseen", TRANSFER_TEST), ("test_seen", TRANSFER_SEEN)):
        keep = np.isin(y_test, digits)
        e = None if features is None else features(x_test[keep])
        run |= _test_scores(e, y_test[keep], part)
    return run


def _baseline_features(
    key: str, x_seen: np.ndarray, seed: int
) -> Callable[[np.ndarray], np.ndarray]:
    """A baseline's map from images to features (PCA fitted on ``x_seen``)."""

    def flat(images):
        return images.reshape(len(images), -1).astype(np.float32)

    if key == "raw_pixels":
        return flat
    if key == "pca":
        from sklearn.decomposition import PCA

        pca = PCA(TRANSFER_PCA_COMPONENTS, whiten=False, random_state=0)
        pca.fit(flat(x_seen))
        return lambda images: pca.transform(flat(images)).astype(np.float32)
    net = build_recipe_net(TRANSFER_BASE, seed=seed)  # its initial weights
    return lambda images: _unit(embed(net, recipe_inputs(TRANSFER_BASE, images)))


#: The knobs of the transfer protocol, each one change to a method's chosen
#: recipe, measured on the validation folds (features before the embedding
#: layer are scored by every transfer_validation run already).
TRANSFER_KNOBS: Dict[str, Dict[str, object]] = {
    "embedding_16": {"embedding_dim": 16},
    "embedding_256": {"embedding_dim": 256},
    "no_l2": {"l2_normalize": False},
    "augment": {"augment": True},
    "p2_k48": {"p": 2, "k": 48},
}
#: The triplet methods of :data:`TRANSFER_METHODS`.
TRANSFER_TRIPLET_METHODS = ("batch_all", "batch_hard", "semi_hard")
#: The knobs each role's method turns: a classifier has no P x K batches and
#: trains on features without L2 normalisation already.
TRANSFER_KNOB_ROLES: Dict[str, Tuple[str, ...]] = {
    "triplet": tuple(TRANSFER_KNOBS),
    "classifier": ("embedding_16", "embedding_256", "augment"),
}


def knob_methods(validation: Mapping) -> Dict[str, Dict[str, object]]:
    """The methods whose knobs are measured: the best triplet method and the
    best classifier on the validation folds.

    Parameters
    ----------
    validation : mapping
        transfer_validation's results (:func:`tripletutils.engine.load_results`).

    Returns
    -------
    dict
        ``{"triplet": {"method", "learning_rate", "score"}, "classifier":
        {...}}``: of :data:`TRANSFER_TRIPLET_METHODS` and of
        :data:`TRANSFER_CLASSIFIERS`, the method (at its chosen learning rate)
        with the highest mean of the selection metric over folds and seeds
        (the first in :data:`TRANSFER_METHODS` on a tie).

    Raises
    ------
    TypeError, ValueError
        As :func:`choose_transfer_configs`; ValueError also if every method
        of a role diverged.
    """
    choice = choose_transfer_configs(validation)
    metric, rates = choice["metric"], choice["learning_rates"]
    means: Dict[Tuple[str, float], List[float]] = {}
    for per_seed in validation["runs"]:
        for m in per_seed["metrics"].values():
            if rates.get(m["method"]) == m["learning_rate"]:
                means.setdefault((m["method"], m["learning_rate"]), []).append(
                    np.nan if m[metric] is None else float(m[metric])
                )
    out = {}
    for role, methods in (
        ("triplet", TRANSFER_TRIPLET_METHODS),
        ("classifier", TRANSFER_CLASSIFIERS),
    ):
        scored = {
            method: float(np.mean(means[(method, rates[method])]))
            for method in methods
            if rates[method] is not None
        }
        if not scored:
            raise ValueError(f"every {role} method diverged on validation")
        best = max(scored, key=lambda method: (scored[method], -methods.index(method)))
        out[role] = {
            "method": best,
            "learning_rate": rates[best],
            "score": scored[best],
        }
    return out


def _knob_key(role: str, knob: str, fold: int) -> str:
    return f"{role}_{knob}_fold{fold}"


#: transfer_knobs' candidate names, known before the choice.
TRANSFER_KNOB_KEYS = tuple(
    _knob_key(role, knob, fold)
    for role, knobs in TRANSFER_KNOB_ROLES.items()
    for knob in knobs
    for fold in range(len(TRANSFER_FOLDS))
)


def _transfer_knobs_candidates(results: Mapping[str, Dict]) -> Dict[str, Dict]:
    """Each (role, knob, fold): the role's chosen method with one change."""
    chosen = knob_methods(results["transfer_validation"])
    candidates = {}
    for role, knobs in TRANSFER_KNOB_ROLES.items():
        method, lr = chosen[role]["method"], chosen[role]["learning_rate"]
        for knob in knobs:
            changes = TRANSFER_KNOBS[knob]
            recipe = dataclasses.replace(transfer_recipe(method, lr), **changes)
            for fold in range(len(TRANSFER_FOLDS)):
                candidates[_knob_key(role, knob, fold)] = {
                    "role": role,
                    "knob": knob,
                    "changes": changes,
                    "method": method,
                    "learning_rate": lr,
                    "fold": fold,
                    "recipe": dataclasses.asdict(recipe),
                    "head": _head(method),
                    "train_digits": list(TRANSFER_FOLDS[fold][0]),
                    "held_out": list(TRANSFER_FOLDS[fold][1]),
                }
    return candidates


def _transfer_knobs_run(key: str, seed: int, mnist: tuple, config: Dict) -> Dict:
    method, lr, fold = config["method"], config["learning_rate"], config["fold"]
    (x_tr, y_tr), (x_val, y_val) = fold_data(mnist, fold)
    trained = _train_transfer(
        method, lr, x_tr, y_tr, seed, final=False, changes=config["changes"]
    )
    run = {
        "role": config["role"],
        "knob": config["knob"],
        "method": method,
        "learning_rate": lr,
        "fold": fold,
        "train_digits": sorted(int(c) for c in np.unique(y_tr)),
        "val_digits": sorted(int(c) for c in np.unique(y_val)),
        "fit_seconds": trained.history["fit_seconds"],
        "precision": trained.history["precision"],
        "stopped_at_step": trained.history["stopped_at_step"],
    }
    if trained.diverged:
        scores = {"val_precision_at_1": None, "val_map_at_r": None}
    else:
        scores = fold_validation_scores(
            trained.features(x_val, "embedding"), y_val, fold
        )
    return run | scores


#: transfer_folds_test's candidates, one per method: known before the choice.
TRANSFER_FOLD_MODELS_KEYS = TRANSFER_METHODS


def _transfer_folds_test_candidates(results: Mapping[str, Dict]) -> Dict[str, Dict]:
    """Each method at its chosen learning rate, its three fold recipes."""
    rates = choose_transfer_configs(results["transfer_validation"])["learning_rates"]
    return {
        method: {
            "method": method,
            "learning_rate": rates[method],
            "recipe": None
            if rates[method] is None
            else dataclasses.asdict(transfer_recipe(method, rates[method])),
            "head": _head(method),
            "folds": [[list(t), list(h)] for t, h in TRANSFER_FOLDS],
        }
        for method in TRANSFER_METHODS
    }


def _transfer_folds_test_run(key: str, seed: int, mnist: tuple, config: Dict) -> Dict:
    _, (x_test, y_test) = mnist
    keep = np.isin(y_test, TRANSFER_TEST)
    x_unseen, y_unseen = x_test[keep], y_test[keep]
    lr = config["learning_rate"]
    run: Dict[str, object] = {
        "candidate": key,
        "learning_rate": lr,
        "fit_seconds": 0.0,
        "precision": "float32",
        "stopped_at_step": None,
    }
    parts: List[Optional[np.ndarray]] = []
    for fold in range(len(TRANSFER_FOLDS)):
        e = None
        if lr is not None:
            (x_tr, y_tr), _ = fold_data(mnist, fold)
            trained = _train_transfer(key, lr, x_tr, y_tr, seed, final=False)
            run["fit_seconds"] += trained.history["fit_seconds"]
            run["precision"] = trained.history["precision"]
            if trained.diverged:
                run["stopped_at_step"] = trained.history["stopped_at_step"]
            else:
                e = trained.features(x_unseen, "embedding")
        parts.append(e)
        run |= _test_scores(e, y_unseen, f"fold{fold}_test_unseen")
    whole = None if any(e is None for e in parts) else _unit(np.concatenate(parts, 1))
    return run | _test_scores(whole, y_unseen, "test_unseen")


#: The recommended closed-set recipes that transfer_closed_set scores on the
#: class-disjoint folds: chapter 7's schemes (each at the margin chapter 7
#: chose on validation) and chapter 8's BEST_RECIPE.
CLOSED_SET_RECIPES = MINING_SCHEMES_COMPARED + ("best_recipe",)
#: The baselines transfer_closed_set scores beside them, raw pixels and each
#: network untrained (the seed's of chapter 7, the LeNet-style of chapter 8).
CLOSED_SET_BASELINES = ("raw_pixels", "untrained_seed", "untrained_lenet")
#: transfer_closed_set's candidates, one per (recipe or baseline, fold); the
#: longest runs (BEST_RECIPE's 2,000 steps) first, so that they start first.
TRANSFER_CLOSED_SET_KEYS = tuple(
    f"{name}_fold{fold}"
    for name in ("best_recipe",) + CLOSED_SET_RECIPES[:-1] + CLOSED_SET_BASELINES
    for fold in range(len(TRANSFER_FOLDS))
)


def _chosen_mining_margins(online: Mapping) -> Dict[str, Optional[float]]:
    """Chapter 7's choice: each scheme's margin of the highest mean validation
    MAP@R on the unit sphere (soft-margin has none)."""
    per_scheme: Dict[str, Dict[float, List]] = {}
    for record in online["runs"]:
        for row in record["metrics"]["runs"]:
            if row["l2_normalize"] and row["margin"] in MINING_MARGINS:
                cell = per_scheme.setdefault(row["mining"], {})
                cell.setdefault(row["margin"], []).append(row["val_map_at_r"])
    chosen: Dict[str, Optional[float]] = {"soft_margin": None}
    for scheme in MINING_SCHEMES_COMPARED:
        if scheme != "soft_margin":
            chosen[scheme] = choose_on_validation(per_scheme[scheme], "val_map_at_r")
    return chosen


def _fold_recipe(recipe: Recipe) -> Recipe:
    """A closed-set recipe on a fold's four digits: P x K = 4 x (the same
    images a step), float32 (the same numbers on every machine)."""
    images = recipe.p * recipe.k
    p = len(TRANSFER_FOLDS[0][0])
    return dataclasses.replace(
        recipe, name=f"{recipe.name}_fold", p=p, k=images // p, precision="float32"
    )


def _closed_set_recipe(name: str, margin: Optional[float]) -> Recipe:
    """The fold recipe of a scheme of chapter 7 at its margin, or BEST_RECIPE's."""
    if name == "best_recipe":
        return _fold_recipe(BEST_RECIPE)
    recipe = dataclasses.replace(
        MINING_BASE,
        name=f"mining_{name}",
        mining=name,
        margin=MINING_BASE.margin if margin is None else margin,
    )
    return _fold_recipe(recipe)


def _transfer_closed_set_candidates(results: Mapping[str, Dict]) -> Dict[str, Dict]:
    """Chapter 7's schemes at their chosen margins, BEST_RECIPE and the
    baselines, each on every fold."""
    margins = _chosen_mining_margins(results["online_mining"])
    candidates = {}
    for fold, (train_digits, held_out) in enumerate(TRANSFER_FOLDS):
        where = {
            "fold": fold,
            "train_digits": list(train_digits),
            "held_out": list(held_out),
        }
        for name in CLOSED_SET_RECIPES:
            margin = margins.get(name)
            recipe = _closed_set_recipe(name, margin)
            candidates[f"{name}_fold{fold}"] = {
                "name": name,
                "chapter": 7 if name == "best_recipe" else 6,
                "margin": recipe.margin if name == "best_recipe" else margin,
                "recipe": dataclasses.asdict(recipe),
                **where,
            }
        for name in CLOSED_SET_BASELINES:
            network = name.split("_")[1] if name.startswith("untrained") else None
            candidates[f"{name}_fold{fold}"] = {
                "name": name,
                "baseline": True,
                "network": network,
                **where,
            }
    return {key: candidates[key] for key in TRANSFER_CLOSED_SET_KEYS}


def _transfer_closed_set_run(key: str, seed: int, mnist: tuple, config: Dict) -> Dict:
    fold, name = config["fold"], config["name"]
    (x_tr, y_tr), (x_val, y_val) = fold_data(mnist, fold)
    run: Dict[str, object] = {
        "name": name,
        "fold": fold,
        "margin": config.get("margin"),
        "train_digits": sorted(int(c) for c in np.unique(y_tr)),
        "val_digits": sorted(int(c) for c in np.unique(y_val)),
        "fit_seconds": 0.0,
        "precision": "float32",
        "stopped_at_step": None,
    }
    if name == "raw_pixels":
        e = _baseline_features("raw_pixels", x_tr, seed)(x_val)
    elif name in CLOSED_SET_BASELINES:  # the network's initial weights
        base = MINING_BASE if config["network"] == "seed" else BEST_RECIPE
        net = build_recipe_net(_fold_recipe(base), seed=seed)
        e = _unit(embed(net, recipe_inputs(base, x_val)))
    else:
        recipe = _closed_set_recipe(name, config["margin"])
        net, _, history = train(recipe, x_tr, y_tr, seed=seed, on_non_finite="stop")
        run["fit_seconds"] = history["fit_seconds"]
        run["precision"] = history["precision"]
        run["stopped_at_step"] = history["stopped_at_step"]
        e = None
        if history["stopped_at_step"] is None:
            e = _unit(embed(net, recipe_inputs(recipe, x_val)))
    if e is None:
        return run | {"val_precision_at_1": None, "val_map_at_r": None}
    return run | fold_validation_scores(e, y_val, fold)


def closed_set_scores(
    results: Mapping, metric: str
) -> Dict[str, List[Optional[float]]]:
    """Each closed-set recipe's and baseline's score on the class-disjoint folds.

    Parameters
    ----------
    results : mapping
        The results of the experiment ``transfer_closed_set``, as
        :func:`tripletutils.engine.load_results` gives them (its name is
        checked).
    metric : str
        ``"val_precision_at_1"`` or ``"val_map_at_r"``.

    Returns
    -------
    dict of str to list of float or None
        For each name of :data:`CLOSED_SET_RECIPES` and
        :data:`CLOSED_SET_BASELINES`, in that order, one value per seed (in
        seed order): the mean of ``metric`` over the three folds, None where
        a fold's run diverged.

    Raises
    ------
    TypeError
        If ``results`` is not a mapping or ``metric`` not a str.
    ValueError
        If ``results`` are not transfer_closed_set's, ``metric`` is not one of
        the two, or a seed lacks a run of some name and fold.
    """
    if not isinstance(results, Mapping):
        raise TypeError(f"results must be a mapping, got {type(results).__name__}")
    if not isinstance(metric, str):
        raise TypeError(f"metric must be a str, got {type(metric).__name__}")
    if results.get("name") != "transfer_closed_set":
        raise ValueError(
            f"results must be transfer_closed_set's, got {results.get('name')!r}"
        )
    if metric not in TRANSFER_SELECTION_METRICS:
        raise ValueError(
            f"metric must be one of {TRANSFER_SELECTION_METRICS}, got {metric!r}"
        )
    names = CLOSED_SET_RECIPES + CLOSED_SET_BASELINES
    scores: Dict[str, List[Optional[float]]] = {name: [] for name in names}
    for per_seed in sorted(results["runs"], key=lambda r: r["seed"]):
        runs = per_seed["metrics"]
        missing = sorted(set(TRANSFER_CLOSED_SET_KEYS) - set(runs))
        if missing:
            raise ValueError(f"seed {per_seed['seed']} lacks the runs {missing}")
        for name in names:
            values = [
                runs[f"{name}_fold{f}"][metric] for f in range(len(TRANSFER_FOLDS))
            ]
            mean = None if None in values else float(np.mean(values))
            scores[name].append(mean)
    return scores


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
            "images (the seed's protocol) and on the book's 54,001-image split; "
            "the seed's metric on the seed's 8,910 test triplets (chapter 5's, "
            "drawn with seed 1, and drawn anew per run). The book_split runs "
            "also score chapter 4's validation triplets (the plain side of "
            "chapter 4's check of the fast settings, against fast_loop's "
            "seed_fast_split). The fast seed recipe and the improved recipe on "
            "the book's split, over seeds, are fast_loop's candidates, trained "
            "once for chapters 4 and 5."
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
            "validation_triplets": "book_split only: seed_offline_triplets(y_val, "
            "seed=1)",
        },
        run=_seed_reproduction_run,
    ),
    "fast_loop": Experiment(
        name="fast_loop",
        description=(
            "The compiled loop with the fast settings against the plain fit, "
            "over 5 seeds: FAST_SEED_RECIPE on all 60,000 training images, the "
            "seed's metric on chapter 5's test triplets (the plain runs are "
            "seed_reproduction's seed_protocol); FAST_SEED_RECIPE, "
            "IMPROVED_RECIPE (fit, float32) and FAST_IMPROVED_RECIPE on the "
            "book's 54,001-image split, the seed's metric on chapter 4's "
            "validation triplets (the plain seed runs are seed_reproduction's "
            "book_split), and, for reporting, on chapter 5's test triplets, "
            "overall and per class. These three serve chapters 4 and 5 alike, "
            "trained once: chapter 4 checks the fast settings on validation, "
            "and chapter 5 can compare the improved recipe over seeds with the "
            "seed recipe (seed_fast_split, or seed_reproduction's book_split), "
            "and its own run with runs of the same recipe, from these records. "
            "BEST_FIT_RECIPE (fit, float32) and BEST_RECIPE (compiled loop, "
            "bfloat16 where native) on the book's split, Precision@1 and MAP@R "
            "on its 5,999 validation images (leave-one-out)."
        ),
        seeds=tuple(range(5)),
        candidates={
            "seed_fast": {"recipe": _asdict(FAST_SEED_RECIPE), "train": "all 60,000"},
            "seed_fast_split": {"recipe": _asdict(FAST_SEED_RECIPE), "train": _SPLIT},
            "improved_plain": {"recipe": _asdict(IMPROVED_RECIPE), "train": _SPLIT},
            "improved_fast": {
                "recipe": _asdict(FAST_IMPROVED_RECIPE),
                "train": _SPLIT,
            },
            "best_plain": {"recipe": _asdict(BEST_FIT_RECIPE), "train": _SPLIT},
            "best_fast": {"recipe": _asdict(BEST_RECIPE), "train": _SPLIT},
        },
        common={
            "test_triplets": "seed_offline_triplets(y_test, seed=1)",
            "validation_triplets": "seed_offline_triplets(y_val, seed=1)",
            "validation": f"{_SPLIT}[1], leave-one-out",
        },
        run=_fast_loop_run,
    ),
    "online_mining": Experiment(
        name="online_mining",
        description=(
            "The six ways to pick triplets on equal terms, over 5 seeds: "
            "each scheme (but soft-margin) with margins 0.1, 0.2 and 0.5, and "
            "batch-all with and without L2 normalisation at margins 0.2 and 1.0; "
            "600 steps of 96 images on the book's 54,001-image split. Scores: "
            "Precision@1 and MAP@R of the 5,999 validation images (for choosing) "
            "and of the 10,000 test images (for reporting), each split among "
            "itself (leave-one-out), and the test images' 1-NN accuracy against "
            "the training images."
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
            "Two models trained on the digits 0-5 only, over 5 seeds: the "
            "triplet embedding, the best recipe's search run again on the seen "
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
            "The search for the best recipe, over 5 seeds: the best recipe "
            "and four variations (margin 0.2, learning rate 1e-3, semi-hard "
            "mining at margin 0.2, the seed's network), each 2,000 steps on the "
            "book's 54,001-image training split. Scores: Precision@1 and MAP@R "
            "of the 5,999 validation images, leave-one-out (for choosing), and "
            "of the 10,000 test images against the training images (for "
            "reporting the chosen recipe only)."
        ),
        seeds=tuple(range(5)),
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
    "transfer_validation": Experiment(
        name="transfer_validation",
        description=(
            "The transfer protocol's validation (Musgrave et al. 2020 in "
            "miniature), over 3 seeds: 8 methods (triplet batch-all, batch-hard "
            "and semi-hard at margin 0.2; contrastive at margins 0 and 1; "
            "multi-similarity at alpha 2, beta 50, base 0.5; supervised "
            "contrastive at temperature 0.1; softmax cross-entropy; a cosine "
            "classifier at temperature 0.05) x learning rates 1e-3 and 3e-3 x "
            "3 class-disjoint folds of the digits 0-5. Each run trains "
            "BEST_RECIPE's network (64-d) for 800 steps of 4 x 24 images on "
            "its fold's four training digits, float32, and scores retrieval "
            "among the book split's validation images of the fold's two "
            "held-out digits (leave-one-out): Precision@1 and MAP@R of the "
            "embedding and of the features before the embedding layer. No "
            "image of the digits 6-9 takes part."
        ),
        seeds=(0, 1, 2),
        candidates=TRANSFER_VALIDATION_CANDIDATES,
        common={
            "split": _SPLIT,
            "folds": [[list(t), list(h)] for t, h in TRANSFER_FOLDS],
            "references": "leave-one-out among the fold's validation images",
            "features": "L2-normalised; softmax: centred by the training mean first",
        },
        run=_transfer_validation_run,
    ),
    "transfer_test": Experiment(
        name="transfer_test",
        description=(
            "The transfer protocol's test, over 5 seeds: each method's "
            "learning rate chosen on transfer_validation's records "
            "(choose_transfer_configs), retrained for 800 steps of 6 x 16 "
            "images on the book split's training images of the digits 0-5, "
            "beside three baselines (raw pixels; PCA to 64 dimensions fitted "
            "on those images; the untrained network, L2-normalised). Scores, "
            "leave-one-out among MNIST's test images of the digits 6-9, read "
            "once per final model: Precision@1, R-Precision and MAP@R; the "
            "same among the test images of 0-5 for reference."
        ),
        seeds=tuple(range(5)),
        candidates=_transfer_test_candidates,
        common={
            "train": f"{_SPLIT}[0], digits 0-5",
            "test": "MNIST's test images of 6-9 (and of 0-5), leave-one-out",
            "chosen_by": "choose_transfer_configs(transfer_validation)",
        },
        run=_transfer_test_run,
        after=("transfer_validation",),
        candidate_keys=TRANSFER_METHODS + TRANSFER_BASELINES,
    ),
    "transfer_knobs": Experiment(
        name="transfer_knobs",
        description=(
            "The transfer protocol's knobs, on the validation folds over 3 "
            "seeds: the best triplet method and the best classifier of "
            "transfer_validation (knob_methods), each at its chosen learning "
            "rate with one change: a 16-d or 256-d embedding instead of 64-d, "
            "light augmentation (random shifts and rotations); the triplet "
            "method also without L2 normalisation in training, and with P x K "
            "= 2 x 48 instead of 4 x 24. Scored as transfer_validation's runs "
            "(the embedding's features, L2-normalised): no image of 6-9."
        ),
        seeds=(0, 1, 2),
        candidates=_transfer_knobs_candidates,
        common={
            "split": _SPLIT,
            "folds": [[list(t), list(h)] for t, h in TRANSFER_FOLDS],
            "chosen_by": "knob_methods(transfer_validation)",
        },
        run=_transfer_knobs_run,
        after=("transfer_validation",),
        candidate_keys=TRANSFER_KNOB_KEYS,
    ),
    "transfer_closed_set": Experiment(
        name="transfer_closed_set",
        description=(
            "The closed-set recipes that online_mining and recipe_search "
            "recommend, scored on the transfer protocol's class-disjoint folds "
            "over 3 seeds: the six mining schemes, each at the margin chosen on "
            "validation (online_mining's records), 600 steps of 4 x 24 images; "
            "BEST_RECIPE, 2,000 steps of 4 x 40 images; each on a fold's four "
            "training digits of the book split, float32, and scored as "
            "transfer_validation's runs (Precision@1 and MAP@R among the "
            "validation images of the fold's two held-out digits, "
            "leave-one-out). Beside them: raw pixels and each network "
            "untrained. No image of the digits 6-9 takes part."
        ),
        seeds=(0, 1, 2),
        candidates=_transfer_closed_set_candidates,
        common={
            "split": _SPLIT,
            "folds": [[list(t), list(h)] for t, h in TRANSFER_FOLDS],
            "references": "leave-one-out among the fold's validation images",
            # the text the records were made with (the chapter is now 7): it is
            # part of every run's configuration, so of its id
            "chosen_by": "chapter 6's margins: online_mining's validation MAP@R",
        },
        run=_transfer_closed_set_run,
        after=("online_mining",),
        candidate_keys=TRANSFER_CLOSED_SET_KEYS,
    ),
    "transfer_folds_test": Experiment(
        name="transfer_folds_test",
        description=(
            "The transfer protocol's fold models on the test digits, over 5 "
            "seeds (Musgrave et al. 2020 report these): each method at its "
            "chosen learning rate trains its three fold recipes (4 x 24 images "
            "a step on a fold's four training digits, as in "
            "transfer_validation); each fold model's embedding of MNIST's test "
            "images of 6-9, and the three concatenated (192-d, L2-normalised), "
            "are scored leave-one-out: Precision@1, R-Precision and MAP@R."
        ),
        seeds=tuple(range(5)),
        candidates=_transfer_folds_test_candidates,
        common={
            "split": _SPLIT,
            "test": "MNIST's test images of 6-9, leave-one-out",
            "chosen_by": "choose_transfer_configs(transfer_validation)",
        },
        run=_transfer_folds_test_run,
        after=("transfer_validation",),
        candidate_keys=TRANSFER_FOLD_MODELS_KEYS,
    ),
}
