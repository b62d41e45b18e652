"""Triplet losses in Keras 3 (``keras.ops``), offline and online.

* :func:`pairwise_distances`: all distances within a batch, with finite
  gradients when two embeddings coincide.
* :class:`OfflineTripletLoss`: the seed project's loss on the three-input
  model's concatenated output, ``max(0, d(a,p) - d(a,n) + margin)``.
* Online losses on ``(labels, embeddings)``, mining triplets inside the batch:
  :func:`batch_all_triplet_loss`, :func:`batch_hard_triplet_loss` (both
  Hermans et al. 2017), :func:`semi_hard_triplet_loss` (the rule of TensorFlow
  Addons' ``TripletSemiHardLoss``, not FaceNet's own selection) and
  :func:`soft_margin_triplet_loss`, each with a Keras ``Loss`` class.
* Diagnostics for collapse: :func:`triplet_diagnostics`.

This module imports only keras, so it can be copied alone. Every loss class is
registered (package ``tripletutils``), so models compiled with it save and load
as ``.keras`` files with ``safe_mode=True``.

Conventions: ``embeddings`` has shape ``(batch, dim)``; ``labels`` has shape
``(batch,)`` or ``(batch, 1)`` (Keras's default), integer or float holding
integer class ids. Distances are Euclidean, squared when ``squared=True``.
"""

from __future__ import annotations

from typing import Dict, Tuple

import keras
from keras import ops

__all__ = [
    "pairwise_distances",
    "split_triplet_output",
    "triplet_pair_distances",
    "offline_triplet_loss",
    "batch_all_triplet_loss",
    "batch_hard_triplet_loss",
    "semi_hard_triplet_loss",
    "soft_margin_triplet_loss",
    "triplet_diagnostics",
    "OfflineTripletLoss",
    "BatchAllTripletLoss",
    "BatchHardTripletLoss",
    "SemiHardTripletLoss",
    "SoftMarginTripletLoss",
]

_EPS = 1e-16


# --------------------------------------------------------------------------- #
# Checks
# --------------------------------------------------------------------------- #
def _check_margin(margin: float) -> float:
    if isinstance(margin, bool) or not isinstance(margin, (int, float)):
        raise TypeError(f"margin must be a float, got {type(margin).__name__}")
    if margin < 0:
        raise ValueError(f"margin must be non-negative, got {margin}")
    return float(margin)


def _check_squared(squared: bool) -> bool:
    if not isinstance(squared, bool):
        raise TypeError(f"squared must be a bool, got {type(squared).__name__}")
    return squared


def _as_embeddings(embeddings) -> "keras.KerasTensor":
    embeddings = ops.convert_to_tensor(embeddings)
    if len(embeddings.shape) != 2:
        raise ValueError(
            f"embeddings must have shape (batch, dim), got {tuple(embeddings.shape)}"
        )
    if "float" not in str(embeddings.dtype):
        embeddings = ops.cast(embeddings, "float32")
    return embeddings


def _as_labels(labels, batch: int | None) -> "keras.KerasTensor":
    labels = ops.convert_to_tensor(labels)
    shape = tuple(labels.shape)
    if len(shape) == 2 and shape[1] == 1:
        labels = ops.reshape(labels, (-1,))
    elif len(shape) != 1:
        raise ValueError(f"labels must have shape (batch,) or (batch, 1), got {shape}")
    if batch is not None and labels.shape[0] is not None and labels.shape[0] != batch:
        raise ValueError(
            f"labels and embeddings must have the same batch size, got "
            f"{labels.shape[0]} labels and {batch} embeddings"
        )
    if "float" in str(labels.dtype):
        labels = ops.round(labels)
    return ops.cast(labels, "int32")


# --------------------------------------------------------------------------- #
# Distances
# --------------------------------------------------------------------------- #
def _safe_sqrt(squared_distances):
    """sqrt with a zero (not infinite) gradient where the argument is 0."""
    zero = ops.cast(ops.equal(squared_distances, 0.0), squared_distances.dtype)
    return ops.sqrt(squared_distances + zero * _EPS) * (1.0 - zero)


