"""One way to train: a :class:`Recipe` says what to train, :func:`train` does it.

A recipe names every choice that changes the trained weights:

* how triplets are drawn (``mining``): the seed's fixed offline triplets
  (``"seed_triplets"``) or random triplets redrawn every epoch
  (``"random_triplets"``), both fed to the three-input model; or P x K
  batches with the triplets mined inside each batch by an online loss
  (``"batch_all"``, ``"batch_hard"``, ``"semi_hard"``, ``"soft_margin"``,
  see :mod:`tripletutils.losses`), fed to the embedding network alone;
* the loss (``loss``): the triplet loss of the mining scheme (``margin``,
  ``squared`` distances), or a pair or similarity loss over every pair of the
  P x K batch (``"contrastive"``, ``"multi_similarity"``,
  ``"supervised_contrastive"``, see :mod:`tripletutils.losses`), with its
  settings in ``loss_options``;
* the network (the seed's stack or a LeNet-style one; embedding size,
  activation, L2 normalisation, dropout) and its input scale (the seed's raw
  0..255 pixels or [0, 1]);
* light augmentation in training (``augment``: random shifts and rotations,
  :func:`tripletutils.models.build_augmentation`), for the P x K recipes;
* the budget: a number of ``steps``, or (``steps=None``) ``epochs`` passes
  over as many triplets as the seed's offline scheme builds from the labels;
* the optimiser (Adam, constant or cosine-decayed learning rate);
* how fast it runs: ``fused`` branches, ``steps_per_execution``, the
  ``precision`` policy and the ``loop`` (chapter 12 measures what they do to
  the results).

:func:`train` builds the network, the batches and the loss from a recipe,
compiles, and runs either ``model.fit`` on a ``tf.data`` pipeline
(``loop="fit"``) or the compiled loop of
:func:`tripletutils.distributed.make_train_function` on images held in memory
(``loop="compiled"``: the same batches in the same order, gathered inside the
graph, ``steps_per_execution`` steps per call), under a ``tf.distribute``
strategy if given, and returns the network with its history. A loss that
is not finite ends the run at that step: :class:`NonFiniteLossError`, or
with ``on_non_finite="stop"`` the history up to there. The pieces it
uses are public so that the benchmark, the custom distributed loop and the
chapters build exactly the same thing: :func:`build_recipe_net`,
:func:`build_training_model`, :func:`make_loss`, :func:`make_optimizer`,
:func:`training_data`, :func:`batch_schedule`.
:func:`train_softmax_baseline` trains a classifier (softmax, or the cosine
classifier of :class:`tripletutils.models.CosineClassifier`) on a recipe's
network and budget. The book's named recipes and the model cache live in
:mod:`tripletutils.recipes`.

This module builds on the other ``tripletutils`` modules.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import numbers
import re
import time
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import keras
import numpy as np
import tensorflow as tf

from . import losses as L
from .callbacks import StepHistory
from .distributed import make_train_function
from .models import (
    CosineClassifier,
    build_augmentation,
    build_embedding_net,
    build_lenet_backbone,
    build_triplet_model,
    mixed_precision_copy,
)
from .monitor import Monitor
from .runtime import bfloat16_is_native
from .sampling import (
    pk_dataset,
    random_triplet_dataset,
    seed_offline_triplets,
    triplet_dataset,
)

__all__ = [
    "MINING_SCHEMES",
    "TRIPLET_SCHEMES",
    "PRECISIONS",
    "LOOPS",
    "LOSSES",
    "LOSS_OPTIONS",
    "Recipe",
    "NonFiniteLossError",
    "recipe_inputs",
    "make_loss",
    "make_optimizer",
    "build_recipe_net",
    "build_training_model",
    "training_data",
    "batch_schedule",
    "compiled_train_function",
    "compute_precision",
    "train",
    "train_softmax_baseline",
]

#: The ways to pick triplets a :class:`Recipe` can name.
MINING_SCHEMES = (
    "seed_triplets",
    "random_triplets",
    "batch_all",
    "batch_hard",
    "semi_hard",
    "soft_margin",
)
#: The schemes that feed triplets to the three-input model.
TRIPLET_SCHEMES = ("seed_triplets", "random_triplets")

#: The losses a :class:`Recipe` can name, the triplet loss of its mining
#: scheme or a pair or similarity loss over every pair of the P x K batch.
LOSSES = ("triplet", "contrastive", "multi_similarity", "supervised_contrastive")

#: The ``loss_options`` each loss takes (the keyword arguments of its class in
#: :mod:`tripletutils.losses`); the triplet loss takes none (it uses the
#: recipe's ``margin`` and ``squared``), the contrastive loss takes
#: ``squared`` from the recipe too.
LOSS_OPTIONS: Dict[str, Tuple[str, ...]] = {
    "triplet": (),
    "contrastive": ("neg_margin", "pos_margin"),
    "multi_similarity": ("alpha", "base", "beta", "epsilon"),
    "supervised_contrastive": ("temperature",),
}

#: What :func:`train` does at a loss that is not finite.
_ON_NON_FINITE = ("raise", "stop")


def _positive_int(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _real(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return float(value)


#: The precision policies a recipe may train with, all with float32 weights and a
#: float compute dtype (mixed_float16 gets loss scaling, see make_optimizer).
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")

#: The ways :func:`train` can run the steps, Keras's ``model.fit`` on a
#: ``tf.data`` pipeline or one compiled loop over images held in memory.
LOOPS = ("fit", "compiled")


def _loss_options(loss: str, options) -> Tuple[Tuple[str, float], ...]:
    """``options`` (a mapping or (name, value) pairs) as sorted (name, float) pairs."""
    if isinstance(options, Mapping):
        items = list(options.items())
    elif isinstance(options, (tuple, list)):
        items = []
        for item in options:
            if not isinstance(item, (tuple, list)) or len(item) != 2:
                raise TypeError(
                    "loss_options must be a dict or (name, value) pairs, got the "
                    f"item {item!r}"
                )
            items.append(tuple(item))
    else:
        raise TypeError(
            "loss_options must be a dict or (name, value) pairs, got "
            f"{type(options).__name__}"
        )
    names = [name for name, _ in items]
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"loss_options names must be str, got {name!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"loss_options names each option once, got {names}")
    allowed = LOSS_OPTIONS[loss]
    unknown = sorted(set(names) - set(allowed))
    if unknown and loss == "triplet":
        raise ValueError(
            "loss='triplet' takes no loss_options (it uses the recipe's margin and "
            f"squared), got {unknown}"
        )
    if unknown:
        raise ValueError(
            f"unknown loss_options {unknown} for loss={loss!r}: it takes {allowed}"
        )
    return tuple(
        sorted((name, _real(value, f"loss_options[{name!r}]")) for name, value in items)
    )


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Everything that defines one training run (its cache key, too).

    Attributes
    ----------
    name : str
        Used for file names in the cache.
    mining : str
        One of :data:`MINING_SCHEMES`. Default ``"batch_all"``.
    margin : float
        Margin of the hinge (ignored by ``soft_margin``). Default 0.2.
    squared : bool
        Squared Euclidean distances in the loss. Default False.
    p : int
        Online schemes: classes per batch. Default 8.
    k : int
        Online schemes: images per class in a batch. Default 12. The triplet
        schemes take ``p * k // 3`` triplets per batch (the same images per
        step): 8 x 12 gives the seed's 32 triplets.
    steps : int or None
        Training steps (the budget). Default 600. None: ``epochs`` epochs of
        as many triplets as the seed's offline scheme builds from the training
        labels (the seed's budget; triplet schemes only).
    epochs : int
        Epochs when ``steps`` is None; must be 1 otherwise. Default 1.
    learning_rate : float
        Adam's (initial) learning rate. Default 1e-3.
    cosine_decay : bool
        Decay the learning rate to 0 along a cosine over the steps. Default
        True.
    network : str
        ``"seed"`` (the seed's convolutional stack, the default) or
        ``"lenet"`` (:func:`tripletutils.models.build_lenet_backbone`).
    embedding_dim : int
        Default 128.
    activation : str or None
        Activation of the embedding layer (the seed: ``"relu"``). Default None
        (linear).
    l2_normalize : bool
        Put embeddings on the unit sphere. Default True.
    raw_pixels : bool
        Feed pixels as 0..255 (the seed) instead of [0, 1]; see
        :func:`recipe_inputs`. Default False.
    dropout : float
        Dropout of the seed's stack (ignored by ``"lenet"``). Default 0.25.
    steps_per_execution : int
        Training steps per compiled call (``model.compile``). Default 1.
    fused : bool
        Run the shared network once on the three inputs stacked (triplet
        schemes; :func:`tripletutils.models.build_triplet_model`). Default
        False.
    precision : str
        One of :data:`PRECISIONS`: the Keras dtype policy of the network's
        computations. Default ``"float32"``; with ``"mixed_bfloat16"`` the
        weights and the loss stay float32, and the trained network returned
        computes in float32.
    loop : str
        One of :data:`LOOPS`. ``"fit"`` (default): ``model.fit`` on a
        ``tf.data`` pipeline. ``"compiled"``: the training images held in
        memory as one tensor and a compiled loop of
        ``steps_per_execution`` steps per call, each step gathering its batch
        by index inside the graph (:func:`batch_schedule`: the same batches
        in the same order as ``"fit"``); callbacks run between the calls.
    loss : str
        One of :data:`LOSSES`. ``"triplet"`` (default): the triplet loss of
        the mining scheme, with ``margin`` and ``squared``. The others
        (:class:`~tripletutils.losses.ContrastiveLoss`, with ``squared``;
        :class:`~tripletutils.losses.MultiSimilarityLoss`;
        :class:`~tripletutils.losses.SupervisedContrastiveLoss`) score every
        pair of the P x K batch, so they need ``mining="batch_all"``, and
        ignore ``margin``; the last two compare cosine similarities, so they
        need ``squared=False``.
    loss_options : tuple of tuple(str, float)
        The loss's settings (:data:`LOSS_OPTIONS` names them; those left out
        keep the loss class's defaults); the constructor also takes a dict.
        Stored sorted by name, values as floats, so that equal settings make
        equal (and equally hashed, JSON-serialisable) recipes. Default ``()``.
        Checked when the recipe is built: the loss class is built once, and
        it runs the loss on a two-image batch (so building a recipe with a
        pair loss starts TensorFlow's runtime).
    augment : bool
        Train on lightly augmented images: random shifts of up to 10 % of the
        image and rotations of up to 10 degrees
        (:func:`tripletutils.models.build_augmentation`, seeded with the
        run's seed), in front of the network in training only: the network
        returned, the monitor and the validation see the images as they are.
        P x K recipes (and the softmax baseline) only. Default False.
    """

    name: str
    mining: str = "batch_all"
    margin: float = 0.2
    squared: bool = False
    p: int = 8
    k: int = 12
    steps: Optional[int] = 600
    epochs: int = 1
    learning_rate: float = 1e-3
    cosine_decay: bool = True
    network: str = "seed"
    embedding_dim: int = 128
    activation: Optional[str] = None
    l2_normalize: bool = True
    raw_pixels: bool = False
    dropout: float = 0.25
    steps_per_execution: int = 1
    fused: bool = False
    precision: str = "float32"
    loop: str = "fit"
    loss: str = "triplet"
    loss_options: Tuple[Tuple[str, float], ...] = ()
    augment: bool = False

    def __post_init__(self):
        if not isinstance(self.name, str) or not re.fullmatch(r"[\w.-]+", self.name):
            raise ValueError(
                "name must be a non-empty str of letters, digits, '_', '.' or '-' "
                f"(it names the cache files), got {self.name!r}"
            )
        for field in ("margin", "learning_rate", "dropout"):  # numpy scalars too
            object.__setattr__(self, field, _real(getattr(self, field), field))
        for field in ("p", "k", "steps", "epochs", "embedding_dim"):
            value = getattr(self, field)
            if isinstance(value, np.integer):
                object.__setattr__(self, field, int(value))
        spe = self.steps_per_execution
        if isinstance(spe, np.integer):
            object.__setattr__(self, "steps_per_execution", int(spe))
        if self.mining not in MINING_SCHEMES:
            raise ValueError(
                f"mining must be one of {MINING_SCHEMES}, got {self.mining!r}"
            )
        if self.network not in ("seed", "lenet"):
            raise ValueError(f"network must be 'seed' or 'lenet', got {self.network!r}")
        for field in ("p", "k", "epochs", "embedding_dim", "steps_per_execution"):
            _positive_int(getattr(self, field), field)
        if self.steps is not None:
            _positive_int(self.steps, "steps")
            if self.epochs != 1:
                raise ValueError(
                    f"epochs must be 1 when steps is given, got epochs={self.epochs} "
                    f"with steps={self.steps}"
                )
        elif self.mining not in TRIPLET_SCHEMES:
            raise ValueError(
                "steps=None (the seed's epochs) needs a triplet scheme, "
                f"got mining={self.mining!r}"
            )
        if self.p < 2 or self.k < 2:
            raise ValueError(
                f"P x K batches need p >= 2 and k >= 2, got p={self.p}, k={self.k}"
            )
        for field in (
            "squared",
            "cosine_decay",
            "l2_normalize",
            "raw_pixels",
            "fused",
            "augment",
        ):
            if not isinstance(getattr(self, field), bool):
                raise TypeError(
                    f"{field} must be a bool, got {type(getattr(self, field)).__name__}"
                )
        if not self.margin >= 0 or not self.learning_rate > 0:
            raise ValueError(
                "margin must be >= 0 and learning_rate > 0, "
                f"got {self.margin}, {self.learning_rate}"
            )
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"precision must be one of {PRECISIONS} (float32 weights), "
                f"got {self.precision!r}"
            )
        if self.activation not in (None, "relu", "linear", "tanh", "sigmoid", "gelu"):
            raise ValueError(
                "activation must be None or a Keras activation name such as 'relu', "
                f"got {self.activation!r}"
            )
        if self.loop not in LOOPS:
            raise ValueError(f"loop must be one of {LOOPS}, got {self.loop!r}")
        if self.fused and self.mining not in TRIPLET_SCHEMES:
            raise ValueError("fused applies to the triplet schemes only")
        if self.augment and self.mining in TRIPLET_SCHEMES:
            raise ValueError(
                f"augment applies to the P x K recipes only, got mining={self.mining!r}"
            )
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        options = _loss_options(self.loss, self.loss_options)
        object.__setattr__(self, "loss_options", options)
        if self.loss != "triplet":
            if self.mining != "batch_all":
                raise ValueError(
                    f"loss={self.loss!r} scores every pair of the P x K batch: "
                    f"mining must be 'batch_all', got {self.mining!r}"
                )
            if self.squared and self.loss != "contrastive":
                raise ValueError(
                    f"loss={self.loss!r} compares cosine similarities: squared must "
                    "be False"
                )
            extra = {"squared": self.squared} if self.loss == "contrastive" else {}
            try:  # plain Python: no backend runtime starts here
                L.pair_loss_settings(self.loss, **dict(options), **extra)
            except (TypeError, ValueError) as err:
                raise type(err)(
                    f"loss_options {dict(options)} of loss={self.loss!r}: {err}"
                ) from None

    @property
    def triplet_model(self) -> bool:
        """True when the run feeds triplets to the three-input model."""
        return self.mining in TRIPLET_SCHEMES

    @property
    def batch_size(self) -> int:
        """Triplets per batch (triplet schemes) or images per batch (online)."""
        return self.p * self.k // 3 if self.triplet_model else self.p * self.k

    @property
    def images_per_step(self) -> int:
        """Images embedded per training step."""
        return 3 * self.batch_size if self.triplet_model else self.p * self.k


