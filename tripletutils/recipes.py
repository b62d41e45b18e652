"""The book's named recipes, and the cache of their trained networks.

* :data:`SEED_RECIPE`: SpikeKing/triplet-loss-mnist as published: raw 0..255
  pixels, ReLU embedding, the fixed offline triplets, squared distances,
  margin 1, Adam (lr 1e-3), batch 32, 2 epochs.
* :data:`IMPROVED_RECIPE`: the same network and budget, with pixels in [0, 1],
  a linear and L2-normalised embedding, and random triplets drawn anew every
  epoch.
* :data:`BEST_RECIPE`: the book's best recipe (chapters 8, 9, 12 and 13; chapter 10
  trains its network and 64-d embedding with other losses and budgets, see
  :data:`tripletutils.experiments.TRANSFER_BASE`).
* :data:`FAST_SEED_RECIPE`, :data:`FAST_IMPROVED_RECIPE` and
  :data:`BEST_FIT_RECIPE`: the same recipes with other speed settings (the
  loop, fused branches, steps per call, precision), which leave the batches
  as they are; chapter 4 trains the fast two.

:func:`load_or_train` reads a trained network from ``artifacts/`` or trains
it with :func:`tripletutils.training.train` when it is missing, so every
notebook runs on its own. The cache key is the whole recipe (its speed
settings included), the seed, the strategy, what the history records, a hash
of the training and validation data and a hash of the training code: a cached
model trained any other way is retrained, never loaded. Files are written to a
temporary name and renamed into place, the history last, so an interrupted save
never leaves a file that looks complete; a cached file that does not load is
retrained.

This module builds on :mod:`tripletutils.training`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple, Union

import keras
import numpy as np

from .fingerprint import code_fingerprint, data_fingerprint
from .training import Recipe, compute_precision, train

__all__ = [
    "SEED_RECIPE",
    "IMPROVED_RECIPE",
    "BEST_RECIPE",
    "BEST_FIT_RECIPE",
    "FAST_SEED_RECIPE",
    "FAST_IMPROVED_RECIPE",
    "cached_training",
    "load_or_train",
]

#: The seed project's recipe, as published (8 x 12 // 3 = 32 triplets a batch).
SEED_RECIPE = Recipe(
    name="seed",
    mining="seed_triplets",
    margin=1.0,
    squared=True,
    steps=None,
    epochs=2,
    cosine_decay=False,
    activation="relu",
    l2_normalize=False,
    raw_pixels=True,
)
#: The seed's network and budget with [0, 1] pixels, a linear L2-normalised
#: embedding and random triplets drawn anew every epoch.
IMPROVED_RECIPE = dataclasses.replace(
    SEED_RECIPE,
    name="improved",
    mining="random_triplets",
    activation=None,
    l2_normalize=True,
    raw_pixels=False,
)
#: The book's best recipe, used in chapters 8, 9, 12 and 13 (chapter 10 does not
#: train it: its methods share its network and 64-d embedding, with their own losses
#: and budget, experiments.TRANSFER_BASE). A LeNet-style network, a 64-d
#: embedding on the unit sphere, batch-all mining on 10 x 16 batches with margin
#: 0.2, Adam from 3e-3 with cosine decay, 2,000 steps (about 1.5 minutes on 2
#: CPU cores that compute bfloat16 natively; about 3 minutes in float32 on one
#: thread of the book's 2-core AMD EPYC, in the experiment records). Chapter
#: 7's search chose it on the validation split
#: (``tripletutils.experiments.RECIPE_CANDIDATES``, the experiment
#: ``recipe_search``), among one-change variations of a starting
#: recipe that earlier, test-scored tries produced (see book/protocol.md). It
#: trains with the compiled loop and 100 steps per call, and asks for bfloat16
#: computations (computed in bfloat16 only where the machine does it natively:
#: :func:`tripletutils.training.compute_precision`): the experiment
#: ``fast_loop`` compares it over seeds with the same recipe run by ``fit`` in
#: float32 (:data:`BEST_FIT_RECIPE`).
BEST_RECIPE = Recipe(
    name="best",
    mining="batch_all",
    margin=0.2,
    p=10,
    k=16,
    steps=2000,
    learning_rate=3e-3,
    network="lenet",
    embedding_dim=64,
    steps_per_execution=100,
    precision="mixed_bfloat16",
    loop="compiled",
)
#: BEST_RECIPE run the plain way (``model.fit``, 20 steps per call, float32).
BEST_FIT_RECIPE = dataclasses.replace(
    BEST_RECIPE,
    name="best_fit",
    loop="fit",
    steps_per_execution=20,
    precision="float32",
)

#: The speed settings of the two fast recipes below.
_FAST_SETTINGS = {
    "loop": "compiled",
    "fused": True,
    "steps_per_execution": 100,
    "precision": "mixed_bfloat16",
}

#: The seed recipe with the fast settings (the compiled loop, fused branches,
#: 100 steps per call, bfloat16 computations where the machine does them
#: natively and float32 ones elsewhere, float32 weights and loss). It trains on
#: the same batches as SEED_RECIPE; the experiment
#: ``fast_loop`` compares the results over seeds.
FAST_SEED_RECIPE = dataclasses.replace(SEED_RECIPE, name="seed_fast", **_FAST_SETTINGS)

#: The improved recipe with the fast settings of :data:`FAST_SEED_RECIPE`
#: (the recipe chapter 4 trains and chapter 5 evaluates). No experiment
#: compares it over seeds with IMPROVED_RECIPE run by ``fit`` yet.
FAST_IMPROVED_RECIPE = dataclasses.replace(
    IMPROVED_RECIPE, name="improved_fast", **_FAST_SETTINGS
)


def _code_key() -> str:
    """The training code's fingerprint and the TensorFlow and Keras versions."""
    import tensorflow as tf

    return f"{code_fingerprint()} tf {tf.__version__} keras {keras.__version__}"