def pairwise_distances(embeddings, squared: bool = False):
    """Euclidean distances between all pairs of rows of ``embeddings``.

    Uses ``|a|^2 - 2 a.b + |b|^2`` (one matrix product), clips tiny negative
    values from round-off to 0, and takes the square root with a mask plus an
    epsilon so that the gradient stays finite (0) where two embeddings are
    identical, including each embedding with itself on the diagonal.

    Parameters
    ----------
    embeddings : tensor or array
        Shape ``(batch, dim)``, float.
    squared : bool, default False
        Return squared distances.

    Returns
    -------
    tensor
        Shape ``(batch, batch)``, float, non-negative, zero diagonal.

    Raises
    ------
    TypeError
        If ``squared`` is not a bool.
    ValueError
        If ``embeddings`` is not 2-D.
    """
    squared = _check_squared(squared)
    e = _as_embeddings(embeddings)
    dot = ops.matmul(e, ops.transpose(e))
    sq_norm = ops.diagonal(dot)
    d2 = ops.expand_dims(sq_norm, 0) - 2.0 * dot + ops.expand_dims(sq_norm, 1)
    d2 = ops.maximum(d2, 0.0)
    # exact zeros on the diagonal (round-off can leave ~1e-7 there)
    d2 = d2 * (1.0 - ops.eye(ops.shape(e)[0], dtype=d2.dtype))
    return d2 if squared else _safe_sqrt(d2)


def split_triplet_output(y_pred, num_parts: int = 3):
    """Split the three-input model's concatenated output into its parts.

    Parameters
    ----------
    y_pred : tensor or array
        Shape ``(batch, 3 * dim)``: anchor, positive and negative embeddings
        side by side. ``dim`` is inferred (never hard-coded).
    num_parts : int, default 3

    Returns
    -------
    list of tensors
        ``num_parts`` tensors of shape ``(batch, dim)``.

    Raises
    ------
    ValueError
        If ``y_pred`` is not 2-D or its width is not a multiple of ``num_parts``.
    """
    y_pred = ops.convert_to_tensor(y_pred)
    if len(y_pred.shape) != 2:
        raise ValueError(
            f"y_pred must have shape (batch, 3 * dim), got {tuple(y_pred.shape)}"
        )
    width = y_pred.shape[-1]
    if width is None or width % num_parts:
        raise ValueError(
            f"the last axis of y_pred ({width}) must be a multiple of {num_parts} "
            "(anchor, positive and negative embeddings concatenated)"
        )
    return ops.split(y_pred, num_parts, axis=-1)


def triplet_pair_distances(y_pred, squared: bool = True) -> Tuple:
    """d(a, p) and d(a, n) for each row of a concatenated triplet output.

    Parameters
    ----------
    y_pred : tensor or array
        Shape ``(batch, 3 * dim)``.
    squared : bool, default True
        Squared Euclidean distances (the seed's choice) or plain ones.

    Returns
    -------
    (d_ap, d_an) : tuple of tensors
        Each of shape ``(batch,)``, float.
    """
    squared = _check_squared(squared)
    a, p, n = split_triplet_output(y_pred)
    d_ap = ops.sum(ops.square(a - p), axis=-1)
    d_an = ops.sum(ops.square(a - n), axis=-1)
    if not squared:
        d_ap, d_an = _safe_sqrt(d_ap), _safe_sqrt(d_an)
    return d_ap, d_an


def offline_triplet_loss(y_pred, margin: float = 1.0, squared: bool = True):
    """The seed's loss, per triplet: ``max(0, d(a,p) - d(a,n) + margin)``.

    Parameters
    ----------
    y_pred : tensor or array
        Shape ``(batch, 3 * dim)``, the three embeddings concatenated.
    margin : float, default 1.0
    squared : bool, default True
        The seed used squared Euclidean distances.

    Returns
    -------
    tensor
        Shape ``(batch,)``, float, non-negative.

    Raises
    ------
    TypeError, ValueError
        On a bad ``margin``, ``squared`` or ``y_pred`` shape.
    """
    margin = _check_margin(margin)
    d_ap, d_an = triplet_pair_distances(y_pred, squared=squared)
    return ops.maximum(d_ap - d_an + margin, 0.0)


# --------------------------------------------------------------------------- #
# Masks (as in omoindrot/tensorflow-triplet-loss, in keras.ops)
# --------------------------------------------------------------------------- #
def _masks(labels, batch):
    """Boolean (B,B) positive-pair and negative-pair masks."""
    same = ops.equal(ops.expand_dims(labels, 0), ops.expand_dims(labels, 1))
    not_self = ops.logical_not(ops.cast(ops.eye(batch), "bool"))
    return ops.logical_and(same, not_self), ops.logical_not(same)


