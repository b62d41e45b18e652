"""The shared embedding network and the seed's three-input triplet model.

Also the pieces that wrap it in training: :func:`build_augmentation` (random
shifts and rotations, active in training only) and :class:`CosineClassifier`
(the head of a normalised-softmax classifier).

This module imports only keras, so it can be copied alone. Its custom layers
(:class:`L2Normalize`, :class:`CosineClassifier`...) are registered, so models
that use them load from ``.keras`` files with ``safe_mode=True`` (no
``Lambda`` layers anywhere).
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import math
import numbers

import keras
from keras import layers, ops

__all__ = [
    "L2Normalize",
    "CosineClassifier",
    "StackBatches",
    "UnstackToFeatures",
    "build_lenet_backbone",
    "build_embedding_net",
    "build_triplet_model",
    "build_augmentation",
    "TRIPLET_INPUT_NAMES",
    "mixed_precision_copy",
]

#: Input names of the three-input model, in order.
TRIPLET_INPUT_NAMES: Tuple[str, str, str] = ("anchor", "positive", "negative")


@keras.saving.register_keras_serializable(package="tripletutils")
class L2Normalize(layers.Layer):
    """Scale each vector to unit Euclidean length: ``x / max(|x|, epsilon)``.

    Parameters
    ----------
    axis : int, default -1
        Axis along which to normalise.
    epsilon : float, default 1e-12
        Floor of the norm, so that a zero vector stays zero (no NaN).

    Notes
    -----
    Input and output have the same shape and dtype (float).
    """

    def __init__(self, axis: int = -1, epsilon: float = 1e-12, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(axis, int):
            raise TypeError(f"axis must be an int, got {type(axis).__name__}")
        if not epsilon > 0:
            raise ValueError(f"epsilon must be positive, got {epsilon}")
        self.axis = axis
        self.epsilon = float(epsilon)

    def call(self, inputs):
        sq = ops.sum(ops.square(inputs), axis=self.axis, keepdims=True)
        return inputs * ops.rsqrt(ops.maximum(sq, self.epsilon**2))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"axis": self.axis, "epsilon": self.epsilon})
        return config


@keras.saving.register_keras_serializable(package="tripletutils")
class CosineClassifier(layers.Layer):
    """Logits of a normalised-softmax (cosine) classifier, without bias.

    ``logits[i, c] = cos(x_i, w_c) / temperature``: the cosine between the
    feature vector ``x_i`` and the class weight vector ``w_c`` (both scaled to
    unit length, a zero vector staying zero), divided by the temperature.
    Followed by a softmax and cross-entropy, this is the normalised softmax
    (NormFace, Wang et al. 2017; a cosine classifier without margin).

    Parameters
    ----------
    n_classes : int
        At least 2.
    temperature : float, default 0.05
        Finite, positive: the logits lie in ``[-1 / temperature, 1 /
        temperature]``.
    seed : int, optional
        Seed of the Glorot-uniform initialiser of the class weights.
    **kwargs
        Of ``keras.layers.Layer`` (``name``, ``dtype``).

    Notes
    -----
    Input ``(batch, dim)`` float; output ``(batch, n_classes)`` in the
    layer's compute dtype. The weight ``kernel`` has shape
    ``(dim, n_classes)``: column ``c`` is ``w_c``.
    """

    def __init__(
        self,
        n_classes: int,
        temperature: float = 0.05,
        seed: Optional[int] = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(n_classes, bool) or not isinstance(n_classes, int):
            raise TypeError(f"n_classes must be an int, got {type(n_classes).__name__}")
        if n_classes < 2:
            raise ValueError(f"n_classes must be at least 2, got {n_classes}")
        if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
            raise TypeError(
                f"temperature must be a real number, got {type(temperature).__name__}"
            )
        if not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(
                f"temperature must be finite and positive, got {temperature}"
            )
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed must be None or an int, got {type(seed).__name__}")
        self.n_classes = n_classes
        self.temperature = float(temperature)
        self.seed = seed

    def build(self, input_shape):
        if len(input_shape) != 2 or input_shape[-1] is None:
            raise ValueError(
                f"CosineClassifier takes (batch, dim) features, got {input_shape}"
            )
        self.kernel = self.add_weight(
            shape=(input_shape[-1], self.n_classes),
            initializer=keras.initializers.GlorotUniform(seed=self.seed),
            name="kernel",
        )

    def call(self, inputs):
        def unit(t, axis):
            sq = ops.sum(ops.square(t), axis=axis, keepdims=True)
            return t * ops.rsqrt(ops.maximum(sq, 1e-24))

        w = ops.cast(self.kernel, inputs.dtype)
        return ops.matmul(unit(inputs, -1), unit(w, 0)) / self.temperature

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n_classes)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "n_classes": self.n_classes,
                "temperature": self.temperature,
                "seed": self.seed,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="tripletutils")
class StackBatches(layers.Layer):
    """Stack several equal-size batches into one: ``n x (B, ...) -> (n * B, ...)``.

    With :class:`UnstackToFeatures` it lets the three-input model run its
    shared network once on ``3 * B`` images instead of three times on ``B``.
    """

    def call(self, inputs):
        return ops.concatenate(list(inputs), axis=0)

    def compute_output_shape(self, input_shapes):
        first = tuple(input_shapes[0])
        return (None,) + first[1:]


@keras.saving.register_keras_serializable(package="tripletutils")
class UnstackToFeatures(layers.Layer):
    """Undo :class:`StackBatches` side by side: ``(n * B, dim) -> (B, n * dim)``.

    Parameters
    ----------
    parts : int, default 3
        ``n``, the number of stacked batches.
    """

    def __init__(self, parts: int = 3, **kwargs):
        super().__init__(**kwargs)
        if isinstance(parts, bool) or not isinstance(parts, int) or parts < 1:
            raise ValueError(f"parts must be a positive int, got {parts!r}")
        self.parts = parts

    def call(self, x):
        return ops.concatenate(ops.split(x, self.parts, axis=0), axis=-1)

    def compute_output_shape(self, input_shape):
        dim = input_shape[-1]
        return (None, None if dim is None else dim * self.parts)

    def get_config(self):
        config = super().get_config()
        config.update({"parts": self.parts})
        return config


def build_lenet_backbone(
    input_shape: Sequence[int] = (28, 28, 1),
    width: int = 256,
    seed: Optional[int] = None,
) -> keras.Model:
    """A LeNet-style backbone, wider than the seed's, for the book's best recipe.

    ::

        Conv2D(32, 5x5, relu) -> MaxPool(2) -> Conv2D(64, 5x5, relu) -> MaxPool(2)
        -> Flatten -> Dense(width, relu)

    About 3 times the seed's multiply-adds per image (the second convolution
    has 64 filters of 5 x 5 x 32); on 28 x 28 x 1 inputs with ``width=256``
    it has 314,496 parameters. Pass it to :func:`build_embedding_net` as
    ``backbone``.

    Parameters
    ----------
    input_shape : sequence of int, default (28, 28, 1)
        Shape of one image (height, width, channels); at least 16 x 16.
    width : int, default 256
        Units of the hidden Dense layer.
    seed : int, optional
        Seed of the Glorot-uniform initialisers.

    Returns
    -------
    keras.Model
        Input ``(batch, *input_shape)`` float32; output ``(batch, width)``
        float32.

    Raises
    ------
    TypeError, ValueError
        If ``width`` is not a positive int or the images are too small.
    """
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive int, got {width!r}")
    input_shape = tuple(input_shape)
    if len(input_shape) != 3 or not all(
        isinstance(s, int) and s > 0 for s in input_shape
    ):
        raise ValueError(
            f"input_shape must be (height, width, channels) positive ints, "
            f"got {input_shape}"
        )
    if min(input_shape[:2]) < 16:
        raise ValueError(
            f"images must be at least 16 x 16 for two 5x5 convolutions and pools, "
            f"got {input_shape}"
        )

    def init(offset):
        return keras.initializers.GlorotUniform(
            seed=None if seed is None else seed + offset
        )

    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Conv2D(32, (5, 5), activation="relu", kernel_initializer=init(10))(
        inputs
    )
    x = layers.MaxPooling2D((2, 2))(x)
    x = layers.Conv2D(64, (5, 5), activation="relu", kernel_initializer=init(11))(x)
    x = layers.MaxPooling2D((2, 2))(x)
    x = layers.Flatten()(x)
    x = layers.Dense(width, activation="relu", kernel_initializer=init(12))(x)
    return keras.Model(inputs, x, name="lenet_backbone")


def build_embedding_net(
    input_shape: Sequence[int] = (28, 28, 1),
    embedding_dim: int = 128,
    activation: Optional[str] = "relu",
    l2_normalize: bool = False,
    backbone: Optional[keras.Model] = None,
    seed: Optional[int] = None,
    name: str = "embedding_net",
    dropout: float = 0.25,
) -> keras.Model:
    """The shared network that maps one image to one embedding.

    By default it is the seed's network, layer for layer::

        Conv2D(32, 3x3, relu) -> MaxPool(2) -> Conv2D(32, 3x3, relu) -> MaxPool(2)
        -> Dropout(0.25) -> Flatten -> Dense(128, relu)

    on 28 x 28 x 1 inputs: 112,096 parameters. The convolutions use the seed's
    ``random_uniform`` initialiser (uniform in [-0.05, 0.05]).

    Parameters
    ----------
    input_shape : sequence of int, default (28, 28, 1)
        Shape of one image (height, width, channels).
    embedding_dim : int, default 128
        Width of the final Dense layer.
    activation : str or None, default "relu"
        Activation of the final Dense layer: ``"relu"`` as in the seed, or
        ``None``/``"linear"`` for an unconstrained embedding.
    l2_normalize : bool, default False
        Append :class:`L2Normalize`, so embeddings lie on the unit sphere.
    backbone : keras.Model, optional
        Any Keras model taking ``input_shape`` images, used instead of the
        seed's convolutional stack; its output is flattened (if needed) and
        followed by the Dense embedding layer.
    seed : int, optional
        Seed of the weight initialisers (else Keras's global seed is used).
    name : str, default "embedding_net"
    dropout : float, default 0.25
        Dropout rate after the seed's convolutions (0 removes the layer).
        Ignored with a ``backbone``.

    Returns
    -------
    keras.Model
        Input ``(batch, *input_shape)`` float32; output
        ``(batch, embedding_dim)`` float32.

    Raises
    ------
    TypeError
        If ``backbone`` is not a Keras model or ``embedding_dim`` not an int.
    ValueError
        If ``embedding_dim`` < 1, or ``input_shape`` does not match the
        backbone's input.
    """
    if isinstance(embedding_dim, bool) or not isinstance(embedding_dim, int):
        raise TypeError(
            f"embedding_dim must be an int, got {type(embedding_dim).__name__}"
        )
    if embedding_dim < 1:
        raise ValueError(f"embedding_dim must be at least 1, got {embedding_dim}")
    if not isinstance(l2_normalize, bool):
        raise TypeError(
            f"l2_normalize must be a bool, got {type(l2_normalize).__name__}"
        )
    input_shape = tuple(input_shape)
    if not all(isinstance(s, int) and s > 0 for s in input_shape):
        raise ValueError(f"input_shape must hold positive ints, got {input_shape}")
    if backbone is not None and not isinstance(backbone, keras.Model):
        raise TypeError(
            f"backbone must be a keras.Model, got {type(backbone).__name__}"
        )
    if (
        isinstance(dropout, bool)
        or not isinstance(dropout, (int, float))
        or not 0 <= dropout < 1
    ):
        raise ValueError(f"dropout must be a float in [0, 1), got {dropout!r}")
    if activation == "linear":
        activation = None

    def init(offset):
        return None if seed is None else seed + offset

    inputs = keras.Input(shape=input_shape, name="image")
    if backbone is None:

        def conv_init(k):
            return keras.initializers.RandomUniform(-0.05, 0.05, seed=init(k))

        x = layers.Conv2D(
            32, (3, 3), activation="relu", kernel_initializer=conv_init(0)
        )(inputs)
        x = layers.MaxPooling2D((2, 2))(x)
        x = layers.Conv2D(
            32, (3, 3), activation="relu", kernel_initializer=conv_init(1)
        )(x)
        x = layers.MaxPooling2D((2, 2))(x)
        if dropout > 0:
            x = layers.Dropout(dropout, seed=init(2))(x)
    else:
        expected = tuple(backbone.input_shape[1:])
        if expected != input_shape:
            raise ValueError(
                f"the backbone takes inputs of shape {expected}, "
                f"but input_shape is {input_shape}"
            )
        x = backbone(inputs)
    if len(x.shape) > 2:
        x = layers.Flatten()(x)
    x = layers.Dense(
        embedding_dim,
        activation=activation,
        kernel_initializer=keras.initializers.GlorotUniform(seed=init(3)),
        name="embedding",
    )(x)
    if l2_normalize:
        x = L2Normalize(name="l2_normalize")(x)
    return keras.Model(inputs, x, name=name)


def build_triplet_model(
    embedding_net: keras.Model, name: str = "triplet_model", fused: bool = False
) -> keras.Model:
    """The seed's three-input model: one shared network, one concatenated output.

    Parameters
    ----------
    embedding_net : keras.Model
        Maps ``(batch, *image_shape)`` to ``(batch, dim)``; called three times,
        so the three branches share every weight.
    name : str, default "triplet_model"
    fused : bool, default False
        Run the network once on the three inputs stacked into one batch of
        ``3 * batch`` images (:class:`StackBatches`), then put the three parts
        side by side again (:class:`UnstackToFeatures`). Same inputs, same
        output layout, same values in inference; fewer, larger kernel calls,
        so training is faster on CPU. Layers that depend on the batch (batch
        normalisation) see one batch of ``3 * batch`` instead of three, and
        dropout draws its masks in another order.

    Returns
    -------
    keras.Model
        Inputs named ``anchor``, ``positive``, ``negative``, each
        ``(batch, *image_shape)``; output ``(batch, 3 * dim)`` float32: the
        anchor, positive and negative embeddings side by side (split it with
        :func:`tripletutils.losses.split_triplet_output`).

    Raises
    ------
    TypeError
        If ``embedding_net`` is not a Keras model.
    ValueError
        If its output is not of shape ``(batch, dim)``.
    """
    if not isinstance(embedding_net, keras.Model):
        raise TypeError(
            f"embedding_net must be a keras.Model, got {type(embedding_net).__name__}"
        )
    if len(embedding_net.output_shape) != 2:
        raise ValueError(
            f"embedding_net must output (batch, dim), got {embedding_net.output_shape}"
        )
    if not isinstance(fused, bool):
        raise TypeError(f"fused must be a bool, got {type(fused).__name__}")
    image_shape = tuple(embedding_net.input_shape[1:])
    inputs = [keras.Input(shape=image_shape, name=n) for n in TRIPLET_INPUT_NAMES]
    if fused:
        stacked = StackBatches(name="stack_triplets")(inputs)
        outputs = UnstackToFeatures(3, name="triplet_embeddings")(
            embedding_net(stacked)
        )
    else:
        outputs = layers.Concatenate(axis=-1, name="triplet_embeddings")(
            [embedding_net(t) for t in inputs]
        )
    return keras.Model(inputs, outputs, name=name)


def build_augmentation(
    input_shape: Sequence[int] = (28, 28, 1),
    max_shift: float = 0.1,
    max_degrees: float = 10.0,
    seed: Optional[int] = None,
    name: str = "augmentation",
) -> keras.Model:
    """Light augmentation: a random shift, then a random rotation, in training only.

    ``RandomTranslation`` by up to ``max_shift`` of the height and of the
    width, then ``RandomRotation`` by up to ``max_degrees`` either way (Keras
    preprocessing layers, bilinear, the uncovered pixels filled with 0: the
    background of MNIST at either input scale). Each image draws its own
    transformation. Called with ``training=True`` (as ``fit`` and the compiled
    loop call the model they train) it transforms; with ``training=False`` (as
    ``predict`` calls it) it returns its input unchanged. Called without
    ``training``, Keras's preprocessing layers transform (their default), so
    keep it out of the network used for inference: put it in front of the
    network in the training model only, as :func:`tripletutils.training.train`
    does.

    Parameters
    ----------
    input_shape : sequence of int, default (28, 28, 1)
        Shape of one image (height, width, channels).
    max_shift : float, default 0.1
        In [0, 1): the largest shift, as a fraction of the image's size.
    max_degrees : float, default 10.0
        In [0, 180]: the largest rotation, in degrees.
    seed : int, optional
        Seeds the two layers (``seed`` and ``seed + 1``): the same seed draws
        the same transformations, call after call.
    name : str, default "augmentation"

    Returns
    -------
    keras.Model
        ``(batch, *input_shape)`` float32 to the same shape and dtype.

    Raises
    ------
    TypeError, ValueError
        On a non-number or out-of-range ``max_shift`` or ``max_degrees``, a
        malformed ``input_shape`` or a non-int ``seed``.
    """
    for value, what in ((max_shift, "max_shift"), (max_degrees, "max_degrees")):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{what} must be a real number, got {type(value).__name__}")
    if not 0 <= max_shift < 1:
        raise ValueError(f"max_shift must lie in [0, 1), got {max_shift}")
    if not 0 <= max_degrees <= 180:
        raise ValueError(f"max_degrees must lie in [0, 180], got {max_degrees}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(f"seed must be None or an int, got {type(seed).__name__}")
    input_shape = tuple(input_shape)
    if len(input_shape) != 3 or not all(
        isinstance(s, int) and s > 0 for s in input_shape
    ):
        raise ValueError(
            f"input_shape must be (height, width, channels) positive ints, "
            f"got {input_shape}"
        )
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.RandomTranslation(
        max_shift,
        max_shift,
        fill_mode="constant",
        fill_value=0.0,
        seed=seed,
        name="random_shift",
    )(inputs)
    x = layers.RandomRotation(
        max_degrees / 360.0,
        fill_mode="constant",
        fill_value=0.0,
        seed=None if seed is None else seed + 1,
        name="random_rotation",
    )(x)
    return keras.Model(inputs, x, name=name)


def _set_policy(config, policy: str) -> None:
    """Set ``dtype`` of every layer in a serialised model.

    Not of inputs, not of sub-models.
    """
    if isinstance(config, list):
        for item in config:
            _set_policy(item, policy)
        return
    if not isinstance(config, dict) or config.get("class_name") == "InputLayer":
        return
    inner = config.get("config")
    if isinstance(inner, dict):
        if "dtype" in inner and config.get("class_name") not in (
            "Functional",
            "Model",
            "Sequential",
        ):
            inner["dtype"] = policy
        for value in inner.values():
            if isinstance(value, (list, dict)):
                _set_policy(value, policy)


def mixed_precision_copy(
    model: keras.Model, policy: str = "mixed_bfloat16"
) -> keras.Model:
    """A copy of a trained model that computes in reduced precision, for inference.

    Every layer (also inside nested models) gets the dtype policy ``policy``:
    with ``"mixed_bfloat16"`` the weights stay float32 and the computations
    run in bfloat16, which CPUs with AVX-512 BF16 or AMX execute about twice
    as fast as float32 through oneDNN. The outputs are bfloat16 (about three
    significant digits); :func:`tripletutils.evaluation.embed` returns them as
    float32. Check that retrieval quality holds before using it (chapter 13
    does).

    Parameters
    ----------
    model : keras.Model
        A trained model (functional, possibly with nested models).
    policy : str, default "mixed_bfloat16"
        A Keras dtype policy name, e.g. ``"mixed_bfloat16"``, ``"mixed_float16"``
        or ``"float32"``.

    Returns
    -------
    keras.Model
        Same architecture and weights; ``model`` is left unchanged.

    Raises
    ------
    TypeError
        If ``model`` is not a Keras model or ``policy`` not a string.
    ValueError
        If ``policy`` is not a known Keras dtype policy.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model, got {type(model).__name__}")
    if not isinstance(policy, str):
        raise TypeError(f"policy must be a string, got {type(policy).__name__}")
    try:
        keras.DTypePolicy(policy)
    except ValueError as err:
        raise ValueError(f"unknown dtype policy {policy!r}: {err}") from None
    config = keras.saving.serialize_keras_object(model)
    _set_policy(config, policy)
    copy = keras.saving.deserialize_keras_object(config)
    copy.set_weights(model.get_weights())
    return copy