class NonFiniteLossError(FloatingPointError):
    """A training loss that is not finite (NaN or infinite): the run stopped.

    Raised by :func:`train` and :func:`train_softmax_baseline` with
    ``on_non_finite="raise"`` (their default); the message names the recipe,
    the step and the value.

    Parameters
    ----------
    message : str
    step : int
        The 1-based training step whose loss was not finite.

    Attributes
    ----------
    step : int
    """

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step

    def __reduce__(self):  # pickles (e.g. back from a worker) with its step
        return type(self), (str(self), self.step)


class _StopAtNonFiniteLoss(keras.callbacks.Callback):
    """Ends training at the first report of a loss that is not finite.

    ``logs["loss"]`` is a running mean, which turns non-finite at the first
    non-finite step (``fit``, every ``steps_per_execution`` steps; the compiled
    loop, every step). Unlike ``keras.callbacks.TerminateOnNaN`` it prints
    nothing: :func:`_non_finite` reads the step from the history.
    """

    def on_train_batch_end(self, batch, logs=None):
        if logs and not math.isfinite(float(logs["loss"])):
            self.model.stop_training = True


def _check_on_non_finite(on_non_finite) -> None:
    if not isinstance(on_non_finite, str) or on_non_finite not in _ON_NON_FINITE:
        raise ValueError(
            f"on_non_finite must be one of {_ON_NON_FINITE}, got {on_non_finite!r}"
        )