def _prepare(labels, embeddings, margin, squared):
    margin = _check_margin(margin)
    squared = _check_squared(squared)
    e = _as_embeddings(embeddings)
    y = _as_labels(labels, e.shape[0])
    d = pairwise_distances(e, squared=squared)
    pos, neg = _masks(y, ops.shape(e)[0])
    return margin, d, pos, neg


def _safe_mean(values, mask):
    mask = ops.cast(mask, values.dtype)
    return ops.sum(values * mask) / ops.maximum(ops.sum(mask), 1.0)


# --------------------------------------------------------------------------- #
# Online losses
# --------------------------------------------------------------------------- #
def batch_all_triplet_loss(
    labels, embeddings, margin: float = 1.0, squared: bool = False
):
    """Batch-all loss: mean over the *active* valid triplets in the batch.

    A triplet ``(a, p, n)`` is valid when ``a != p``, ``label[a] == label[p]``
    and ``label[n] != label[a]``; its loss is ``max(0, d(a,p) - d(a,n) +
    margin)``; it is active when that loss is > 0.

    Parameters
    ----------
    labels : tensor or array
        Shape ``(batch,)`` or ``(batch, 1)``, integer class ids (int or float).
    embeddings : tensor or array
        Shape ``(batch, dim)``, float.
    margin : float, default 1.0
    squared : bool, default False

    Returns
    -------
    (loss, fraction_active) : tuple of scalar tensors
        ``loss`` is 0 when no triplet is active (or none is valid);
        ``fraction_active`` = active / valid triplets (0 when none is valid).

    Raises
    ------
    TypeError, ValueError
        On bad shapes, a negative margin or a non-bool ``squared``.
    """
    margin, d, pos, neg = _prepare(labels, embeddings, margin, squared)
    # t[a, p, n] = d(a, p) - d(a, n) + margin
    t = ops.expand_dims(d, 2) - ops.expand_dims(d, 1) + margin
    valid = ops.logical_and(ops.expand_dims(pos, 2), ops.expand_dims(neg, 1))
    valid_f = ops.cast(valid, t.dtype)
    losses = ops.maximum(t, 0.0) * valid_f
    active = ops.cast(ops.greater(losses, _EPS), t.dtype)
    n_active, n_valid = ops.sum(active), ops.sum(valid_f)
    loss = ops.sum(losses) / ops.maximum(n_active, 1.0)
    return loss, n_active / ops.maximum(n_valid, 1.0)


def _hardest(labels, embeddings, margin, squared):
    """Per anchor: hardest positive, hardest negative, and whether both exist."""
    margin, d, pos, neg = _prepare(labels, embeddings, margin, squared)
    pos_f, neg_f = ops.cast(pos, d.dtype), ops.cast(neg, d.dtype)
    hardest_pos = ops.max(d * pos_f, axis=1)
    # push non-negatives above every distance before taking the min
    big = ops.stop_gradient(ops.max(d) + 1.0)
    hardest_neg = ops.min(d + big * (1.0 - neg_f), axis=1)
    has_both = ops.logical_and(ops.any(pos, axis=1), ops.any(neg, axis=1))
    return margin, hardest_pos, hardest_neg, has_both


def batch_hard_triplet_loss(
    labels, embeddings, margin: float = 1.0, squared: bool = False
):
    """Batch-hard loss (Hermans et al. 2017): hardest positive and negative.

    For each anchor that has at least one positive and one negative in the
    batch: ``max(0, max_p d(a,p) - min_n d(a,n) + margin)``; the mean over
    those anchors (0 if there is none).

    Parameters
    ----------
    labels : tensor or array
        Shape ``(batch,)`` or ``(batch, 1)``, integer class ids.
    embeddings : tensor or array
        Shape ``(batch, dim)``, float.
    margin : float, default 1.0
    squared : bool, default False

    Returns
    -------
    tensor
        Scalar loss.
    """
    margin, hp, hn, ok = _hardest(labels, embeddings, margin, squared)
    return _safe_mean(ops.maximum(hp - hn + margin, 0.0), ok)


