"""The shared embedding network and the seed's three-input triplet model.

This module imports only keras, so it can be copied alone. Its one custom
layer, :class:`L2Normalize`, is registered, so models that use it load from
``.keras`` files with ``safe_mode=True`` (no ``Lambda`` layers anywhere).
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import keras
from keras import layers, ops

__all__ = [
    "L2Normalize",
    "build_embedding_net",
    "build_triplet_model",
    "TRIPLET_INPUT_NAMES",
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
        raise TypeError(f"embedding_dim must be an int, got {type(embedding_dim).__name__}")
    if embedding_dim < 1:
        raise ValueError(f"embedding_dim must be at least 1, got {embedding_dim}")
    if not isinstance(l2_normalize, bool):
        raise TypeError(f"l2_normalize must be a bool, got {type(l2_normalize).__name__}")
    input_shape = tuple(input_shape)
    if not all(isinstance(s, int) and s > 0 for s in input_shape):
        raise ValueError(f"input_shape must hold positive ints, got {input_shape}")
    if backbone is not None and not isinstance(backbone, keras.Model):
        raise TypeError(f"backbone must be a keras.Model, got {type(backbone).__name__}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"dropout must be a float in [0, 1), got {dropout!r}")
    if activation == "linear":
        activation = None

    def init(offset):
        return None if seed is None else seed + offset

    inputs = keras.Input(shape=input_shape, name="image")
    if backbone is None:
        conv_init = lambda k: keras.initializers.RandomUniform(-0.05, 0.05, seed=init(k))  # noqa: E731
        x = layers.Conv2D(32, (3, 3), activation="relu", kernel_initializer=conv_init(0))(inputs)
        x = layers.MaxPooling2D((2, 2))(x)
        x = layers.Conv2D(32, (3, 3), activation="relu", kernel_initializer=conv_init(1))(x)
        x = layers.MaxPooling2D((2, 2))(x)
        if dropout > 0:
            x = layers.Dropout(dropout, seed=init(2))(x)
    else:
        expected = tuple(backbone.input_shape[1:])
        if expected != input_shape:
            raise ValueError(
                f"the backbone takes inputs of shape {expected}, but input_shape is {input_shape}"
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


def build_triplet_model(embedding_net: keras.Model, name: str = "triplet_model") -> keras.Model:
    """The seed's three-input model: one shared network, one concatenated output.

    Parameters
    ----------
    embedding_net : keras.Model
        Maps ``(batch, *image_shape)`` to ``(batch, dim)``; called three times,
        so the three branches share every weight.
    name : str, default "triplet_model"

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
        raise TypeError(f"embedding_net must be a keras.Model, got {type(embedding_net).__name__}")
    if len(embedding_net.output_shape) != 2:
        raise ValueError(
            f"embedding_net must output (batch, dim), got {embedding_net.output_shape}"
        )
    image_shape = tuple(embedding_net.input_shape[1:])
    inputs = [keras.Input(shape=image_shape, name=n) for n in TRIPLET_INPUT_NAMES]
    outputs = layers.Concatenate(axis=-1, name="triplet_embeddings")(
        [embedding_net(t) for t in inputs]
    )
    return keras.Model(inputs, outputs, name=name)
