"""Training runs on a fixed budget of steps: offline triplets or online mining.

Part II of the book compares ways to choose triplets on an *equal budget*:
every run embeds the same number of images per step and takes the same number
of steps. A :class:`MiningRecipe` names one run:

* ``"seed_triplets"``: the seed's fixed offline triplets, three-input model;
* ``"random_triplets"``: random triplets redrawn every epoch, three-input model;
* ``"batch_all"``, ``"batch_hard"``, ``"semi_hard"``, ``"soft_margin"``:
  one embedding network on P x K batches, triplets mined inside each batch
  (see :mod:`tripletutils.losses`): batch-all averages every valid triplet
  with a positive loss; batch-hard takes each anchor's farthest positive and
  nearest negative (Hermans et al. 2017); semi-hard takes, for each positive
  pair, the nearest negative farther than the positive, else the farthest
  negative (TensorFlow Addons' ``TripletSemiHardLoss`` rule, not FaceNet's
  selection of negatives inside the margin); soft-margin is batch-hard with
  ``log(1 + exp(x))`` instead of the hinge.

With ``p * k = 96`` images per step, a triplet run takes batches of 32
triplets (96 images, the seed's batch) and an online run takes 8 classes x 12
images: the same images per step, nearly the same time per step.

:class:`Monitor` records, every few steps, retrieval quality on held-out
images (Precision@1 and MAP@R, leave-one-out) and the diagnostics of
:func:`tripletutils.losses.triplet_diagnostics` on a fixed probe batch: the
learning curves of chapter 6 and the failure signals of chapter 9.

This module builds on the other ``tripletutils`` modules.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import keras
import numpy as np

from . import losses as L
from .evaluation import embed
from .metrics import retrieval_metrics
from .models import build_embedding_net, build_lenet_backbone, build_triplet_model
from .recipes import _data_fingerprint, cached_training
from .sampling import (
    pk_dataset,
    random_triplet_dataset,
    seed_offline_triplets,
    triplet_dataset,
)
from .training import StepHistory

__all__ = [
    "MINING_SCHEMES",
    "MiningRecipe",
    "BEST_RECIPE",
    "make_loss",
    "build_recipe_net",
    "Monitor",
    "train_mining",
    "load_or_train_mining",
    "train_softmax_baseline",
]

#: The ways to pick triplets a :class:`MiningRecipe` can name.
MINING_SCHEMES = (
    "seed_triplets",
    "random_triplets",
    "batch_all",
    "batch_hard",
    "semi_hard",
    "soft_margin",
)
_TRIPLET_SCHEMES = ("seed_triplets", "random_triplets")


@dataclasses.dataclass(frozen=True)
class MiningRecipe:
    """One training run on a budget of steps.

    Attributes
    ----------
    name : str
        Used for file names in the cache.
    mining : str
        One of :data:`MINING_SCHEMES`.
    margin : float
        Margin of the hinge (ignored by ``soft_margin``).
    squared : bool
        Squared Euclidean distances in the loss.
    p : int
        Classes per batch (online schemes).
    k : int
        Images per class in a batch (online schemes). The triplet schemes
        take ``p * k // 3`` triplets per batch.
    steps : int
        Training steps (the budget).
    learning_rate : float
        Adam's initial learning rate.
    cosine_decay : bool
        Decay the learning rate to 0 along a cosine over the steps.
    network : str
        ``"seed"`` (the seed's convolutional stack) or ``"lenet"``
        (:func:`tripletutils.models.build_lenet_backbone`).
    embedding_dim : int
    l2_normalize : bool
    dropout : float
        Dropout of the seed's stack (ignored by ``"lenet"``).
    steps_per_execution : int
        Training steps per compiled call (``model.compile``): less Python
        overhead per step, the same steps and results.
    """

    name: str
    mining: str = "batch_all"
    margin: float = 0.2
    squared: bool = False
    p: int = 8
    k: int = 12
    steps: int = 600
    learning_rate: float = 1e-3
    cosine_decay: bool = True
    network: str = "seed"
    embedding_dim: int = 128
    l2_normalize: bool = True
    dropout: float = 0.25
    steps_per_execution: int = 1

    def __post_init__(self):
        if self.mining not in MINING_SCHEMES:
            raise ValueError(
                f"mining must be one of {MINING_SCHEMES}, got {self.mining!r}"
            )
        if self.network not in ("seed", "lenet"):
            raise ValueError(f"network must be 'seed' or 'lenet', got {self.network!r}")
        for field in ("p", "k", "steps", "embedding_dim", "steps_per_execution"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{field} must be a positive int, got {value!r}")
        if self.p < 2 or self.k < 2:
            raise ValueError(
                f"P x K batches need p >= 2 and k >= 2, got p={self.p}, k={self.k}"
            )
        if self.mining in _TRIPLET_SCHEMES and self.p * self.k < 3:
            raise ValueError("p * k must be at least 3 for triplet batches")
        if not self.margin >= 0 or not self.learning_rate > 0:
            raise ValueError(
                "margin must be >= 0 and learning_rate > 0, "
                f"got {self.margin}, {self.learning_rate}"
            )

    @property
    def triplet_model(self) -> bool:
        """True when the run feeds triplets to the three-input model."""
        return self.mining in _TRIPLET_SCHEMES

    @property
    def images_per_step(self) -> int:
        """Images embedded per training step."""
        return 3 * (self.p * self.k // 3) if self.triplet_model else self.p * self.k


#: The book's best recipe, used in chapters 7, 8 and 10. A LeNet-style
#: network, a 64-d embedding on the unit sphere, batch-all mining on 10 x 16
#: batches with margin 0.5, Adam from 3e-3 with cosine decay, 2,000 steps
#: (about 1.5 to 2 minutes on 2 CPU cores).
BEST_RECIPE = MiningRecipe(
    name="best",
    mining="batch_all",
    margin=0.5,
    p=10,
    k=16,
    steps=2000,
    learning_rate=3e-3,
    network="lenet",
    embedding_dim=64,
    steps_per_execution=20,
)


def make_loss(recipe: MiningRecipe) -> keras.losses.Loss:
    """The Keras loss object a recipe trains with.

    Parameters
    ----------
    recipe : MiningRecipe

    Returns
    -------
    keras.losses.Loss
        :class:`~tripletutils.losses.OfflineTripletLoss` for the triplet
        schemes, else the online loss class of the same name.
    """
    if not isinstance(recipe, MiningRecipe):
        raise TypeError(f"recipe must be a MiningRecipe, got {type(recipe).__name__}")
    if recipe.triplet_model:
        return L.OfflineTripletLoss(margin=recipe.margin, squared=recipe.squared)
    if recipe.mining == "soft_margin":
        return L.SoftMarginTripletLoss(squared=recipe.squared)
    cls = {
        "batch_all": L.BatchAllTripletLoss,
        "batch_hard": L.BatchHardTripletLoss,
        "semi_hard": L.SemiHardTripletLoss,
    }[recipe.mining]
    return cls(margin=recipe.margin, squared=recipe.squared)


def build_recipe_net(
    recipe: MiningRecipe, input_shape=(28, 28, 1), seed: int = 0
) -> keras.Model:
    """The embedding network a recipe trains (linear embedding layer).

    Parameters
    ----------
    recipe : MiningRecipe
    input_shape : tuple of int, default (28, 28, 1)
    seed : int, default 0
        Seeds the weight initialisers.

    Returns
    -------
    keras.Model
        ``(batch, *input_shape)`` float32 to ``(batch, embedding_dim)`` float32.
    """
    if not isinstance(recipe, MiningRecipe):
        raise TypeError(f"recipe must be a MiningRecipe, got {type(recipe).__name__}")
    backbone = (
        build_lenet_backbone(input_shape, seed=seed)
        if recipe.network == "lenet"
        else None
    )
    return build_embedding_net(
        input_shape=input_shape,
        embedding_dim=recipe.embedding_dim,
        activation=None,
        l2_normalize=recipe.l2_normalize,
        backbone=backbone,
        seed=seed,
        dropout=recipe.dropout,
    )


class Monitor(keras.callbacks.Callback):
    """Every ``every`` steps: retrieval on held-out images and probe diagnostics.

    Parameters
    ----------
    net : keras.Model
        The embedding network being trained (for a three-input model, the
        shared network inside it).
    images : numpy.ndarray
        Held-out images, ``float32`` of shape ``(M, *image_shape)``, as the
        network takes them.
    labels : numpy.ndarray
        Their integer classes, shape ``(M,)``. Retrieval is leave-one-out
        among these ``M`` images (each class needs two members).
    every : int, default 50
        Steps between records (and one at the end of training).
    margin : float, default 0.2
        Margin at which the diagnostics count a triplet as active.
    squared : bool, default False
        Distances of the diagnostics.
    probe_size : int, default 200
        The diagnostics use the first ``probe_size`` images (all valid
        triplets among them: ``probe_size ** 3`` floats).

    Attributes
    ----------
    records : list of dict
        One per record: ``step``, ``precision_at_1``,
        ``mean_average_precision_at_r``, and the keys of
        :func:`~tripletutils.losses.triplet_diagnostics`.
    """

    def __init__(
        self,
        net,
        images,
        labels,
        every: int = 50,
        margin: float = 0.2,
        squared: bool = False,
        probe_size: int = 200,
    ):
        super().__init__()
        if not isinstance(net, keras.Model):
            raise TypeError(f"net must be a keras.Model, got {type(net).__name__}")
        if not isinstance(images, np.ndarray) or not isinstance(labels, np.ndarray):
            raise TypeError("images and labels must be numpy arrays")
        if len(images) != len(labels) or labels.ndim != 1:
            raise ValueError(
                f"need one label per image, got {images.shape} and {labels.shape}"
            )
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive int, got {every!r}")
        if (
            isinstance(probe_size, bool)
            or not isinstance(probe_size, int)
            or probe_size < 2
        ):
            raise ValueError(f"probe_size must be an int >= 2, got {probe_size!r}")
        self.net, self.images, self.labels = net, images, labels
        self.every, self.margin, self.squared, self.probe_size = (
            every,
            margin,
            squared,
            probe_size,
        )
        self.records: List[Dict[str, float]] = []
        self._step = 0

    def record(self) -> Dict[str, float]:
        """Measure now and append to ``records``.

        Returns
        -------
        dict of str to float
            The new record.
        """
        e = embed(self.net, self.images)
        row = {"step": float(self._step)}
        if np.all(np.isfinite(e)):
            m = retrieval_metrics(e, self.labels, ks=(1,))
            row["precision_at_1"] = m["precision_at_1"]
            row["mean_average_precision_at_r"] = m["mean_average_precision_at_r"]
        else:  # a network that has gone NaN retrieves nothing
            row["precision_at_1"] = row["mean_average_precision_at_r"] = float("nan")
        n = self.probe_size
        diag = L.triplet_diagnostics(self.labels[:n], e[:n], self.margin, self.squared)
        row.update({key: float(value) for key, value in diag.items()})
        self.records.append(row)
        return row

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self._step

    def on_train_batch_end(self, batch, logs=None):
        # ``batch`` is the index of the last step run (several per call with
        # steps_per_execution > 1)
        before, self._step = self._step, getattr(self, "_epoch_start", 0) + batch + 1
        if self._step // self.every > before // self.every:
            self.record()

    def on_train_end(self, logs=None):
        if not self.records or self.records[-1]["step"] != self._step:
            self.record()


def _schedule(recipe: MiningRecipe):
    if recipe.cosine_decay:
        return keras.optimizers.schedules.CosineDecay(
            recipe.learning_rate, recipe.steps
        )
    return recipe.learning_rate


def train_mining(
    recipe: MiningRecipe,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    seed: int = 0,
    monitor_every: int = 50,
    verbose: int = 0,
    net: Optional[keras.Model] = None,
) -> Tuple[keras.Model, Dict]:
    """Train one recipe for ``recipe.steps`` steps; monitor it on held-out images.

    Parameters
    ----------
    recipe : MiningRecipe
    x_train, x_val : numpy.ndarray
        ``float32`` images in [0, 1], shape ``(N, 28, 28, 1)``.
    y_train, y_val : numpy.ndarray
        Integer labels, shape ``(N,)``. ``(x_val, y_val)`` feed the
        :class:`Monitor` (keep it to a few thousand images).
    seed : int, default 0
        Seeds the weights and the sampling.
    monitor_every : int, default 50
    verbose : int, default 0
        Passed to ``model.fit``.
    net : keras.Model, optional
        Continue training this embedding network instead of a new one.

    Returns
    -------
    net : keras.Model
        The trained embedding network.
    history : dict
        ``step_loss`` (list, one per step), ``monitor`` (list of
        :class:`Monitor` records), ``fit_seconds`` (the whole ``fit`` call),
        ``images_per_step`` and ``recipe`` (dict).
    """
    if not isinstance(recipe, MiningRecipe):
        raise TypeError(f"recipe must be a MiningRecipe, got {type(recipe).__name__}")
    keras.utils.set_random_seed(seed)
    if net is None:
        net = build_recipe_net(recipe, tuple(x_train.shape[1:]), seed=seed)
    if recipe.triplet_model:
        batch = recipe.p * recipe.k // 3
        if recipe.mining == "seed_triplets":
            triplets = seed_offline_triplets(y_train, seed=seed)
            data = triplet_dataset(
                x_train, triplets, batch_size=batch, seed=seed
            ).repeat()
        else:
            data, _ = random_triplet_dataset(
                x_train, y_train, batch_size=batch, seed=seed
            )
        model = build_triplet_model(net)
    else:
        data = pk_dataset(x_train, y_train, recipe.p, recipe.k, seed=seed)
        model = net
    model.compile(
        optimizer=keras.optimizers.Adam(_schedule(recipe)),
        loss=make_loss(recipe),
        steps_per_execution=recipe.steps_per_execution,
    )
    steps_cb = StepHistory()
    monitor = Monitor(
        net,
        x_val,
        y_val,
        every=monitor_every,
        margin=recipe.margin,
        squared=recipe.squared,
    )
    start = time.perf_counter()
    model.fit(
        data,
        epochs=1,
        steps_per_epoch=recipe.steps,
        callbacks=[steps_cb, monitor],
        verbose=verbose,
        shuffle=False,
    )
    fit_seconds = time.perf_counter() - start
    return net, {
        "step_loss": steps_cb.step_loss,
        "monitor": monitor.records,
        "fit_seconds": fit_seconds,
        "images_per_step": recipe.images_per_step,
        "recipe": dataclasses.asdict(recipe),
    }


def load_or_train_mining(
    recipe: MiningRecipe,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    artifacts: Union[str, Path] = "artifacts",
    seed: int = 0,
    retrain: bool = False,
    **kwargs,
) -> Tuple[keras.Model, Dict, bool]:
    """Load a recipe's trained network from ``artifacts/``, or train and save it.

    Files: ``<artifacts>/<name>_embedding.keras`` and
    ``<name>_history.json``. A cached model trained with another recipe,
    seed or data (a hash of the training and monitoring arrays) is retrained.

    Parameters
    ----------
    recipe : MiningRecipe
    x_train, y_train, x_val, y_val : numpy.ndarray
        As for :func:`train_mining`.
    artifacts : str or Path, default "artifacts"
    seed : int, default 0
    retrain : bool, default False
    **kwargs
        Passed to :func:`train_mining`.

    Returns
    -------
    net : keras.Model
    history : dict
        As :func:`train_mining` returns it, plus ``seed`` and ``data``.
    trained : bool
        True if trained now, False if loaded.
    """

    def train():
        net, history = train_mining(
            recipe, x_train, y_train, x_val, y_val, seed=seed, **kwargs
        )
        return net, history, {}

    key = {
        "recipe": dataclasses.asdict(recipe),
        "seed": seed,
        "data": _data_fingerprint(x_train, y_train, x_val, y_val),
    }
    return cached_training(
        recipe.name, key, train, artifacts=artifacts, retrain=retrain
    )


def train_softmax_baseline(
    recipe: MiningRecipe,
    x_train: np.ndarray,
    y_train: np.ndarray,
    seed: int = 0,
    verbose: int = 0,
) -> Tuple[keras.Model, keras.Model, Dict]:
    """Train a softmax classifier on a recipe's network and budget (a baseline).

    The classifier is the recipe's embedding network *without* L2
    normalisation, followed by ``Dense(n_classes, softmax)``, trained with
    cross-entropy on shuffled batches of ``p * k`` images for ``steps``
    steps, with the recipe's optimiser and schedule: the same images per
    step and the same number of steps as :func:`train_mining`. Its
    penultimate layer (the embedding network's output) is the baseline
    embedding.

    Parameters
    ----------
    recipe : MiningRecipe
        Network, ``p * k`` (batch size), ``steps``, learning rate, schedule.
    x_train : numpy.ndarray
        ``float32`` images, shape ``(N, 28, 28, 1)``.
    y_train : numpy.ndarray
        Integer classes ``0 .. C-1``, shape ``(N,)``.
    seed : int, default 0
    verbose : int, default 0

    Returns
    -------
    embedding_net : keras.Model
        The penultimate-layer network, ``(batch, 28, 28, 1) -> (batch, dim)``.
    classifier : keras.Model
        The whole classifier, ``(batch, 28, 28, 1) -> (batch, C)`` softmax.
    history : dict
        ``step_loss``, ``fit_seconds``, ``images_per_step``.
    """
    if not isinstance(recipe, MiningRecipe):
        raise TypeError(f"recipe must be a MiningRecipe, got {type(recipe).__name__}")
    if (
        not isinstance(y_train, np.ndarray)
        or y_train.ndim != 1
        or not np.issubdtype(y_train.dtype, np.integer)
    ):
        raise ValueError("y_train must be a 1-D integer numpy array")
    if not isinstance(x_train, np.ndarray) or len(x_train) != len(y_train):
        raise ValueError(
            "need one label per image, "
            f"got {getattr(x_train, 'shape', None)} and {y_train.shape}"
        )
    n_classes = int(y_train.max()) + 1
    if y_train.min() < 0 or len(np.unique(y_train)) != n_classes:
        raise ValueError(f"y_train must use every class id 0..{n_classes - 1}")
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    plain = dataclasses.replace(recipe, l2_normalize=False)
    net = build_recipe_net(plain, tuple(x_train.shape[1:]), seed=seed)
    head = keras.layers.Dense(
        n_classes,
        activation="softmax",
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 20),
        name="softmax",
    )
    inputs = keras.Input(shape=x_train.shape[1:], name="image")
    classifier = keras.Model(inputs, head(net(inputs)), name="softmax_classifier")
    classifier.compile(
        optimizer=keras.optimizers.Adam(_schedule(recipe)),
        loss="sparse_categorical_crossentropy",
    )
    batch = recipe.p * recipe.k
    options = tf.data.Options()
    options.autotune.enabled = False  # see tripletutils.sampling._finish
    data = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train.astype(np.int64)))
        .shuffle(len(x_train), seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .batch(batch, drop_remainder=True)
        .prefetch(2)
        .with_options(options)
    )
    steps_cb = StepHistory()
    start = time.perf_counter()
    classifier.fit(
        data,
        epochs=1,
        steps_per_epoch=recipe.steps,
        callbacks=[steps_cb],
        verbose=verbose,
        shuffle=False,
    )
    return (
        net,
        classifier,
        {
            "step_loss": steps_cb.step_loss,
            "fit_seconds": time.perf_counter() - start,
            "images_per_step": batch,
        },
    )