def soft_margin_triplet_loss(labels, embeddings, squared: bool = False):
    """Batch-hard loss with a soft margin: ``log(1 + exp(d_ap - d_an))``.

    As :func:`batch_hard_triplet_loss`, with the hinge replaced by softplus
    (Hermans et al. 2017), so even satisfied triplets keep a small gradient.

    Parameters
    ----------
    labels : tensor or array
        Shape ``(batch,)`` or ``(batch, 1)``, integer class ids.
    embeddings : tensor or array
        Shape ``(batch, dim)``, float.
    squared : bool, default False

    Returns
    -------
    tensor
        Scalar loss (0 when no anchor has both a positive and a negative).
    """
    _, hp, hn, ok = _hardest(labels, embeddings, 0.0, squared)
    return _safe_mean(ops.softplus(hp - hn), ok)


def semi_hard_triplet_loss(
    labels, embeddings, margin: float = 1.0, squared: bool = False
):
    """Semi-hard loss with the rule of TensorFlow Addons' ``TripletSemiHardLoss``.

    For every positive pair ``(a, p)``: the negative is the *closest* one that
    is still farther than the positive (``d(a,n) > d(a,p)``); if there is no
    such negative, the *farthest* negative. Loss: the mean over all positive
    pairs of ``max(0, d(a,p) - d(a,n) + margin)`` (0 if there is no positive
    pair or no negative).

    This is not FaceNet's selection (Schroff et al. 2015), which named
    semi-hard negatives: FaceNet picks, for each positive pair, a negative
    inside the margin (``d(a,p) < d(a,n) < d(a,p) + margin``) from large
    mini-batches (about 1,800 images) and has no fallback to the farthest
    negative. Here the chosen negative may lie beyond the margin (zero loss).

    Parameters
    ----------
    labels : tensor or array
        Shape ``(batch,)`` or ``(batch, 1)``, integer class ids.
    embeddings : tensor or array
        Shape ``(batch, dim)``, float.
    margin : float, default 1.0
    squared : bool, default False

    Returns
    -------
    tensor
        Scalar loss.
    """
    margin, d, pos, neg = _prepare(labels, embeddings, margin, squared)
    neg_f = ops.cast(neg, d.dtype)
    d_ap = ops.expand_dims(d, 2)  # (a, p, 1)
    d_an = ops.expand_dims(d, 1)  # (a, 1, n)
    negs = ops.expand_dims(neg_f, 1)  # (a, 1, n)
    outside = ops.cast(ops.greater(d_an, d_ap), d.dtype) * negs  # (a, p, n)
    big = ops.stop_gradient(ops.max(d) + 1.0)
    closest_outside = ops.min(d_an + big * (1.0 - outside), axis=2)  # (a, p)
    farthest = ops.max(d * neg_f, axis=1, keepdims=True)  # (a, 1)
    has_outside = ops.greater(ops.sum(outside, axis=2), 0.0)
    chosen = ops.where(has_outside, closest_outside, farthest)
    valid = ops.logical_and(pos, ops.expand_dims(ops.any(neg, axis=1), 1))
    return _safe_mean(ops.maximum(d - chosen + margin, 0.0), valid)


# --------------------------------------------------------------------------- #
# Diagnostics
# --------------------------------------------------------------------------- #
def triplet_diagnostics(
    labels, embeddings, margin: float = 1.0, squared: bool = False
) -> Dict[str, "keras.KerasTensor"]:
    """Numbers that reveal collapse and too-easy batches.

    Parameters
    ----------
    labels : tensor or array
        Shape ``(batch,)`` or ``(batch, 1)``, integer class ids.
    embeddings : tensor or array
        Shape ``(batch, dim)``, float.
    margin : float, default 1.0
        Margin used to call a triplet active.
    squared : bool, default False

    Returns
    -------
    dict of str to scalar tensor
        ``fraction_active``: share of valid triplets with a positive loss;
        ``mean_norm``: mean L2 norm of the embeddings (near 0 = collapse);
        ``mean_positive_distance`` and ``mean_negative_distance``: mean
        distance over positive and negative pairs (0 if there is none);
        ``distance_gap``: negative minus positive mean distance.
    """
    margin, d, pos, neg = _prepare(labels, embeddings, margin, squared)
    _, frac = batch_all_triplet_loss(labels, embeddings, margin, squared)
    e = _as_embeddings(embeddings)
    mp, mn = _safe_mean(d, pos), _safe_mean(d, neg)
    return {
        "fraction_active": frac,
        "mean_norm": ops.mean(ops.sqrt(ops.sum(ops.square(e), axis=1))),
        "mean_positive_distance": mp,
        "mean_negative_distance": mn,
        "distance_gap": mn - mp,
    }


