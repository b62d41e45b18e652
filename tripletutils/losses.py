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
* Pair and similarity losses on ``(labels, embeddings)``, for embeddings that
  transfer to unseen classes: :func:`contrastive_loss`,
  :func:`multi_similarity_loss` and :func:`supervised_contrastive_loss`, each
  with a Keras ``Loss`` class.
* Diagnostics for collapse: :func:`triplet_diagnostics`.

This module imports only keras (and the standard library), so it can be copied
alone. Every loss class is registered (package ``tripletutils``), so models
compiled with it save and load as ``.keras`` files with ``safe_mode=True``.

Conventions: ``embeddings`` has shape ``(batch, dim)``; ``labels`` has shape
``(batch,)`` or ``(batch, 1)`` (Keras's default), integer or float holding
integer class ids. Distances are Euclidean, squared when ``squared=True``.

Numerics: integer labels are compared as int64, so any two distinct ids stay
distinct. Float labels hold exact integers only up to 2**24 (float32), 2**11
(float16) or 2**8 (bfloat16): larger ids may already have merged, and a
concrete (eager) float label array with such ids, NaN or fractions is
rejected. Half-precision (float16, bfloat16) embeddings are cast to float32:
distances and losses are computed and returned in float32, and gradients flow
back in the input dtype. An empty batch gives a loss of 0 with a zero
gradient. The online ``Loss`` classes give one value per batch, so they reject
a ``sample_weight`` (and ``class_weight`` in ``model.fit``).
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Dict, List, Tuple

import keras
from keras import ops

#: Anything :func:`keras.ops.convert_to_tensor` accepts: a NumPy array, a
#: backend tensor, a nested list.
ArrayLike = Any
#: A backend tensor (``tf.Tensor`` with the TensorFlow backend).
Tensor = Any

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
    "contrastive_loss",
    "multi_similarity_loss",
    "supervised_contrastive_loss",
    "pair_loss_settings",
    "OfflineTripletLoss",
    "BatchAllTripletLoss",
    "BatchHardTripletLoss",
    "SemiHardTripletLoss",
    "SoftMarginTripletLoss",
    "ContrastiveLoss",
    "MultiSimilarityLoss",
    "SupervisedContrastiveLoss",
]

_EPS = 1e-16


# --------------------------------------------------------------------------- #
# Checks
# --------------------------------------------------------------------------- #
def _check_margin(margin: float, name: str = "margin") -> float:
    if isinstance(margin, bool) or not isinstance(margin, numbers.Real):
        raise TypeError(
            f"{name} must be a float, got {type(margin).__name__} {margin!r}"
        )
    if not math.isfinite(margin) or margin < 0:
        raise ValueError(f"{name} must be finite and non-negative, got {margin}")
    return float(margin)


