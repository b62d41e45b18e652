"""The book's two training recipes for the three-input model, and their cache.

* :data:`SEED_RECIPE`: SpikeKing/triplet-loss-mnist as published: raw 0..255
  pixels, ReLU embedding, the fixed offline triplets, squared distances,
  margin 1, Adam (lr 1e-3), batch 32, 2 epochs.
* :data:`IMPROVED_RECIPE`: the same network and budget, with pixels in [0, 1],
  a linear and L2-normalised embedding, and random triplets drawn anew every
  epoch.

Chapter 4 trains both with :func:`train_recipe`; later chapters call
:func:`load_or_train`, which reads the models saved in ``artifacts/`` or trains
them when they are missing, so every notebook runs on its own.

This module builds on the other ``tripletutils`` modules (sampling, models,
losses, training).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple, Union

import keras
import numpy as np

from .evaluation import mixed_precision_copy
from .losses import OfflineTripletLoss
from .models import build_embedding_net, build_triplet_model
from .sampling import random_triplet_dataset, seed_offline_triplets, triplet_dataset
from .training import StepHistory

__all__ = [
    "Recipe",
    "SEED_RECIPE",
    "IMPROVED_RECIPE",
    "recipe_inputs",
    "train_recipe",
    "load_or_train",
    "cached_training",
]


@dataclasses.dataclass(frozen=True)
class Recipe:
    """What defines a training run of the three-input model.

    Attributes
    ----------
    name : str
        Used for file names in the cache.
    raw_pixels : bool
        Feed pixels as 0..255 (the seed) instead of [0, 1].
    activation : str or None
        Activation of the embedding layer (``"relu"`` or None for linear).
    l2_normalize : bool
        Put embeddings on the unit sphere.
    sampling : str
        ``"seed"`` (fixed offline triplets) or ``"random"`` (redrawn each epoch).
    margin : float
    squared : bool
        Squared Euclidean distances in the loss.
    batch_size : int
    epochs : int
    learning_rate : float
        Adam's learning rate.
    dropout : float
        Dropout rate of the seed's network (0.25).
    """

    name: str
    raw_pixels: bool
    activation: Optional[str]
    l2_normalize: bool
    sampling: str
    margin: float = 1.0
    squared: bool = True
    batch_size: int = 32
    epochs: int = 2
    learning_rate: float = 1e-3
    dropout: float = 0.25

    def __post_init__(self):
        if self.sampling not in ("seed", "random"):
            raise ValueError(
                f"sampling must be 'seed' or 'random', got {self.sampling!r}"
            )
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be at least 1")


#: The seed project's recipe, as published.
SEED_RECIPE = Recipe(
    name="seed", raw_pixels=True, activation="relu", l2_normalize=False, sampling="seed"
)
#: The seed's network and budget with [0, 1] pixels, a linear L2-normalised
#: embedding and random triplets drawn anew every epoch.
IMPROVED_RECIPE = Recipe(
    name="improved",
    raw_pixels=False,
    activation=None,
    l2_normalize=True,
    sampling="random",
)


def recipe_inputs(recipe: Recipe, images: np.ndarray) -> np.ndarray:
    """Images as the recipe feeds them: [0, 1] floats, or 0..255 for the seed.

    Parameters
    ----------
    recipe : Recipe
    images : numpy.ndarray
        ``float32`` images in [0, 1] (as :func:`tripletutils.data.load_mnist`
        returns them), shape ``(N, 28, 28, 1)``.

    Returns
    -------
    numpy.ndarray
        ``float32``, same shape.
    """
    if not isinstance(recipe, Recipe):
        raise TypeError(f"recipe must be a Recipe, got {type(recipe).__name__}")
    if not isinstance(images, np.ndarray):
        raise TypeError(f"images must be a numpy array, got {type(images).__name__}")
    return images * np.float32(255.0) if recipe.raw_pixels else images


def train_recipe(
    recipe: Recipe,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    seed: int = 0,
    log_dir: Union[str, Path, None] = None,
    validate_every: int = 100,
    verbose: int = 2,
    strategy=None,
    fused: bool = False,
    steps_per_execution: int = 1,
    precision: str = "float32",
) -> Tuple[keras.Model, keras.Model, Dict]:
    """Train the three-input model with one recipe.

    The training budget is the seed's: one epoch is as many triplets as the
    seed's offline scheme builds from ``y_train``, for either sampling.
    Validation uses the seed's triplets built from ``(x_val, y_val)``.

    Parameters
    ----------
    recipe : Recipe
    x_train, x_val : numpy.ndarray
        ``float32`` images in [0, 1], shape ``(N, 28, 28, 1)``.
    y_train, y_val : numpy.ndarray
        Integer labels, shape ``(N,)``.
    seed : int, default 0
        Seeds the weights, the triplets and the shuffling.
    log_dir : str or Path, optional
        Write TensorBoard logs there.
    validate_every : int, default 100
        Steps between validation losses.
    verbose : int, default 2
        Passed to ``model.fit`` (2: one line per epoch).
    strategy : tf.distribute.Strategy, optional
        Build and compile the model in ``strategy.scope()``, so that ``fit``
        runs data-parallel (e.g. ``MirroredStrategy`` over several devices,
        ``MultiWorkerMirroredStrategy`` over several machines). Each global
        batch of ``batch_size`` triplets is split between the replicas.
    fused : bool, default False
        Run the shared network once on the three inputs stacked
        (:func:`tripletutils.models.build_triplet_model` with ``fused=True``).
    steps_per_execution : int, default 1
        Training steps per compiled call.
    precision : str, default "float32"
        A Keras dtype policy for the training computations, e.g.
        ``"mixed_bfloat16"`` (weights stay float32; the loss is computed in
        float32). The returned embedding network computes in float32 either way.
        ``fused``, ``steps_per_execution`` and ``precision`` change the speed;
        chapter 10 measures what they do to the results.

    Returns
    -------
    embedding_net : keras.Model
        The trained shared network, ``(batch, 28, 28, 1) -> (batch, 128)``.
    triplet_model : keras.Model
        The three-input model around it.
    history : dict
        ``step_loss``, ``val_steps``, ``val_loss`` (lists), ``epoch_loss``
        (list), ``fit_seconds`` (float), ``recipe`` (dict).
    """
    if not isinstance(recipe, Recipe):
        raise TypeError(f"recipe must be a Recipe, got {type(recipe).__name__}")
    keras.utils.set_random_seed(seed)
    xt, xv = recipe_inputs(recipe, x_train), recipe_inputs(recipe, x_val)
    fixed = seed_offline_triplets(y_train, seed=seed)
    if recipe.sampling == "seed":
        train_ds = triplet_dataset(xt, fixed, batch_size=recipe.batch_size, seed=seed)
        steps = None
    else:
        train_ds, steps = random_triplet_dataset(
            xt,
            y_train,
            batch_size=recipe.batch_size,
            seed=seed,
            triplets_per_epoch=len(fixed),
        )
    val_ds = triplet_dataset(
        xv, seed_offline_triplets(y_val, seed=seed + 1), batch_size=1024, shuffle=False
    )
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        net = build_embedding_net(
            activation=recipe.activation,
            l2_normalize=recipe.l2_normalize,
            seed=seed,
            dropout=recipe.dropout,
        )
        if precision != "float32":
            net = mixed_precision_copy(net, precision)  # same initial weights
        model = build_triplet_model(net, fused=fused)
        if precision != "float32":  # the loss in float32
            out = keras.layers.Activation("linear", dtype="float32", name="to_float32")(
                model.outputs[0]
            )
            model = keras.Model(model.inputs, out, name=model.name)
        model.compile(
            optimizer=keras.optimizers.Adam(recipe.learning_rate),
            loss=OfflineTripletLoss(margin=recipe.margin, squared=recipe.squared),
            steps_per_execution=steps_per_execution,
        )
    steps_cb = StepHistory(val_ds, validate_every=validate_every)
    callbacks = [steps_cb]
    if log_dir is not None:
        callbacks.append(
            keras.callbacks.TensorBoard(
                log_dir=str(log_dir), update_freq=validate_every
            )
        )
    start = time.perf_counter()
    fit = model.fit(
        train_ds,
        epochs=recipe.epochs,
        steps_per_epoch=steps,
        shuffle=False,  # the dataset shuffles itself, seeded
        callbacks=callbacks,
        verbose=verbose,
    )
    history = steps_cb.as_dict()
    history["fit_seconds"] = time.perf_counter() - start
    history["epoch_loss"] = [float(v) for v in fit.history["loss"]]
    if precision != "float32":
        net = mixed_precision_copy(net, "float32")
    history["recipe"] = dataclasses.asdict(recipe)
    return net, model, history


def _data_fingerprint(*arrays: np.ndarray) -> str:
    """A short hash of the training and validation data, part of the cache key.

    Labels are hashed whole; images through every 97th one, which tells apart
    two splits of the same data set without hashing 180 MB.
    """
    digest = hashlib.sha256()
    for arr in arrays:
        arr = np.ascontiguousarray(arr)
        digest.update(str((arr.shape, arr.dtype.str)).encode())
        digest.update((arr if arr.ndim == 1 else arr[::97]).tobytes())
    return digest.hexdigest()[:16]


def cached_training(
    name: str,
    key: Dict,
    train: Callable[[], Tuple[keras.Model, Dict, Dict[str, keras.Model]]],
    artifacts: Union[str, Path] = "artifacts",
    retrain: bool = False,
) -> Tuple[keras.Model, Dict, bool]:
    """The cache behind :func:`load_or_train` and ``online.load_or_train_mining``.

    Loads ``<artifacts>/<name>_embedding.keras`` when
    ``<artifacts>/<name>_history.json`` holds every entry of ``key`` with the
    same value; otherwise calls ``train`` and saves its network, its history
    updated with ``key``, and any other models it returns.

    Parameters
    ----------
    name : str
        File-name prefix.
    key : dict
        JSON-serialisable entries that identify the run (recipe, seed, data
        fingerprint); a cached run with any other value is retrained.
    train : callable
        No arguments; returns ``(net, history, others)``: the embedding
        network, a JSON-serialisable dict, and ``{file name: model}`` of other
        models to save next to it.
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
        True if ``train`` ran now, False if loaded.

    Raises
    ------
    TypeError
        If ``name`` is not a string, ``key`` not a dict or ``train`` not callable.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty str, got {name!r}")
    if not isinstance(key, dict):
        raise TypeError(f"key must be a dict, got {type(key).__name__}")
    if not callable(train):
        raise TypeError(f"train must be callable, got {type(train).__name__}")
    folder = Path(artifacts)
    folder.mkdir(parents=True, exist_ok=True)
    net_path = folder / f"{name}_embedding.keras"
    hist_path = folder / f"{name}_history.json"
    if not retrain and net_path.exists() and hist_path.exists():
        history = json.loads(hist_path.read_text())
        if all(history.get(k) == v for k, v in key.items()):
            return keras.models.load_model(net_path, safe_mode=True), history, False
    net, history, others = train()
    history.update(key)
    for file_name, model in others.items():
        model.save(folder / file_name)
    net.save(net_path)
    hist_path.write_text(json.dumps(history))
    return net, history, True