# --------------------------------------------------------------------------- #
# Keras Loss classes
# --------------------------------------------------------------------------- #
class _TripletLossBase(keras.losses.Loss):
    """Shared config handling for the loss classes."""

    def __init__(self, margin: float = 1.0, squared: bool = False, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.margin = _check_margin(margin)
        self.squared = _check_squared(squared)

    def get_config(self):
        config = super().get_config()
        config.update({"margin": self.margin, "squared": self.squared})
        return config


@keras.saving.register_keras_serializable(package="tripletutils")
class OfflineTripletLoss(_TripletLossBase):
    """The seed's loss for the three-input model (``y_true`` is ignored).

    Parameters
    ----------
    margin : float, default 1.0
    squared : bool, default True
        Squared Euclidean distances, as in the seed.

    Notes
    -----
    ``y_pred`` has shape ``(batch, 3 * dim)``; the per-triplet loss of
    :func:`offline_triplet_loss` is averaged over the batch.
    """

    def __init__(
        self,
        margin: float = 1.0,
        squared: bool = True,
        name="offline_triplet_loss",
        **kwargs,
    ):
        super().__init__(margin=margin, squared=squared, name=name, **kwargs)

    def call(self, y_true, y_pred):
        return offline_triplet_loss(y_pred, self.margin, self.squared)


@keras.saving.register_keras_serializable(package="tripletutils")
class BatchAllTripletLoss(_TripletLossBase):
    """Keras wrapper of :func:`batch_all_triplet_loss` (``y_true`` = labels)."""

    def __init__(
        self,
        margin: float = 1.0,
        squared: bool = False,
        name="batch_all_triplet_loss",
        **kwargs,
    ):
        super().__init__(margin=margin, squared=squared, name=name, **kwargs)

    def call(self, y_true, y_pred):
        return batch_all_triplet_loss(y_true, y_pred, self.margin, self.squared)[0]


@keras.saving.register_keras_serializable(package="tripletutils")
class BatchHardTripletLoss(_TripletLossBase):
    """Keras wrapper of :func:`batch_hard_triplet_loss` (``y_true`` = labels)."""

    def __init__(
        self,
        margin: float = 1.0,
        squared: bool = False,
        name="batch_hard_triplet_loss",
        **kwargs,
    ):
        super().__init__(margin=margin, squared=squared, name=name, **kwargs)

    def call(self, y_true, y_pred):
        return batch_hard_triplet_loss(y_true, y_pred, self.margin, self.squared)


@keras.saving.register_keras_serializable(package="tripletutils")
class SemiHardTripletLoss(_TripletLossBase):
    """Keras wrapper of :func:`semi_hard_triplet_loss` (``y_true`` = labels).

    The mining rule is TensorFlow Addons' ``TripletSemiHardLoss``, not FaceNet's
    selection; see :func:`semi_hard_triplet_loss`.
    """

    def __init__(
        self,
        margin: float = 1.0,
        squared: bool = False,
        name="semi_hard_triplet_loss",
        **kwargs,
    ):
        super().__init__(margin=margin, squared=squared, name=name, **kwargs)

    def call(self, y_true, y_pred):
        return semi_hard_triplet_loss(y_true, y_pred, self.margin, self.squared)


@keras.saving.register_keras_serializable(package="tripletutils")
class SoftMarginTripletLoss(keras.losses.Loss):
    """Keras wrapper of :func:`soft_margin_triplet_loss` (``y_true`` = labels).

    Parameters
    ----------
    squared : bool, default False
    """

    def __init__(
        self, squared: bool = False, name="soft_margin_triplet_loss", **kwargs
    ):
        super().__init__(name=name, **kwargs)
        self.squared = _check_squared(squared)

    def call(self, y_true, y_pred):
        return soft_margin_triplet_loss(y_true, y_pred, self.squared)

    def get_config(self):
        config = super().get_config()
        config.update({"squared": self.squared})
        return config