def _replace(write: Callable[[Path], None], path: Path) -> None:
    """Write through ``write(tmp)`` to a temporary file, then rename it to ``path``."""
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def cached_training(
    name: str,
    key: Dict,
    train_fn: Callable[[], Tuple[keras.Model, Dict]],
    artifacts: Union[str, Path] = "artifacts",
    retrain: bool = False,
) -> Tuple[keras.Model, Dict, bool]:
    """The cache behind :func:`load_or_train`.

    Loads ``<artifacts>/<name>_embedding.keras`` when
    ``<artifacts>/<name>_history.json`` holds every entry of ``key`` with the
    same value; otherwise calls ``train_fn`` and saves its network, then its
    history updated with ``key``. Each file is written under a temporary name
    and renamed into place (the history last), so a save that is interrupted
    leaves no history that points at a partial network. A cached network that
    does not load is retrained, with one printed line that says why.

    Parameters
    ----------
    name : str
        File-name prefix.
    key : dict
        JSON-serialisable entries that identify the run; a cached run with any
        other value is retrained.
    train_fn : callable
        No arguments; returns ``(net, history)``: the embedding network and a
        JSON-serialisable dict.
    artifacts : str or Path, default "artifacts"
        Cache folder (created if needed).
    retrain : bool, default False
        Train even if the cache holds the run.

    Returns
    -------
    net : keras.Model
    history : dict
        The saved history (with the entries of ``key``).
    trained : bool
        True if ``train_fn`` ran now, False if loaded.

    Raises
    ------
    TypeError
        If ``name`` is not a string, ``key`` not a dict or ``train_fn`` not
        callable.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty str, got {name!r}")
    if not isinstance(key, dict):
        raise TypeError(f"key must be a dict, got {type(key).__name__}")
    if not callable(train_fn):
        raise TypeError(f"train_fn must be callable, got {type(train_fn).__name__}")
    key = json.loads(json.dumps(key))  # as it reads back (tuples become lists)
    folder = Path(artifacts)
    folder.mkdir(parents=True, exist_ok=True)
    net_path = folder / f"{name}_embedding.keras"
    hist_path = folder / f"{name}_history.json"
    if not retrain and net_path.exists() and hist_path.exists():
        try:
            history = json.loads(hist_path.read_text())
        except (OSError, ValueError):
            history = {}
        if isinstance(history, dict) and all(
            k in history and history[k] == v for k, v in key.items()
        ):
            try:
                return keras.models.load_model(net_path, safe_mode=True), history, False
            except Exception as err:  # a truncated or corrupt file
                print(
                    f"{net_path} could not be loaded ({type(err).__name__}): "
                    "training again"
                )
    net, history = train_fn()
    history = dict(history)
    history.update(key)
    hist_path.unlink(missing_ok=True)  # no history may point at a partial file
    _replace(net.save, net_path)
    _replace(lambda p: p.write_text(json.dumps(history)), hist_path)
    return net, history, True


def _strategy_key(strategy) -> Optional[str]:
    if strategy is None:
        return None
    return f"{type(strategy).__name__}x{strategy.num_replicas_in_sync}"


def load_or_train(
    recipe: Recipe,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: Optional[np.ndarray] = None,
    y_val: Optional[np.ndarray] = None,
    artifacts: Union[str, Path] = "artifacts",
    seed: int = 0,
    retrain: bool = False,
    *,
    validate_every: Optional[int] = None,
    monitor_every: Optional[int] = None,
    log_dir: Union[str, Path, None] = None,
    verbose: int = 0,
    strategy=None,
) -> Tuple[keras.Model, Dict, bool]:
    """Load a recipe's trained embedding network from the cache, or train it.

    Files: ``<artifacts>/<name>_embedding.keras`` and ``<name>_history.json``.
    The key: the whole recipe (``dataclasses.asdict``, speed settings
    included), the precision it computes in on this machine
    (:func:`tripletutils.training.compute_precision`), ``seed``, the
    strategy's type and replica count,
    ``validate_every`` and ``monitor_every`` (what the history holds), a hash
    of every byte of the training and validation arrays (a notebook that
    splits the data differently never loads another notebook's model) and a
    hash of the training code (``training``, ``models``, ``losses``,
    ``sampling``) with the TensorFlow and Keras versions (a model trained by
    other code is retrained). To continue
    training a network, call :func:`tripletutils.training.train` with ``net``.

    Parameters
    ----------
    recipe : Recipe
    x_train, y_train, x_val, y_val : numpy.ndarray
        As for :func:`tripletutils.training.train`.
    artifacts : str or Path, default "artifacts"
        Cache folder (created if needed).
    seed : int, default 0
    retrain : bool, default False
        Train even if the cache holds the model.
    validate_every, monitor_every, log_dir, verbose, strategy
        Passed to :func:`tripletutils.training.train`; ``log_dir`` and
        ``verbose`` do not change the result and are not in the key.

    Returns
    -------
    embedding_net : keras.Model
    history : dict
        As returned by :func:`tripletutils.training.train`, plus the key's
        entries (``seed``, ``data``...).
    trained : bool
        True if it was trained now, False if loaded.
    """
    if not isinstance(recipe, Recipe):
        raise TypeError(f"recipe must be a Recipe, got {type(recipe).__name__}")
    arrays = [a for a in (x_train, y_train, x_val, y_val) if a is not None]
    for a in arrays:
        if not isinstance(a, np.ndarray):
            raise TypeError(f"data must be numpy arrays, got {type(a).__name__}")

    def train_fn():
        net, _, history = train(
            recipe,
            x_train,
            y_train,
            x_val,
            y_val,
            seed=seed,
            validate_every=validate_every,
            monitor_every=monitor_every,
            log_dir=log_dir,
            verbose=verbose,
            strategy=strategy,
        )
        return net, history

    key = {
        "recipe": dataclasses.asdict(recipe),
        "precision": compute_precision(recipe),  # bfloat16 only where native
        "seed": seed,
        "strategy": _strategy_key(strategy),
        "validate_every": validate_every,
        "monitor_every": monitor_every,
        "data": data_fingerprint(*arrays),
        "code": _code_key(),
    }
    return cached_training(
        recipe.name, key, train_fn, artifacts=artifacts, retrain=retrain
    )