def load_or_train(
    recipe: Recipe,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    artifacts: Union[str, Path] = "artifacts",
    seed: int = 0,
    retrain: bool = False,
    **kwargs,
) -> Tuple[keras.Model, Dict, bool]:
    """Load a recipe's trained embedding network from the cache, or train it.

    Files: ``<artifacts>/<name>_triplet.keras`` (the three-input model),
    ``<name>_embedding.keras`` (the shared network alone) and
    ``<name>_history.json``. A cached model trained with another recipe
    definition, seed or training/validation data (a hash of them) is retrained,
    so a notebook that splits the data differently never loads another
    notebook's model.

    Parameters
    ----------
    recipe : Recipe
    x_train, y_train, x_val, y_val : numpy.ndarray
        As for :func:`train_recipe`.
    artifacts : str or Path, default "artifacts"
        Cache folder (created if needed).
    seed : int, default 0
    retrain : bool, default False
        Train even if the cache holds the model.
    **kwargs
        Passed to :func:`train_recipe` (``log_dir``, ``verbose``, ...).

    Returns
    -------
    embedding_net : keras.Model
    history : dict
        As returned by :func:`train_recipe`, plus ``seed``.
    trained : bool
        True if it was trained now, False if loaded.
    """

    def train():
        net, model, history = train_recipe(
            recipe, x_train, y_train, x_val, y_val, seed=seed, **kwargs
        )
        return net, history, {f"{recipe.name}_triplet.keras": model}

    key = {
        "recipe": dataclasses.asdict(recipe),
        "seed": seed,
        "data": _data_fingerprint(x_train, y_train, x_val, y_val),
    }
    return cached_training(
        recipe.name, key, train, artifacts=artifacts, retrain=retrain
    )