def _non_finite(
    recipe, step_loss: Sequence[float], total: int, block: int, on_non_finite: str
) -> Optional[int]:
    """The first step whose loss is not finite (None if none); raises if asked.

    ``block`` > 1: ``model.fit`` reported one mean per block of that many
    steps, so the step is the first of the block it turned non-finite in.
    """
    bad = np.flatnonzero(~np.isfinite(np.asarray(step_loss, dtype=np.float64)))
    if not len(bad):
        return None
    step = int(bad[0]) + 1
    if on_non_finite == "raise":
        ran = len(step_loss)
        where = f"at step {step} of {total}"
        if block > 1 and ran > step:
            where = (
                f"in steps {step}..{ran} of {total} (model.fit reports one mean "
                f"per block of steps_per_execution={block} steps)"
            )
        stopped = "there" if ran == step else f"after step {ran}, its block's end"
        raise NonFiniteLossError(
            f"recipe {recipe.name!r}: the training loss is {step_loss[step - 1]} "
            f"{where}; training stopped {stopped}. The usual cause is a learning rate "
            f"too large for the network (learning_rate={recipe.learning_rate:g}); "
            "on_non_finite='stop' returns the history instead of raising",
            step,
        )
    return step


def _check_recipe(recipe) -> None:
    if not isinstance(recipe, Recipe):
        raise TypeError(f"recipe must be a Recipe, got {type(recipe).__name__}")


def _check_images_labels(images, labels, what: str) -> None:
    if not isinstance(images, np.ndarray) or not isinstance(labels, np.ndarray):
        raise TypeError(
            f"{what} images and labels must be numpy arrays, got "
            f"{type(images).__name__} and {type(labels).__name__}"
        )
    if images.ndim != 4 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(
            f"{what}: need images (N, height, width, channels) and one label per "
            f"image, got shapes {images.shape} and {labels.shape}"
        )


def _check_unit_range(images: np.ndarray, what: str) -> None:
    if images.dtype.kind != "f":
        raise TypeError(
            f"{what} images must be floats in [0, 1] (as load_mnist returns them), "
            f"got dtype {images.dtype}"
        )
    if images.size and (images.min() < 0 or images.max() > 1):
        raise ValueError(
            f"{what} images must lie in [0, 1] (the recipe rescales them itself), "
            f"got values in [{images.min():g}, {images.max():g}]"
        )