def _check_positive(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a float, got {type(value).__name__} {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be finite and positive, got {value}")
    return float(value)


def _check_two_classes(labels: Tensor, loss: str) -> None:
    """Reject (eagerly) a non-empty batch of a single class: nothing to contrast."""
    values = _concrete(labels)
    if values is not None and values.size > 0 and values.min() == values.max():
        raise ValueError(
            f"{loss} needs at least two classes in a batch, got only class "
            f"{values.flat[0]}: build batches of P >= 2 classes"
        )


def _check_squared(squared: bool) -> bool:
    if not isinstance(squared, bool):
        raise TypeError(f"squared must be a bool, got {type(squared).__name__}")
    return squared


# Largest N such that every integer in [-N, N] is exact in the float dtype.
_EXACT_INTEGERS = {
    "bfloat16": 2**8,
    "float16": 2**11,
    "float32": 2**24,
    "float64": 2**53,
}


def _as_float(x: ArrayLike, name: str) -> Tensor:
    """Tensor of float32 or float64: half precision, int and bool -> float32."""
    x = ops.convert_to_tensor(x)
    dtype = keras.backend.standardize_dtype(x.dtype)
    if dtype in ("float32", "float64"):
        return x
    if "float" in dtype or "int" in dtype or dtype == "bool":
        return ops.cast(x, "float32")
    raise TypeError(f"{name} must hold real numbers (float or int), got dtype {dtype}")


def _as_embeddings(embeddings: ArrayLike) -> Tensor:
    embeddings = _as_float(embeddings, "embeddings")
    if len(embeddings.shape) != 2:
        raise ValueError(
            f"embeddings must have shape (batch, dim), got {tuple(embeddings.shape)}"
        )
    return embeddings


def _concrete(x: Tensor):
    """NumPy copy of an eager tensor; None for a symbolic one (tf.function)."""
    try:
        return ops.convert_to_numpy(x)
    except Exception:  # a graph tensor has no value yet: nothing to check
        return None


def _check_float_labels(labels: Tensor, dtype: str) -> None:
    """Reject concrete float labels that cannot be exact class ids."""
    values = _concrete(labels)
    if values is None or values.size == 0:
        return
    values = values.astype("float64")
    limit = _EXACT_INTEGERS.get(dtype, 2**24)
    if not (abs(values) < float("inf")).all():
        raise ValueError(f"labels must be finite class ids, got NaN or inf ({dtype})")
    fractional = values != values.round()
    if fractional.any():
        first = float(values[fractional][0])
        raise ValueError(f"labels must be whole-number class ids, got {first}")
    if (abs(values) >= limit).any():
        raise ValueError(
            f"{dtype} labels are exact class ids only below {limit}, got "
            f"{values[abs(values) >= limit][0]:.0f}: larger ids may have merged "
            "(in float32, 2**24 + 1 == 2**24); pass integer labels (int64) or "
            "remap the classes to 0..C-1"
        )


def _as_labels(labels: ArrayLike, batch: int | None) -> Tensor:
    """Labels as an int64 vector (compared exactly, never through int32)."""
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
    dtype = keras.backend.standardize_dtype(labels.dtype)
    if "float" in dtype:
        _check_float_labels(labels, dtype)
        labels = ops.round(labels)
    elif "int" not in dtype and dtype != "bool":
        raise TypeError(f"labels must hold integer class ids, got dtype {dtype}")
    return ops.cast(labels, "int64")


# --------------------------------------------------------------------------- #
# Distances
# --------------------------------------------------------------------------- #
def _safe_sqrt(squared_distances: Tensor) -> Tensor:
    """sqrt with a zero (not infinite) gradient where the argument is 0, any backend."""
    zero = ops.cast(ops.equal(squared_distances, 0.0), squared_distances.dtype)
    return ops.sqrt(squared_distances + zero * _EPS) * (1.0 - zero)


def pairwise_distances(embeddings: ArrayLike, squared: bool = False) -> Tensor:
    """Euclidean distances between all pairs of rows of ``embeddings``.

    Uses ``|a|^2 - 2 a.b + |b|^2`` (one matrix product), clips tiny negative
    values from round-off to 0, and takes the square root with a mask plus an
    epsilon so that the gradient stays finite (0) where two embeddings are
    identical, including each embedding with itself on the diagonal. The root
    is never taken at an exact zero (the masked entries are evaluated at
    ``sqrt(1e-16)``, whose derivative ``5e7`` is finite, then multiplied by 0),
    so this holds on every Keras backend. Masking *after* a plain ``ops.sqrt``
    is not enough: TensorFlow returns a zero gradient where the incoming
    gradient is 0, but JAX and PyTorch compute ``0 / (2 * sqrt(0))``, which is
    NaN.

    Parameters
    ----------
    embeddings : tensor or array
        Shape ``(batch, dim)``; float32 or float64 (kept), float16 or
        bfloat16 (computed in float32), int or bool (cast to float32).
    squared : bool, default False
        Return squared distances.

    Returns
    -------
    tensor
        Shape ``(batch, batch)``, float32 (float64 for float64 input),
        non-negative, zero diagonal; ``(0, 0)`` for an empty batch.

    Raises
    ------
    TypeError
        If ``squared`` is not a bool or ``embeddings`` are not real numbers.
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


def split_triplet_output(y_pred: ArrayLike, num_parts: int = 3) -> List[Tensor]:
    """Split the three-input model's concatenated output into its parts.

    Parameters
    ----------
    y_pred : tensor or array
        Shape ``(batch, 3 * dim)``: anchor, positive and negative embeddings
        side by side. ``dim`` is inferred (never hard-coded). Any dtype (kept).
    num_parts : int, default 3
        A positive int.

    Returns
    -------
    list of tensors
        ``num_parts`` tensors of shape ``(batch, dim)``, dtype of ``y_pred``.

    Raises
    ------
    TypeError
        If ``num_parts`` is not an int.
    ValueError
        If ``num_parts < 1``, ``y_pred`` is not 2-D or its width is not a
        multiple of ``num_parts``.
    """
    if isinstance(num_parts, bool) or not isinstance(num_parts, numbers.Integral):
        raise TypeError(f"num_parts must be an int, got {type(num_parts).__name__}")
    if num_parts < 1:
        raise ValueError(f"num_parts must be >= 1, got {num_parts}")
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


def triplet_pair_distances(
    y_pred: ArrayLike, squared: bool = True
) -> Tuple[Tensor, Tensor]:
    """d(a, p) and d(a, n) for each row of a concatenated triplet output.

    Parameters
    ----------
    y_pred : tensor or array
        Shape ``(batch, 3 * dim)``; float32 or float64 (kept), half precision
        or int (computed in float32).
    squared : bool, default True
        Squared Euclidean distances (the seed's choice) or plain ones.

    Returns
    -------
    (d_ap, d_an) : tuple of tensors
        Each of shape ``(batch,)``, float32 (float64 for float64 input).

    Raises
    ------
    TypeError, ValueError
        On a non-bool ``squared``, non-numeric ``y_pred`` or a bad shape.
    """
    squared = _check_squared(squared)
    a, p, n = split_triplet_output(_as_float(y_pred, "y_pred"))
    d_ap = ops.sum(ops.square(a - p), axis=-1)
    d_an = ops.sum(ops.square(a - n), axis=-1)
    if not squared:
        d_ap, d_an = _safe_sqrt(d_ap), _safe_sqrt(d_an)
    return d_ap, d_an


def offline_triplet_loss(
    y_pred: ArrayLike, margin: float = 1.0, squared: bool = True
) -> Tensor:
    """The seed's loss, per triplet: ``max(0, d(a,p) - d(a,n) + margin)``.

    Parameters
    ----------
    y_pred : tensor or array
        Shape ``(batch, 3 * dim)``, the three embeddings concatenated; half
        precision is computed in float32.
    margin : float, default 1.0
        Finite, non-negative.
    squared : bool, default True
        The seed used squared Euclidean distances.

    Returns
    -------
    tensor
        Shape ``(batch,)``, float32 (float64 for float64 input), non-negative.

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
def _masks(labels: Tensor, batch) -> Tuple[Tensor, Tensor]:
    """Boolean (B,B) positive-pair and negative-pair masks."""
    same = ops.equal(ops.expand_dims(labels, 0), ops.expand_dims(labels, 1))
    not_self = ops.logical_not(ops.cast(ops.eye(batch), "bool"))
    return ops.logical_and(same, not_self), ops.logical_not(same)


def _prepare(labels: ArrayLike, embeddings: ArrayLike, margin: float, squared: bool):
    margin = _check_margin(margin)
    squared = _check_squared(squared)
    e = _as_embeddings(embeddings)
    y = _as_labels(labels, e.shape[0])
    d = pairwise_distances(e, squared=squared)
    pos, neg = _masks(y, ops.shape(e)[0])
    return margin, d, pos, neg


def _safe_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values`` where ``mask``; 0 (not NaN) when the mask is empty."""
    mask = ops.cast(mask, values.dtype)
    return ops.sum(values * mask) / ops.maximum(ops.sum(mask), 1.0)


# --------------------------------------------------------------------------- #
# Online losses
# --------------------------------------------------------------------------- #
def batch_all_triplet_loss(
    labels: ArrayLike,
    embeddings: ArrayLike,
    margin: float = 1.0,
    squared: bool = False,
) -> Tuple[Tensor, Tensor]:
    """Batch-all loss: mean over the *active* valid triplets in the batch.

    A triplet ``(a, p, n)`` is valid when ``a != p``, ``label[a] == label[p]``
    and ``label[n] != label[a]``; its loss is ``max(0, d(a,p) - d(a,n) +
    margin)``; it is active when that loss is > 0.

    Parameters
    ----------
    labels : tensor or array
        Shape ``(batch,)`` or ``(batch, 1)``: class ids of any integer dtype
        (compared as int64, so every distinct id is its own class), or float
        holding whole numbers (exact only below 2**24 in float32).
    embeddings : tensor or array
        Shape ``(batch, dim)``; float32 or float64 (kept), float16 or
        bfloat16 (computed and returned in float32), int (cast to float32).
    margin : float, default 1.0
        Finite, non-negative.
    squared : bool, default False
        Squared Euclidean distances instead of plain ones.

    Returns
    -------
    (loss, fraction_active) : tuple of scalar tensors
        float32 (float64 for float64 embeddings). ``loss`` is 0 when no
        triplet is active (or none is valid, e.g. an empty batch);
        ``fraction_active`` = active / valid triplets (0 when none is valid).

    Raises
    ------
    TypeError, ValueError
        On bad shapes or dtypes, a negative or non-finite margin, a non-bool
        ``squared``, or (eagerly) float labels that are not exact class ids.
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
    """Per anchor: hardest positive, hardest negative, and whether both exist.

    The ``initial`` values change no result on a non-empty batch (distances
    are >= 0) but let an empty batch reduce to empty tensors instead of
    failing ("Cannot compute the max of an empty tensor").
    """
    margin, d, pos, neg = _prepare(labels, embeddings, margin, squared)
    pos_f, neg_f = ops.cast(pos, d.dtype), ops.cast(neg, d.dtype)
    hardest_pos = ops.max(d * pos_f, axis=1, initial=0.0)
    # push non-negatives above every distance before taking the min
    big = ops.stop_gradient(ops.max(d, initial=0.0) + 1.0)
    hardest_neg = ops.min(d + big * (1.0 - neg_f), axis=1, initial=float("inf"))
    has_both = ops.logical_and(ops.any(pos, axis=1), ops.any(neg, axis=1))
    return margin, hardest_pos, hardest_neg, has_both


def batch_hard_triplet_loss(
    labels: ArrayLike,
    embeddings: ArrayLike,
    margin: float = 1.0,
    squared: bool = False,
) -> Tensor:
    """Batch-hard loss (Hermans et al. 2017): hardest positive and negative.

    For each anchor that has at least one positive and one negative in the
    batch: ``max(0, max_p d(a,p) - min_n d(a,n) + margin)``; the mean over
    those anchors (0 if there is none).

    Parameters
    ----------
    labels : tensor or array
        Shape ``(batch,)`` or ``(batch, 1)``: class ids of any integer dtype
        (compared as int64, so every distinct id is its own class), or float
        holding whole numbers (exact only below 2**24 in float32).
    embeddings : tensor or array
        Shape ``(batch, dim)``; float32 or float64 (kept), float16 or
        bfloat16 (computed and returned in float32), int (cast to float32).
    margin : float, default 1.0
        Finite, non-negative.
    squared : bool, default False
        Squared Euclidean distances instead of plain ones.

    Returns
    -------
    tensor
        Scalar loss, float32 (float64 for float64 embeddings); 0 with a zero
        gradient for an empty batch.

    Raises
    ------
    TypeError, ValueError
        As :func:`batch_all_triplet_loss`.

    Notes
    -----
    Anchors without a positive (the only member of their class in the batch)
    or without a negative (every row of the batch in their class) are *left
    out* of the mean here. TensorFlow Addons' ``TripletHardLoss`` and
    omoindrot/tensorflow-triplet-loss's ``batch_hard_triplet_loss`` average
    over *all* anchors instead, with a hardest-positive distance of 0 for an
    anchor without a positive and a hardest-negative distance equal to the
    anchor's largest distance for an anchor without a negative. Example, 1-D
    embeddings ``[0, 2, 2.5]``, labels ``[0, 0, 1]``, margin 1: anchors 0 and
    1 give 0.5 and 2.5, so this loss is 1.5; anchor 2 (no positive) adds
    ``max(0 - 0.5 + 1, 0) = 0.5`` there, giving ``3.5 / 3 = 1.1667``. With
    P x K batches (``K >= 2``, ``P >= 2``) every anchor has both and the two
    conventions agree.
    """
    margin, hp, hn, ok = _hardest(labels, embeddings, margin, squared)
    return _safe_mean(ops.maximum(hp - hn + margin, 0.0), ok)


def soft_margin_triplet_loss(
    labels: ArrayLike, embeddings: ArrayLike, squared: bool = False
) -> Tensor:
    """Batch-hard loss with a soft margin: ``log(1 + exp(d_ap - d_an))``.

    As :func:`batch_hard_triplet_loss`, with the hinge replaced by softplus
    (Hermans et al. 2017), so even satisfied triplets keep a small gradient.

    Parameters
    ----------
    labels : tensor or array
        Shape ``(batch,)`` or ``(batch, 1)``: class ids of any integer dtype
        (compared as int64, so every distinct id is its own class), or float
        holding whole numbers (exact only below 2**24 in float32).
    embeddings : tensor or array
        Shape ``(batch, dim)``; float32 or float64 (kept), float16 or
        bfloat16 (computed and returned in float32), int (cast to float32).
    squared : bool, default False
        Squared Euclidean distances instead of plain ones.

    Returns
    -------
    tensor
        Scalar loss, float32 (float64 for float64 embeddings); 0 when no
        anchor has both a positive and a negative (with a zero gradient for
        an empty batch).

    Raises
    ------
    TypeError, ValueError
        As :func:`batch_all_triplet_loss`.

    Notes
    -----
    Shares batch-hard's convention: anchors without a positive or without a
    negative are left out of the mean, whereas TensorFlow Addons'
    ``TripletHardLoss(soft=True)`` averages over all anchors (hardest-positive
    distance 0 without a positive, the anchor's largest distance without a
    negative). On the example of :func:`batch_hard_triplet_loss` this loss is
    ``(softplus(-0.5) + softplus(1.5)) / 2 = 1.0877``, TFA's
    ``(2 softplus(-0.5) + softplus(1.5)) / 3 = 0.8832``.
    """
    _, hp, hn, ok = _hardest(labels, embeddings, 0.0, squared)
    return _safe_mean(ops.softplus(hp - hn), ok)


def semi_hard_triplet_loss(
    labels: ArrayLike,
    embeddings: ArrayLike,
    margin: float = 1.0,
    squared: bool = False,
) -> Tensor:
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
        Shape ``(batch,)`` or ``(batch, 1)``: class ids of any integer dtype
        (compared as int64, so every distinct id is its own class), or float
        holding whole numbers (exact only below 2**24 in float32).
    embeddings : tensor or array
        Shape ``(batch, dim)``; float32 or float64 (kept), float16 or
        bfloat16 (computed and returned in float32), int (cast to float32).
    margin : float, default 1.0
        Finite, non-negative.
    squared : bool, default False
        Squared Euclidean distances instead of plain ones.

    Returns
    -------
    tensor
        Scalar loss, float32 (float64 for float64 embeddings); 0 with a zero
        gradient for an empty batch.

    Raises
    ------
    TypeError, ValueError
        As :func:`batch_all_triplet_loss`.
    """
    margin, d, pos, neg = _prepare(labels, embeddings, margin, squared)
    neg_f = ops.cast(neg, d.dtype)
    d_ap = ops.expand_dims(d, 2)  # (a, p, 1)
    d_an = ops.expand_dims(d, 1)  # (a, 1, n)
    negs = ops.expand_dims(neg_f, 1)  # (a, 1, n)
    outside = ops.cast(ops.greater(d_an, d_ap), d.dtype) * negs  # (a, p, n)
    # initial values: no effect on a non-empty batch, no error on an empty one
    big = ops.stop_gradient(ops.max(d, initial=0.0) + 1.0)
    closest_outside = ops.min(
        d_an + big * (1.0 - outside), axis=2, initial=float("inf")
    )  # (a, p)
    farthest = ops.max(d * neg_f, axis=1, keepdims=True, initial=0.0)  # (a, 1)
    has_outside = ops.greater(ops.sum(outside, axis=2), 0.0)
    chosen = ops.where(has_outside, closest_outside, farthest)
    valid = ops.logical_and(pos, ops.expand_dims(ops.any(neg, axis=1), 1))
    return _safe_mean(ops.maximum(d - chosen + margin, 0.0), valid)


# --------------------------------------------------------------------------- #
# Diagnostics
# --------------------------------------------------------------------------- #
def triplet_diagnostics(
    labels: ArrayLike,
    embeddings: ArrayLike,
    margin: float = 1.0,
    squared: bool = False,
) -> Dict[str, Tensor]:
    """Numbers that reveal collapse and too-easy batches.

    Parameters
    ----------
    labels : tensor or array
        Shape ``(batch,)`` or ``(batch, 1)``, class ids (as in
        :func:`batch_all_triplet_loss`).
    embeddings : tensor or array
        Shape ``(batch, dim)``, float (half precision computed in float32).
    margin : float, default 1.0
        Margin used to call a triplet active.
    squared : bool, default False
        Squared Euclidean distances instead of plain ones.

    Returns
    -------
    dict of str to scalar tensor
        ``fraction_active``: share of valid triplets with a positive loss;
        ``mean_norm``: mean L2 norm of the embeddings (near 0 = collapse);
        ``mean_positive_distance`` and ``mean_negative_distance``: mean
        distance over positive and negative pairs (0 if there is none);
        ``distance_gap``: negative minus positive mean distance. All 0 for
        an empty batch.

    Raises
    ------
    TypeError, ValueError
        As :func:`batch_all_triplet_loss`.
    """
    margin, d, pos, neg = _prepare(labels, embeddings, margin, squared)
    _, frac = batch_all_triplet_loss(labels, embeddings, margin, squared)
    e = _as_embeddings(embeddings)
    mp, mn = _safe_mean(d, pos), _safe_mean(d, neg)
    norms = ops.sqrt(ops.sum(ops.square(e), axis=1))
    # the mean of no norms is NaN: report 0 for an empty batch
    mean_norm = ops.where(
        ops.greater(ops.shape(e)[0], 0), ops.mean(norms), ops.zeros((), e.dtype)
    )
    return {
        "fraction_active": frac,
        "mean_norm": mean_norm,
        "mean_positive_distance": mp,
        "mean_negative_distance": mn,
        "distance_gap": mn - mp,
    }


# --------------------------------------------------------------------------- #
# Pair and similarity losses (for transfer to unseen classes, chapter 10)
# --------------------------------------------------------------------------- #
def _l2_normalized(embeddings: Tensor) -> Tensor:
    """Rows scaled to unit length (a zero row stays zero, with finite gradients)."""
    norm = ops.sqrt(ops.maximum(ops.sum(ops.square(embeddings), axis=1), _EPS))
    return embeddings / ops.expand_dims(norm, 1)


def _contrastive_settings(
    pos_margin: float = 0.0, neg_margin: float = 1.0, squared: bool = False
) -> Dict[str, Any]:
    pos_margin = _check_margin(pos_margin, "pos_margin")
    neg_margin = _check_margin(neg_margin, "neg_margin")
    if neg_margin <= pos_margin:
        raise ValueError(
            f"neg_margin must be greater than pos_margin, got {neg_margin} <= "
            f"{pos_margin}"
        )
    return {
        "pos_margin": pos_margin,
        "neg_margin": neg_margin,
        "squared": _check_squared(squared),
    }


def _multi_similarity_settings(
    alpha: float = 2.0, beta: float = 50.0, base: float = 0.5, epsilon: float = 0.1
) -> Dict[str, Any]:
    alpha, beta = _check_positive(alpha, "alpha"), _check_positive(beta, "beta")
    epsilon = _check_margin(epsilon, "epsilon")
    if isinstance(base, bool) or not isinstance(base, numbers.Real):
        raise TypeError(f"base must be a float, got {type(base).__name__}")
    if not math.isfinite(base) or not -1.0 <= base <= 1.0:
        raise ValueError(f"base must be a cosine similarity in [-1, 1], got {base}")
    return {"alpha": alpha, "beta": beta, "base": float(base), "epsilon": epsilon}


def _supervised_contrastive_settings(temperature: float = 0.1) -> Dict[str, Any]:
    return {"temperature": _check_positive(temperature, "temperature")}


_PAIR_SETTINGS = {
    "contrastive": _contrastive_settings,
    "multi_similarity": _multi_similarity_settings,
    "supervised_contrastive": _supervised_contrastive_settings,
}


def pair_loss_settings(loss: str, **settings: Any) -> Dict[str, Any]:
    """Check a pair loss's settings without running it (plain Python, no tensors).

    What :class:`ContrastiveLoss` and its siblings check when they are built,
    and what :class:`tripletutils.training.Recipe` checks for a recipe with a
    pair loss: it starts no backend runtime, so it is safe where a process
    has yet to set its thread count.

    Parameters
    ----------
    loss : str
        ``"contrastive"``, ``"multi_similarity"`` or ``"supervised_contrastive"``.
    **settings
        Keyword arguments of :func:`contrastive_loss`, :func:`multi_similarity_loss`
        or :func:`supervised_contrastive_loss` other than ``labels`` and
        ``embeddings``; an omitted one takes the function's default.

    Returns
    -------
    dict
        Every setting of the loss, by name, checked: floats as ``float``,
        ``squared`` as ``bool``.

    Raises
    ------
    TypeError
        If ``loss`` is not a str, a setting is unknown to the loss, or a value
        has the wrong type.
    ValueError
        If ``loss`` is not a pair loss, or a value is out of range (a negative
        margin, ``neg_margin <= pos_margin``, a non-positive ``alpha``, ``beta``
        or temperature, ``base`` outside [-1, 1]).
    """
    if not isinstance(loss, str):
        raise TypeError(f"loss must be a str, got {type(loss).__name__}")
    if loss not in _PAIR_SETTINGS:
        raise ValueError(f"loss must be one of {tuple(_PAIR_SETTINGS)}, got {loss!r}")
    return _PAIR_SETTINGS[loss](**settings)


def contrastive_loss(
    labels: ArrayLike,
    embeddings: ArrayLike,
    pos_margin: float = 0.0,
    neg_margin: float = 1.0,
    squared: bool = False,
) -> Tensor:
    """Contrastive loss over every pair in the batch, with linear hinges.

    Each positive pair ``(i, j)`` (same class, ``i != j``) costs
    ``max(0, d(i,j) - pos_margin)``, each negative pair ``max(0, neg_margin -
    d(i,j))``; the loss is the mean over the positive pairs plus the mean over
    the negative pairs (0 for a kind of pair the batch lacks). This is the
    form of pytorch-metric-learning's ``ContrastiveLoss`` (which averages over
    the non-zero terms instead); Hadsell, Chopra and LeCun (2006), where the
    loss comes from, square both terms: ``d^2 / 2`` and ``max(0, m - d)^2 /
    2``. With ``squared=True`` the hinges act on squared distances.

    Parameters
    ----------
    labels : tensor or array
        Shape ``(batch,)`` or ``(batch, 1)``, integer class ids (see
        :func:`batch_all_triplet_loss`).
    embeddings : tensor or array
        Shape ``(batch, dim)``, float.
    pos_margin : float, default 0.0
        Finite, non-negative: positive pairs closer than this cost nothing.
    neg_margin : float, default 1.0
        Finite, greater than ``pos_margin``: negative pairs farther than this
        cost nothing.
    squared : bool, default False
        Squared Euclidean distances instead of plain ones.

    Returns
    -------
    scalar tensor
        float32 (float64 for float64 embeddings); finite gradients where two
        embeddings coincide (:func:`pairwise_distances`).

    Raises
    ------
    TypeError, ValueError
        On bad shapes or dtypes, a negative, non-finite or misordered margin,
        or (eagerly) a non-empty batch of one class.
    """
    pos_margin, neg_margin, squared = _contrastive_settings(
        pos_margin, neg_margin, squared
    ).values()
    e = _as_embeddings(embeddings)
    y = _as_labels(labels, e.shape[0])
    _check_two_classes(y, "contrastive_loss")
    d = pairwise_distances(e, squared=squared)
    pos, neg = _masks(y, ops.shape(e)[0])
    return _safe_mean(ops.relu(d - pos_margin), pos) + _safe_mean(
        ops.relu(neg_margin - d), neg
    )


def multi_similarity_loss(
    labels: ArrayLike,
    embeddings: ArrayLike,
    alpha: float = 2.0,
    beta: float = 50.0,
    base: float = 0.5,
    epsilon: float = 0.1,
) -> Tensor:
    """Multi-similarity loss with its pair mining (Wang et al. 2019).

    On cosine similarities ``s`` of the L2-normalised embeddings, anchor ``i``
    keeps the negatives with ``s(i,n) + epsilon > min_p s(i,p)`` and the
    positives with ``s(i,p) - epsilon < max_n s(i,n)``, and costs

    ``1/alpha log(1 + sum_p exp(-alpha (s(i,p) - base)))
    + 1/beta log(1 + sum_n exp(beta (s(i,n) - base)))``

    over the kept pairs. The loss is the mean over the anchors that have a
    positive and a negative in the batch (0 if none has).

    Parameters
    ----------
    labels : tensor or array
        Shape ``(batch,)`` or ``(batch, 1)``, integer class ids.
    embeddings : tensor or array
        Shape ``(batch, dim)``, float; normalised here (a zero row stays 0).
    alpha, beta : float, default 2.0 and 50.0
        Finite, positive: the weights of positive and negative pairs.
    base : float, default 0.5
        Finite, in [-1, 1]: the similarity the pairs are pushed around.
    epsilon : float, default 0.1
        Finite, non-negative: the mining's slack.

    Returns
    -------
    scalar tensor
        float32 (float64 for float64 embeddings).

    Raises
    ------
    TypeError, ValueError
        On bad shapes or dtypes, a non-positive ``alpha`` or ``beta``, a
        ``base`` outside [-1, 1], a negative ``epsilon``, or (eagerly) a
        non-empty batch of one class.
    """
    alpha, beta, base, epsilon = _multi_similarity_settings(
        alpha, beta, base, epsilon
    ).values()
    e = _l2_normalized(_as_embeddings(embeddings))
    y = _as_labels(labels, e.shape[0])
    _check_two_classes(y, "multi_similarity_loss")
    s = ops.matmul(e, ops.transpose(e))
    pos, neg = _masks(y, ops.shape(e)[0])
    pos_f, neg_f = ops.cast(pos, s.dtype), ops.cast(neg, s.dtype)
    # cosines lie in [-1, 1]: +2 / -2 stand for "no such pair"
    min_pos = ops.min(s * pos_f + 2.0 * (1.0 - pos_f), axis=1, keepdims=True)
    max_neg = ops.max(s * neg_f - 2.0 * (1.0 - neg_f), axis=1, keepdims=True)
    keep_neg = neg_f * ops.cast(ops.greater(s + epsilon, min_pos), s.dtype)
    keep_pos = pos_f * ops.cast(ops.less(s - epsilon, max_neg), s.dtype)
    # log(1 + sum over kept pairs of exp(x)) = softplus(logsumexp(x)), with the
    # pairs not kept at a very negative value: no exp() overflows, whatever
    # alpha, beta and base are
    off = ops.cast(-1e30, s.dtype)
    pos_x = ops.where(ops.cast(keep_pos, "bool"), -alpha * (s - base), off)
    neg_x = ops.where(ops.cast(keep_neg, "bool"), beta * (s - base), off)
    pos_term = ops.softplus(ops.logsumexp(pos_x, axis=1))
    neg_term = ops.softplus(ops.logsumexp(neg_x, axis=1))
    has_both = ops.logical_and(ops.any(pos, axis=1), ops.any(neg, axis=1))
    return _safe_mean(pos_term / alpha + neg_term / beta, has_both)


def supervised_contrastive_loss(
    labels: ArrayLike, embeddings: ArrayLike, temperature: float = 0.1
) -> Tensor:
    """Supervised contrastive loss (Khosla et al. 2020, their L_out).

    On the L2-normalised embeddings, anchor ``i`` with positives ``P(i)``
    costs ``-1/|P(i)| sum_{p in P(i)} log(exp(z_i.z_p / t) / sum_{a != i}
    exp(z_i.z_a / t))``; the loss is the mean over the anchors with at least
    one positive (0 if none has).

    Parameters
    ----------
    labels : tensor or array
        Shape ``(batch,)`` or ``(batch, 1)``, integer class ids.
    embeddings : tensor or array
        Shape ``(batch, dim)``, float; normalised here (a zero row stays 0).
    temperature : float, default 0.1
        Finite, positive.

    Returns
    -------
    scalar tensor
        float32 (float64 for float64 embeddings).

    Raises
    ------
    TypeError, ValueError
        On bad shapes or dtypes, a non-positive temperature, or (eagerly) a
        non-empty batch of one class.
    """
    temperature = _supervised_contrastive_settings(temperature)["temperature"]
    e = _l2_normalized(_as_embeddings(embeddings))
    y = _as_labels(labels, e.shape[0])
    _check_two_classes(y, "supervised_contrastive_loss")
    batch = ops.shape(e)[0]
    logits = ops.matmul(e, ops.transpose(e)) / temperature
    others = 1.0 - ops.eye(batch, dtype=logits.dtype)
    # subtract each row's largest logit over the others (a constant for the
    # gradient): every exp() is at most 1 and the largest is 1, so the sum
    # neither overflows nor underflows at small temperatures
    is_other = ops.cast(others, "bool")
    off = ops.cast(-1e30, logits.dtype)
    top = ops.max(ops.where(is_other, logits, off), axis=1, keepdims=True)
    logits = logits - ops.stop_gradient(top)
    # exp() of the others only: the anchor's own logit may exceed theirs by 2/t
    exps = ops.exp(ops.where(is_other, logits, off))
    denominator = ops.sum(exps, axis=1, keepdims=True)
    log_prob = logits - ops.log(ops.maximum(denominator, _EPS))
    pos, _ = _masks(y, batch)
    pos_f = ops.cast(pos, logits.dtype)
    mean_pos = ops.sum(log_prob * pos_f, axis=1) / ops.maximum(
        ops.sum(pos_f, axis=1), 1.0
    )
    return -_safe_mean(mean_pos, ops.any(pos, axis=1))


# --------------------------------------------------------------------------- #
# Keras Loss classes
# --------------------------------------------------------------------------- #
class _TripletLossBase(keras.losses.Loss):
    """Shared config handling for the loss classes."""

    def __init__(
        self,
        margin: float = 1.0,
        squared: bool = False,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.margin = _check_margin(margin)
        self.squared = _check_squared(squared)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"margin": self.margin, "squared": self.squared})
        return config


class _OnePerBatchMixin:
    """``__call__`` for the online losses, which give one scalar per batch.

    Keras's ``Loss.__call__`` would cast ``y_true`` to the loss dtype
    (float32), merging class ids above 2**24, and would multiply the batch's
    single value by ``sample_weight``, which then scales the whole batch
    instead of weighting samples. Here ``y_true`` is passed on as given
    (integer ids stay exact) and a ``sample_weight`` or a Keras mask is
    rejected.
    """

    def __call__(
        self, y_true: ArrayLike, y_pred: ArrayLike, sample_weight: ArrayLike = None
    ) -> Tensor:
        name = type(self).__name__
        if sample_weight is not None:
            shape = getattr(sample_weight, "shape", None)
            raise ValueError(
                f"{name} gives one loss per batch, so it cannot weight single "
                f"samples: got a sample_weight (shape {shape}); pass "
                "sample_weight=None (in model.fit: no sample weights and no "
                "class_weight); to weight classes, sample them more or less "
                "often when building batches"
            )
        if getattr(y_pred, "_keras_mask", None) is not None:
            raise ValueError(
                f"{name} does not support masked predictions (y_pred carries a "
                "Keras mask); drop the masking layer before the embedding"
            )
        with keras.name_scope(self.name):
            y_pred = ops.convert_to_tensor(y_pred, dtype=self.dtype)
            return ops.cast(self.call(y_true, y_pred), self.dtype)


@keras.saving.register_keras_serializable(package="tripletutils")
class OfflineTripletLoss(_TripletLossBase):
    """The seed's loss for the three-input model (``y_true`` is ignored).

    Parameters
    ----------
    margin : float, default 1.0
        Finite, non-negative.
    squared : bool, default True
        Squared Euclidean distances, as in the seed.
    name : str, default "offline_triplet_loss"
    **kwargs
        ``reduction`` and ``dtype`` of ``keras.losses.Loss``.

    Notes
    -----
    ``y_pred`` has shape ``(batch, 3 * dim)``; the per-triplet loss of
    :func:`offline_triplet_loss` is averaged over the batch. Keras's usual
    ``sample_weight`` applies: one weight per triplet.
    """

    def __init__(
        self,
        margin: float = 1.0,
        squared: bool = True,
        name: str = "offline_triplet_loss",
        **kwargs: Any,
    ) -> None:
        super().__init__(margin=margin, squared=squared, name=name, **kwargs)

    def call(self, y_true: ArrayLike, y_pred: ArrayLike) -> Tensor:
        return offline_triplet_loss(y_pred, self.margin, self.squared)


#: The Notes section shared by the four online Keras loss classes (appended to
#: their docstrings below).
_ONLINE_LOSS_NOTES = """
    Notes
    -----
    Call as ``loss(y_true, y_pred)`` with ``y_true`` the class ids, shape
    ``(batch,)`` or ``(batch, 1)``, and ``y_pred`` the embeddings, shape
    ``(batch, dim)``; the result is a scalar of ``dtype`` (float32 default).

    * Labels: unlike other Keras losses, ``y_true`` is *not* cast to float32,
      so integer ids (int32, int64, uint64, ...) are compared exactly, e.g.
      2**24 and 2**24 + 1 stay two classes, in eager calls and in
      ``model.fit``. Float ``y_true`` (float32 labels in the dataset) can only
      hold ids below 2**24 exactly: larger ids may already have merged before
      the loss sees them. Eager calls reject such float labels with a
      ValueError; inside ``model.fit`` (a traced graph) they cannot be checked,
      so keep labels integer or remap the classes to ``0..C-1`` first.
    * Half precision: ``y_pred`` is cast to ``dtype`` (float32 by default)
      first, so a bfloat16 or float16 model output is scored in float32.
    * ``sample_weight`` must be None: the loss mines triplets across the
      whole batch and returns one value, so a per-sample weight has no
      meaning (Keras would scale the whole batch by it). A ValueError says so;
      ``class_weight`` in ``model.fit`` is rejected the same way.
    * An empty batch gives 0 with a zero gradient.
"""


@keras.saving.register_keras_serializable(package="tripletutils")
class BatchAllTripletLoss(_OnePerBatchMixin, _TripletLossBase):
    """Keras wrapper of :func:`batch_all_triplet_loss` (``y_true`` = labels).

    Parameters
    ----------
    margin : float, default 1.0
        Finite, non-negative.
    squared : bool, default False
        Squared Euclidean distances instead of plain ones.
    name : str, default "batch_all_triplet_loss"
    **kwargs
        ``reduction`` (no effect: the loss is one scalar per batch) and
        ``dtype`` (of ``y_pred`` and of the result; default float32) of
        ``keras.losses.Loss``.
    """

    def __init__(
        self,
        margin: float = 1.0,
        squared: bool = False,
        name: str = "batch_all_triplet_loss",
        **kwargs: Any,
    ) -> None:
        super().__init__(margin=margin, squared=squared, name=name, **kwargs)

    def call(self, y_true: ArrayLike, y_pred: ArrayLike) -> Tensor:
        return batch_all_triplet_loss(y_true, y_pred, self.margin, self.squared)[0]


@keras.saving.register_keras_serializable(package="tripletutils")
class BatchHardTripletLoss(_OnePerBatchMixin, _TripletLossBase):
    """Keras wrapper of :func:`batch_hard_triplet_loss` (``y_true`` = labels).

    Anchors without a positive or a negative in the batch are left out of the
    mean, unlike TensorFlow Addons' ``TripletHardLoss``, which averages over
    all anchors; see :func:`batch_hard_triplet_loss`.

    Parameters
    ----------
    margin : float, default 1.0
        Finite, non-negative.
    squared : bool, default False
        Squared Euclidean distances instead of plain ones.
    name : str, default "batch_hard_triplet_loss"
    **kwargs
        ``reduction`` (no effect: the loss is one scalar per batch) and
        ``dtype`` (of ``y_pred`` and of the result; default float32) of
        ``keras.losses.Loss``.
    """

    def __init__(
        self,
        margin: float = 1.0,
        squared: bool = False,
        name: str = "batch_hard_triplet_loss",
        **kwargs: Any,
    ) -> None:
        super().__init__(margin=margin, squared=squared, name=name, **kwargs)

    def call(self, y_true: ArrayLike, y_pred: ArrayLike) -> Tensor:
        return batch_hard_triplet_loss(y_true, y_pred, self.margin, self.squared)


@keras.saving.register_keras_serializable(package="tripletutils")
class SemiHardTripletLoss(_OnePerBatchMixin, _TripletLossBase):
    """Keras wrapper of :func:`semi_hard_triplet_loss` (``y_true`` = labels).

    The mining rule is TensorFlow Addons' ``TripletSemiHardLoss``, not FaceNet's
    selection; see :func:`semi_hard_triplet_loss`.

    Parameters
    ----------
    margin : float, default 1.0
        Finite, non-negative.
    squared : bool, default False
        Squared Euclidean distances instead of plain ones.
    name : str, default "semi_hard_triplet_loss"
    **kwargs
        ``reduction`` (no effect: the loss is one scalar per batch) and
        ``dtype`` (of ``y_pred`` and of the result; default float32) of
        ``keras.losses.Loss``.
    """

    def __init__(
        self,
        margin: float = 1.0,
        squared: bool = False,
        name: str = "semi_hard_triplet_loss",
        **kwargs: Any,
    ) -> None:
        super().__init__(margin=margin, squared=squared, name=name, **kwargs)

    def call(self, y_true: ArrayLike, y_pred: ArrayLike) -> Tensor:
        return semi_hard_triplet_loss(y_true, y_pred, self.margin, self.squared)


@keras.saving.register_keras_serializable(package="tripletutils")
class SoftMarginTripletLoss(_OnePerBatchMixin, keras.losses.Loss):
    """Keras wrapper of :func:`soft_margin_triplet_loss` (``y_true`` = labels).

    Anchors without a positive or a negative in the batch are left out of the
    mean, unlike TensorFlow Addons' ``TripletHardLoss(soft=True)``; see
    :func:`soft_margin_triplet_loss`.

    Parameters
    ----------
    squared : bool, default False
        Squared Euclidean distances instead of plain ones.
    name : str, default "soft_margin_triplet_loss"
    **kwargs
        ``reduction`` (no effect: the loss is one scalar per batch) and
        ``dtype`` (of ``y_pred`` and of the result; default float32) of
        ``keras.losses.Loss``.
    """

    def __init__(
        self,
        squared: bool = False,
        name: str = "soft_margin_triplet_loss",
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.squared = _check_squared(squared)

    def call(self, y_true: ArrayLike, y_pred: ArrayLike) -> Tensor:
        return soft_margin_triplet_loss(y_true, y_pred, self.squared)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"squared": self.squared})
        return config


class _PairLossBase(_OnePerBatchMixin, keras.losses.Loss):
    """A Keras ``Loss`` around one of the pair losses, its settings in ``config``."""

    _fn: Any = None
    _loss = ""
    _defaults: Dict[str, Any] = {}

    def __init__(self, name: str, **kwargs: Any) -> None:
        settings = {k: kwargs.pop(k, v) for k, v in self._defaults.items()}
        super().__init__(name=name, **kwargs)
        self.settings = pair_loss_settings(self._loss, **settings)

    def call(self, y_true: ArrayLike, y_pred: ArrayLike) -> Tensor:
        return type(self)._fn(y_true, y_pred, **self.settings)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(self.settings)
        return config


@keras.saving.register_keras_serializable(package="tripletutils")
class ContrastiveLoss(_PairLossBase):
    """Keras wrapper of :func:`contrastive_loss` (``y_true`` = labels).

    Parameters
    ----------
    pos_margin : float, default 0.0
    neg_margin : float, default 1.0
    squared : bool, default False
    name : str, default "contrastive_loss"
    **kwargs
        ``reduction`` (no effect) and ``dtype`` of ``keras.losses.Loss``.
    """

    _fn = staticmethod(contrastive_loss)
    _loss = "contrastive"
    _defaults = {"pos_margin": 0.0, "neg_margin": 1.0, "squared": False}

    def __init__(self, name: str = "contrastive_loss", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)


@keras.saving.register_keras_serializable(package="tripletutils")
class MultiSimilarityLoss(_PairLossBase):
    """Keras wrapper of :func:`multi_similarity_loss` (``y_true`` = labels).

    Parameters
    ----------
    alpha : float, default 2.0
    beta : float, default 50.0
    base : float, default 0.5
    epsilon : float, default 0.1
    name : str, default "multi_similarity_loss"
    **kwargs
        ``reduction`` (no effect) and ``dtype`` of ``keras.losses.Loss``.
    """

    _fn = staticmethod(multi_similarity_loss)
    _loss = "multi_similarity"
    _defaults = {"alpha": 2.0, "beta": 50.0, "base": 0.5, "epsilon": 0.1}

    def __init__(self, name: str = "multi_similarity_loss", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)


@keras.saving.register_keras_serializable(package="tripletutils")
class SupervisedContrastiveLoss(_PairLossBase):
    """Keras wrapper of :func:`supervised_contrastive_loss` (``y_true`` = labels).

    Parameters
    ----------
    temperature : float, default 0.1
    name : str, default "supervised_contrastive_loss"
    **kwargs
        ``reduction`` (no effect) and ``dtype`` of ``keras.losses.Loss``.
    """

    _fn = staticmethod(supervised_contrastive_loss)
    _loss = "supervised_contrastive"
    _defaults = {"temperature": 0.1}

    def __init__(
        self, name: str = "supervised_contrastive_loss", **kwargs: Any
    ) -> None:
        super().__init__(name=name, **kwargs)


for _cls in (
    BatchAllTripletLoss,
    BatchHardTripletLoss,
    SemiHardTripletLoss,
    SoftMarginTripletLoss,
    ContrastiveLoss,
    MultiSimilarityLoss,
    SupervisedContrastiveLoss,
):
    if _cls.__doc__ is not None:  # python -OO strips docstrings
        _cls.__doc__ += _ONLINE_LOSS_NOTES
del _cls