def _check_strategy(strategy, recipe: Recipe) -> None:
    if strategy is None:
        return
    if not isinstance(strategy, tf.distribute.Strategy):
        raise TypeError(
            f"strategy must be a tf.distribute.Strategy, got {type(strategy).__name__}"
        )
    if recipe.loop == "fit" and isinstance(
        strategy, tf.distribute.MultiWorkerMirroredStrategy
    ):
        raise ValueError(
            "model.fit does not run under MultiWorkerMirroredStrategy (keras-team/"
            "keras#20585): use a recipe with loop='compiled' (or "
            "tripletutils.distributed.train_steps)"
        )
    if not recipe.triplet_model and strategy.num_replicas_in_sync > 1:
        raise ValueError(
            f"mining={recipe.mining!r} mines inside each batch, but "
            f"{strategy.num_replicas_in_sync} replicas would each mine in their own "
            "slice of it (other classes, fewer positives): train online recipes on "
            "one replica"
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
    _check_recipe(recipe)
    if not isinstance(images, np.ndarray):
        raise TypeError(f"images must be a numpy array, got {type(images).__name__}")
    return images * np.float32(255.0) if recipe.raw_pixels else images


def make_loss(recipe: Recipe) -> keras.losses.Loss:
    """The Keras loss object a recipe trains with.

    Parameters
    ----------
    recipe : Recipe

    Returns
    -------
    keras.losses.Loss
        For ``loss="triplet"``:
        :class:`~tripletutils.losses.OfflineTripletLoss` for the triplet
        schemes, else the online loss class of the same name. Otherwise
        ``ContrastiveLoss(squared=recipe.squared, **options)``,
        ``MultiSimilarityLoss(**options)`` or
        ``SupervisedContrastiveLoss(**options)``, ``options`` being
        ``dict(recipe.loss_options)``.
    """
    _check_recipe(recipe)
    if recipe.loss != "triplet":
        options = dict(recipe.loss_options)
        if recipe.loss == "contrastive":
            return L.ContrastiveLoss(squared=recipe.squared, **options)
        pair_cls = {
            "multi_similarity": L.MultiSimilarityLoss,
            "supervised_contrastive": L.SupervisedContrastiveLoss,
        }[recipe.loss]
        return pair_cls(**options)
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


def make_optimizer(
    recipe: Recipe, total_steps: Optional[int] = None
) -> keras.optimizers.Optimizer:
    """Adam with the recipe's learning rate, cosine-decayed if it says so.

    Parameters
    ----------
    recipe : Recipe
    total_steps : int, optional
        Steps of the decay; default ``recipe.steps`` (needed when the recipe
        counts epochs and decays).

    Returns
    -------
    keras.optimizers.Optimizer
        Adam; wrapped in ``keras.optimizers.LossScaleOptimizer`` for
        ``precision="mixed_float16"``.
    """
    _check_recipe(recipe)
    if not recipe.cosine_decay:
        optimizer = keras.optimizers.Adam(recipe.learning_rate)
    else:
        total = recipe.steps if total_steps is None else total_steps
        if total is None:
            raise ValueError("a cosine decay over epochs needs total_steps")
        _positive_int(total, "total_steps")
        optimizer = keras.optimizers.Adam(
            keras.optimizers.schedules.CosineDecay(recipe.learning_rate, total)
        )
    if recipe.precision == "mixed_float16":  # float16 gradients underflow unscaled
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def build_recipe_net(
    recipe: Recipe, input_shape: Sequence[int] = (28, 28, 1), seed: int = 0
) -> keras.Model:
    """The embedding network a recipe trains, in float32.

    Parameters
    ----------
    recipe : Recipe
    input_shape : tuple of int, default (28, 28, 1)
    seed : int, default 0
        Seeds the weight initialisers (and dropout).

    Returns
    -------
    keras.Model
        ``(batch, *input_shape)`` float32 to ``(batch, embedding_dim)`` float32.
    """
    _check_recipe(recipe)
    backbone = (
        build_lenet_backbone(tuple(input_shape), seed=seed)
        if recipe.network == "lenet"
        else None
    )
    return build_embedding_net(
        input_shape=tuple(input_shape),
        embedding_dim=recipe.embedding_dim,
        activation=recipe.activation,
        l2_normalize=recipe.l2_normalize,
        backbone=backbone,
        seed=seed,
        dropout=recipe.dropout,
    )


def build_training_model(
    recipe: Recipe, net: keras.Model, seed: int = 0
) -> Tuple[keras.Model, keras.Model]:
    """The model ``fit`` trains: the three-input model or the network itself.

    Parameters
    ----------
    recipe : Recipe
    net : keras.Model
        A float32 embedding network (e.g. from :func:`build_recipe_net`).
    seed : int, default 0
        Seeds the augmentation (``recipe.augment``; the layers take ``seed +
        30`` and ``seed + 31``).

    Returns
    -------
    net : keras.Model
        The network that is trained: ``net`` itself, or with a precision
        other than float32 a copy computing in that precision (same weights).
    model : keras.Model
        For the triplet schemes the three-input model around ``net`` (fused if
        the recipe says so), with ``augment`` the augmentation followed by
        ``net``, else ``net``; in reduced precision its output is cast to
        float32, so the loss is computed in float32.
    """
    _check_recipe(recipe)
    if not isinstance(net, keras.Model):
        raise TypeError(f"net must be a keras.Model, got {type(net).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if recipe.precision != "float32":
        net = mixed_precision_copy(net, recipe.precision)  # same initial weights
    if recipe.triplet_model:
        model = build_triplet_model(net, fused=recipe.fused)
    elif recipe.augment:
        model = _augmented(net, seed)
    else:
        model = net
    if recipe.precision != "float32":
        out = keras.layers.Activation("linear", dtype="float32", name="to_float32")(
            model.outputs[0]
        )
        model = keras.Model(model.inputs, out, name=model.name)
    return net, model


def _augmented(net: keras.Model, seed: int) -> keras.Model:
    """``net`` behind the seeded augmentation (active in training only)."""
    shape = tuple(net.input_shape[1:])
    augment = build_augmentation(shape, seed=seed + 30)
    inputs = keras.Input(shape=shape, name="image")
    return keras.Model(inputs, net(augment(inputs)), name=f"augmented_{net.name}")


def training_data(
    recipe: Recipe, x_train: np.ndarray, y_train: np.ndarray, seed: int = 0
) -> Tuple[object, Optional[int], int]:
    """The ``tf.data`` pipeline a recipe trains on, and how ``fit`` runs it.

    Parameters
    ----------
    recipe : Recipe
    x_train : numpy.ndarray
        ``float32`` images as the network takes them (see
        :func:`recipe_inputs`), shape ``(N, 28, 28, 1)``.
    y_train : numpy.ndarray
        Integer labels, shape ``(N,)``.
    seed : int, default 0
        Seeds the triplets, the shuffling and the batches.

    Returns
    -------
    dataset : tf.data.Dataset
        Batches of ``({"anchor", "positive", "negative"}, zeros)`` for the
        triplet schemes, ``(images, labels)`` for the online ones.
    steps_per_epoch : int or None
        For ``model.fit`` (None: the dataset's own end).
    epochs : int
        For ``model.fit``.
    """
    _check_recipe(recipe)
    _check_images_labels(x_train, y_train, "training")
    return _pipeline(recipe, x_train, y_train, seed, indices_only=False)


def _pipeline(recipe: Recipe, x_train, y_train, seed: int, indices_only: bool):
    """The recipe's seeded pipeline (images, or with ``indices_only`` positions)."""
    batch = recipe.batch_size
    flag = {"indices_only": indices_only}
    if recipe.steps is None:  # the seed's budget, in epochs
        fixed = seed_offline_triplets(y_train, seed=seed)
        if recipe.mining == "seed_triplets":
            data = triplet_dataset(x_train, fixed, batch_size=batch, seed=seed, **flag)
            return data, None, recipe.epochs
        data, steps = random_triplet_dataset(
            x_train,
            y_train,
            batch_size=batch,
            seed=seed,
            triplets_per_epoch=len(fixed),
            **flag,
        )
        return data, steps, recipe.epochs
    if recipe.mining == "seed_triplets":
        triplets = seed_offline_triplets(y_train, seed=seed)
        if len(triplets) < batch:
            raise ValueError(
                f"a batch of {batch} triplets needs at least that many, but the "
                f"seed's scheme builds {len(triplets)} from these labels"
            )
        data = triplet_dataset(x_train, triplets, batch_size=batch, seed=seed, **flag)
        return data.repeat(), recipe.steps, 1
    if recipe.mining == "random_triplets":
        data, _ = random_triplet_dataset(
            x_train, y_train, batch_size=batch, seed=seed, **flag
        )
        return data, recipe.steps, 1
    data = pk_dataset(x_train, y_train, recipe.p, recipe.k, seed=seed, **flag)
    return data, recipe.steps, 1


def batch_schedule(
    recipe: Recipe, y_train: np.ndarray, seed: int = 0
) -> Tuple[np.ndarray, np.ndarray, int]:
    """Every batch a recipe trains on, as image positions (no images).

    The batches of :func:`training_data`, in the same order: the same
    seeded pipelines run with ``indices_only=True``. The compiled loop of
    :func:`train` gathers each step's images from these positions.

    Parameters
    ----------
    recipe : Recipe
    y_train : numpy.ndarray
        Integer labels, shape ``(N,)``.
    seed : int, default 0

    Returns
    -------
    rows : numpy.ndarray
        ``int64``; the batches one after another: shape ``(R, 3)`` (anchor,
        positive, negative positions) for the triplet schemes, ``(R,)`` for
        the online ones.
    starts : numpy.ndarray
        ``int64``, shape ``(steps + 1,)``: step ``s`` takes
        ``rows[starts[s]:starts[s + 1]]`` (the seed's last batch of an epoch
        may be shorter).
    steps_per_epoch : int
        Steps in one epoch (``steps`` when the recipe counts steps).

    Raises
    ------
    TypeError, ValueError
        On a non-recipe or malformed labels.
    """
    _check_recipe(recipe)
    if not isinstance(y_train, np.ndarray) or not np.issubdtype(
        y_train.dtype, np.integer
    ):
        raise TypeError(
            "y_train must be an integer numpy array, got "
            f"{type(y_train).__name__} {getattr(y_train, 'dtype', '')}"
        )
    positions = np.zeros((len(y_train), 1, 1, 1), np.uint8)  # never gathered
    ds, per_epoch, epochs = _pipeline(recipe, positions, y_train, seed, True)
    if per_epoch is None:  # the seed's fixed triplets, by epochs
        per_epoch = int(ds.cardinality())
        ds = ds.repeat()
    total = per_epoch * epochs
    batches = [b.numpy() for b in ds.take(total)]
    sizes = np.array([len(b) for b in batches], np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return np.concatenate(batches).astype(np.int64), starts, int(per_epoch)


def compiled_train_function(
    recipe: Recipe,
    model: keras.Model,
    images: np.ndarray,
    labels: np.ndarray,
    schedule: Tuple[np.ndarray, np.ndarray, int],
):
    """The compiled loop of ``loop="compiled"``, ready to run blocks of steps.

    Holds ``images`` (and ``labels``) in memory as tensors; step ``s`` gathers
    the rows ``schedule[0][starts[s]:starts[s + 1]]`` inside the graph and
    trains on them with :func:`tripletutils.distributed.make_train_function`.
    Call it in a strategy's scope to train under that strategy.

    Parameters
    ----------
    recipe : Recipe
    model : keras.Model
        Compiled (its ``optimizer`` and ``loss`` are used): the model of
        :func:`build_training_model`.
    images : numpy.ndarray
        ``float32`` images as the network takes them (:func:`recipe_inputs`),
        shape ``(N, 28, 28, 1)``.
    labels : numpy.ndarray
        Integer labels, shape ``(N,)``.
    schedule : tuple
        ``(rows, starts, steps_per_epoch)`` from :func:`batch_schedule`.

    Returns
    -------
    callable
        ``run(start, n)`` with scalar ``int64`` tensors: trains steps
        ``start .. start + n - 1``; returns their losses, ``float32`` ``(n,)``.
    """
    _check_recipe(recipe)
    if not isinstance(model, keras.Model) or getattr(model, "optimizer", None) is None:
        raise TypeError("model must be a compiled keras.Model")
    _check_images_labels(images, labels, "training")
    rows, starts, _ = schedule
    if len(rows) and (rows.min() < 0 or rows.max() >= len(images)):
        raise ValueError(
            f"the schedule points at rows {rows.min()}..{rows.max()}, but there are "
            f"{len(images)} images"
        )
    images_t = tf.constant(images)
    labels_t = tf.constant(labels.astype(np.int64))
    rows_t, starts_t = tf.constant(rows), tf.constant(starts)
    names = ("anchor", "positive", "negative")

    def next_batch(step):
        idx = rows_t[starts_t[step] : starts_t[step + 1]]
        if recipe.triplet_model:
            x = {name: tf.gather(images_t, idx[:, j]) for j, name in enumerate(names)}
            return x, tf.zeros([tf.shape(idx)[0]], tf.float32)
        return tf.gather(images_t, idx), tf.gather(labels_t, idx)

    return make_train_function(
        model,
        model.loss,
        model.optimizer,
        next_batch,
        tf.distribute.get_strategy(),
        split_batch=True,
    )


def _compiled_fit(
    recipe: Recipe,
    model: keras.Model,
    images: np.ndarray,
    labels: np.ndarray,
    schedule: Tuple[np.ndarray, np.ndarray, int],
    callbacks: Sequence[keras.callbacks.Callback],
    verbose: int,
    scope,
) -> List[float]:
    """Run a recipe's steps with the compiled loop; returns the epoch losses.

    The loop is built in ``scope()`` (a strategy's, if any) and runs under that
    strategy; the callbacks run outside it, as ``fit`` runs them.
    """
    with scope():
        run = compiled_train_function(recipe, model, images, labels, schedule)
    _, starts, per_epoch = schedule
    total = len(starts) - 1
    epochs = math.ceil(total / per_epoch)
    cbs = keras.callbacks.CallbackList(
        list(callbacks),
        add_progbar=verbose != 0,
        model=model,
        verbose=verbose,
        epochs=epochs,
        steps=per_epoch,
    )
    spe = recipe.steps_per_execution
    sizes = np.diff(starts)
    epoch_loss: List[float] = []
    model.stop_training = False
    cbs.on_train_begin()
    step = 0
    for epoch in range(epochs):
        cbs.on_epoch_begin(epoch)
        end_of_epoch = min((epoch + 1) * per_epoch, total)
        values: List[float] = []
        running = 0.0
        while step < end_of_epoch:
            # blocks end at multiples of steps_per_execution (where callbacks
            # such as the monitor look at the weights) and at epoch ends
            n = min(spe - step % spe, end_of_epoch - step)
            block = run(tf.constant(step, tf.int64), tf.constant(n, tf.int64))
            for value in block.numpy().astype(np.float64):
                values.append(float(value))
                running += float(value)
                batch = len(values) - 1
                cbs.on_train_batch_begin(batch)
                # the unweighted running mean: StepHistory reads each step back
                cbs.on_train_batch_end(batch, {"loss": running / len(values)})
            step += n
            if model.stop_training:  # e.g. EarlyStopping, as fit honours it
                break
        lo = step - len(values)
        weights = sizes[lo:step]
        epoch_loss.append(float(np.average(values, weights=weights)))
        cbs.on_epoch_end(epoch, {"loss": epoch_loss[-1]})
        if model.stop_training:
            break
    cbs.on_train_end({"loss": epoch_loss[-1]})
    return epoch_loss


def _total_steps(recipe: Recipe, data, steps_per_epoch, epochs) -> int:
    if steps_per_epoch is not None:
        return steps_per_epoch * epochs
    return int(data.cardinality()) * epochs


def compute_precision(recipe: Recipe) -> str:
    """The precision :func:`train` computes a recipe in, on this machine.

    ``precision="mixed_bfloat16"`` is a speed setting, and bfloat16 is fast
    only where the hardware computes it: elsewhere TensorFlow emulates it, several
    times slower than float32 (one informal timing on a 2-core AMD EPYC is in
    :func:`tripletutils.runtime.bfloat16_is_native`). So a bfloat16 recipe
    trains in bfloat16 where that is native and in float32 elsewhere; the
    batches are the same. No committed experiment record checks bfloat16 over
    seeds: they were all computed in float32, on a CPU without native
    bfloat16 (the book's protocol appendix says so). ``"float32"`` and
    ``"mixed_float16"`` are kept as asked. ``train`` records the answer in
    ``history["precision"]``; set ``TRIPLETUTILS_BFLOAT16=1`` to force bfloat16.

    Parameters
    ----------
    recipe : Recipe

    Returns
    -------
    str
        One of :data:`PRECISIONS`.

    Raises
    ------
    TypeError
        If ``recipe`` is not a :class:`Recipe`.
    """
    _check_recipe(recipe)
    if recipe.precision == "mixed_bfloat16" and not bfloat16_is_native():
        return "float32"
    return recipe.precision


def train(
    recipe: Recipe,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: Optional[np.ndarray] = None,
    y_val: Optional[np.ndarray] = None,
    seed: int = 0,
    *,
    validate_every: Optional[int] = None,
    monitor_every: Optional[int] = None,
    log_dir: Union[str, Path, None] = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: int = 0,
    strategy=None,
    net: Optional[keras.Model] = None,
    on_non_finite: str = "raise",
) -> Tuple[keras.Model, keras.Model, Dict]:
    """Train one recipe: build, compile and run its steps; record its history.

    The steps run in ``model.fit`` or, for ``recipe.loop == "compiled"``, in
    the compiled loop (see :class:`Recipe`); both take the same callbacks.
    The loss is the recipe's (:func:`make_loss`); with ``recipe.augment`` the
    images pass through :func:`tripletutils.models.build_augmentation` (seeded
    with ``seed``) in front of the network, in training only. Training ends
    at the first step whose loss is not finite (``on_non_finite``).

    Parameters
    ----------
    recipe : Recipe
    x_train, x_val : numpy.ndarray
        ``float32`` images in [0, 1], shape ``(N, 28, 28, 1)``; the recipe
        rescales them (:func:`recipe_inputs`).
    y_train, y_val : numpy.ndarray
        Integer labels, shape ``(N,)``. The validation split is only read
        when ``validate_every`` or ``monitor_every`` is set.
    seed : int, default 0
        Seeds the weights, the triplets and the batches.
    validate_every : int, optional
        A multiple of ``steps_per_execution``. Triplet schemes: every so many
        steps (and at the end), the mean loss
        on the seed's offline triplets of the validation split
        (``history["val_steps"]``, ``history["val_loss"]``).
    monitor_every : int, optional
        A multiple of ``steps_per_execution``. Every so many steps (and at
        the end), :class:`~tripletutils.monitor.Monitor` records retrieval on
        the validation split and diagnostics on a probe of 200 of its images
        (the first of each class, then the second, ...: ``Monitor.probe``)
        (``history["monitor"]``; keep the split to a few thousand images).
    log_dir : str or Path, optional
        Write TensorBoard logs there (every ``validate_every`` steps, else
        every 100).
    callbacks : sequence of keras.callbacks.Callback, default ()
        More callbacks for ``fit``.
    verbose : int, default 0
        Passed to ``model.fit`` (2: one line per epoch).
    strategy : tf.distribute.Strategy, optional
        Build and compile in ``strategy.scope()``, so that ``fit`` runs
        data-parallel (``MirroredStrategy``...); each global batch is split
        between the replicas, so only the triplet schemes accept several
        replicas (an online loss would mine inside each replica's slice).
        ``MultiWorkerMirroredStrategy`` needs ``loop="compiled"`` (``fit``
        fails under it) and is refused for ``loop="fit"``.
    net : keras.Model, optional
        Continue training this float32 embedding network instead of a new one
        (its weights are updated, whatever the precision).
    on_non_finite : {"raise", "stop"}, default "raise"
        At the first step whose loss is NaN or infinite, training ends (the
        callbacks' ``on_train_end`` run) and: ``"raise"``,
        :class:`NonFiniteLossError` (its ``step``, its message naming the
        recipe, the step and the value); ``"stop"``, ``train`` returns
        normally, with ``history["stopped_at_step"]`` that step (the
        network's weights are then those after it, usually NaN). The
        compiled loop finds the exact step; so does ``model.fit`` with
        ``steps_per_execution=1``, while with ``s > 1`` it reports one mean
        per block of ``s`` steps and the step is the first of the block.
        In both loops, with ``s > 1`` the rest of the block has run (the
        history holds its steps).

    Returns
    -------
    net : keras.Model
        The trained embedding network, computing in float32.
    model : keras.Model
        The model ``fit`` trained (see :func:`build_training_model`).
    history : dict
        ``step_loss`` (one per step), ``epoch_loss``, ``fit_seconds``,
        ``images_per_step``, ``recipe`` (dict, as given), ``precision`` (what
        it computed in: :func:`compute_precision`), ``stopped_at_step`` (the
        step whose loss was not finite, None when the run finished its
        budget), and ``val_steps`` / ``val_loss`` and ``monitor`` when asked
        for.

    Raises
    ------
    NonFiniteLossError
        With ``on_non_finite="raise"``, at a loss that is not finite.
    TypeError, ValueError
        On bad arguments, before training.
    """
    _check_recipe(recipe)
    _check_on_non_finite(on_non_finite)
    requested = recipe
    recipe = dataclasses.replace(recipe, precision=compute_precision(recipe))
    _check_images_labels(x_train, y_train, "training")
    for value, what in (
        (validate_every, "validate_every"),
        (monitor_every, "monitor_every"),
    ):
        if value is not None:
            _positive_int(value, what)
    if (validate_every or monitor_every) and (x_val is None or y_val is None):
        raise ValueError("validate_every and monitor_every need x_val and y_val")
    if validate_every and not recipe.triplet_model:
        raise ValueError(
            "validate_every measures a triplet loss: use monitor_every for "
            f"mining={recipe.mining!r}"
        )
    _check_unit_range(x_train, "training")
    if not np.issubdtype(y_train.dtype, np.integer):
        raise TypeError(f"y_train must hold integer labels, got dtype {y_train.dtype}")
    if x_val is not None:
        _check_images_labels(x_val, y_val, "validation")
        _check_unit_range(x_val, "validation")
        if x_val.shape[1:] != x_train.shape[1:]:
            raise ValueError(
                f"validation images {x_val.shape[1:]} differ from training images "
                f"{x_train.shape[1:]}"
            )
        if not np.issubdtype(y_val.dtype, np.integer):
            raise TypeError(f"y_val must hold integer labels, got dtype {y_val.dtype}")
    spe = recipe.steps_per_execution
    for value, what in (
        (validate_every, "validate_every"),
        (monitor_every, "monitor_every"),
    ):
        if value is not None and value % spe:
            raise ValueError(
                f"{what}={value} must be a multiple of steps_per_execution={spe}: "
                "Keras reports only after each block of steps"
            )
    _check_strategy(strategy, recipe)
    if net is not None:
        if not isinstance(net, keras.Model):
            raise TypeError(f"net must be a keras.Model, got {type(net).__name__}")
        if tuple(net.input_shape[1:]) != tuple(x_train.shape[1:]) or tuple(
            net.output_shape[1:]
        ) != (recipe.embedding_dim,):
            raise ValueError(
                f"net maps {net.input_shape} to {net.output_shape}, but the images "
                f"are {x_train.shape[1:]} and the recipe's embedding_dim is "
                f"{recipe.embedding_dim}"
            )
    given = net
    keras.utils.set_random_seed(seed)
    xt = recipe_inputs(recipe, x_train)
    xv = None if x_val is None else recipe_inputs(recipe, x_val)

    def scope():  # a strategy's scope is entered once per `with`: a new one each time
        return strategy.scope() if strategy is not None else contextlib.nullcontext()

    def batches():
        if recipe.loop == "compiled":
            schedule = batch_schedule(recipe, y_train, seed)
            return schedule, None, None
        return training_data(recipe, xt, y_train, seed)

    if recipe.steps is None:  # the order of the seed recipe's original code
        data, steps_per_epoch, epochs = batches()
        with scope():
            if net is None:
                net = build_recipe_net(recipe, xt.shape[1:], seed=seed)
    else:
        with scope():
            if net is None:
                net = build_recipe_net(recipe, xt.shape[1:], seed=seed)
        data, steps_per_epoch, epochs = batches()
    if recipe.loop == "compiled":
        total = len(data[1]) - 1
    else:
        total = _total_steps(recipe, data, steps_per_epoch, epochs)
    with scope():
        trained_net, model = build_training_model(recipe, net, seed=seed)
        model.compile(
            optimizer=make_optimizer(recipe, total),
            loss=make_loss(recipe),
            steps_per_execution=recipe.steps_per_execution,
        )
    val_ds = None
    if validate_every:
        val_ds = triplet_dataset(
            xv,
            seed_offline_triplets(y_val, seed=seed + 1),
            batch_size=1024,
            shuffle=False,
        )
    steps_cb = StepHistory(val_ds, validate_every=validate_every or 100)
    cbs: List[keras.callbacks.Callback] = [steps_cb, _StopAtNonFiniteLoss()]
    monitor = None
    if monitor_every:
        monitor = Monitor(
            trained_net,
            xv,
            y_val,
            every=monitor_every,
            margin=recipe.margin,
            squared=recipe.squared,
        )
        cbs.append(monitor)
    if log_dir is not None:
        cbs.append(
            keras.callbacks.TensorBoard(
                log_dir=str(log_dir), update_freq=validate_every or 100
            )
        )
    cbs.extend(callbacks)
    start = time.perf_counter()
    if recipe.loop == "compiled":
        epoch_loss = _compiled_fit(
            recipe, model, xt, y_train, data, cbs, verbose, scope
        )
    else:
        fit = model.fit(
            data,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            shuffle=False,  # the dataset shuffles itself, seeded
            callbacks=cbs,
            verbose=verbose,
        )
        epoch_loss = [float(v) for v in fit.history["loss"]]
    history = steps_cb.as_dict()
    if not validate_every:
        del history["val_steps"], history["val_loss"]
    history["fit_seconds"] = time.perf_counter() - start
    history["epoch_loss"] = epoch_loss
    history["images_per_step"] = recipe.images_per_step
    if monitor is not None:
        history["monitor"] = monitor.records
    history["recipe"] = dataclasses.asdict(requested)
    history["precision"] = recipe.precision
    block = spe if recipe.loop == "fit" else 1
    history["stopped_at_step"] = _non_finite(
        requested, history["step_loss"], total, block, on_non_finite
    )
    if recipe.precision != "float32":
        if given is not None:  # the network the caller passed is the one trained
            given.set_weights(trained_net.get_weights())
            trained_net = given
        else:
            trained_net = mixed_precision_copy(trained_net, "float32")
    return trained_net, model, history


def train_softmax_baseline(
    recipe: Recipe,
    x_train: np.ndarray,
    y_train: np.ndarray,
    seed: int = 0,
    verbose: int = 0,
    *,
    head: str = "softmax",
    temperature: float = 0.05,
    on_non_finite: str = "raise",
) -> Tuple[keras.Model, keras.Model, Dict]:
    """Train a classifier on a recipe's network and budget (a baseline).

    The classifier is the recipe's embedding network *without* L2
    normalisation, followed by a head: ``Dense(n_classes, softmax)``
    (``head="softmax"``), or a normalised-softmax (cosine) classifier
    (``head="cosine"``: :class:`~tripletutils.models.CosineClassifier`,
    logits ``cos(feature, w_c) / temperature``, no bias, then a softmax). It
    is trained with cross-entropy on shuffled batches of ``p * k`` images for
    ``steps`` steps, with the recipe's optimiser and schedule: the same
    images per step and the same number of steps as an online recipe. Its
    penultimate layer (the embedding network's output) is the baseline
    embedding. Give it its own learning rate with
    ``dataclasses.replace(recipe, learning_rate=...)``. The recipe's input
    scale and ``augment`` apply (the augmentation in front of the network, in
    training only); its mining, margin, loss and speed settings (``fused``,
    ``steps_per_execution``, ``precision``, ``loop``) do not: it trains in
    float32 with ``model.fit``.

    Parameters
    ----------
    recipe : Recipe
        Network, ``p * k`` (batch size), ``steps``, learning rate, schedule,
        ``augment``.
    x_train : numpy.ndarray
        ``float32`` images, shape ``(N, 28, 28, 1)``.
    y_train : numpy.ndarray
        Integer classes ``0 .. C-1``, shape ``(N,)``.
    seed : int, default 0
    verbose : int, default 0
    head : {"softmax", "cosine"}, default "softmax"
    temperature : float, default 0.05
        Finite, positive: the cosine head's temperature (ignored by
        ``"softmax"``).
    on_non_finite : {"raise", "stop"}, default "raise"
        As for :func:`train` (here the step is always exact).

    Returns
    -------
    embedding_net : keras.Model
        The penultimate-layer network, ``(batch, 28, 28, 1) -> (batch, dim)``.
    classifier : keras.Model
        The whole classifier, ``(batch, 28, 28, 1) -> (batch, C)``
        probabilities (the softmax of either head).
    history : dict
        ``step_loss``, ``fit_seconds``, ``images_per_step``, ``precision``
        (``"float32"``) and ``stopped_at_step`` (as for :func:`train`).

    Raises
    ------
    NonFiniteLossError
        With ``on_non_finite="raise"``, at a loss that is not finite.
    TypeError, ValueError
        On bad arguments, before training.
    """
    _check_recipe(recipe)
    _check_on_non_finite(on_non_finite)
    if head not in ("softmax", "cosine"):
        raise ValueError(f"head must be 'softmax' or 'cosine', got {head!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
        raise TypeError(
            f"temperature must be a real number, got {type(temperature).__name__}"
        )
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be finite and positive, got {temperature}")
    if recipe.steps is None:
        raise ValueError("the softmax baseline needs a recipe with steps")
    _check_images_labels(x_train, y_train, "training")
    _check_unit_range(x_train, "training")
    if not np.issubdtype(y_train.dtype, np.integer):
        raise TypeError(f"y_train must hold integer labels, got dtype {y_train.dtype}")
    x_train = recipe_inputs(recipe, x_train)
    n_classes = int(y_train.max()) + 1
    if y_train.min() < 0 or len(np.unique(y_train)) != n_classes:
        raise ValueError(f"y_train must use every class id 0..{n_classes - 1}")
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    plain = dataclasses.replace(recipe, l2_normalize=False)
    net = build_recipe_net(plain, tuple(x_train.shape[1:]), seed=seed)
    if head == "softmax":
        head_layer = keras.layers.Dense(
            n_classes,
            activation="softmax",
            kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 20),
            name="softmax",
        )
    else:
        head_layer = CosineClassifier(
            n_classes, float(temperature), seed=seed + 20, name="cosine"
        )
    inputs = keras.Input(shape=x_train.shape[1:], name="image")
    features = _augmented(net, seed)(inputs) if recipe.augment else net(inputs)
    out = head_layer(features)
    if head == "cosine":  # TensorFlow's cross-entropy reads the logits under it
        out = keras.layers.Activation("softmax", name="softmax")(out)
    classifier = keras.Model(inputs, out, name=f"{head}_classifier")
    classifier.compile(
        optimizer=make_optimizer(recipe), loss="sparse_categorical_crossentropy"
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
        callbacks=[steps_cb, _StopAtNonFiniteLoss()],
        verbose=verbose,
        shuffle=False,
    )
    history = {
        "step_loss": steps_cb.step_loss,
        "fit_seconds": time.perf_counter() - start,
        "images_per_step": batch,
        "precision": "float32",
    }
    history["stopped_at_step"] = _non_finite(
        recipe, steps_cb.step_loss, recipe.steps, 1, on_non_finite
    )
    return net, classifier, history
