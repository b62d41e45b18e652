"""Contrastive, multi-similarity and supervised contrastive losses against NumPy.

Backend-agnostic: ``make test-backends`` runs this file on JAX and PyTorch too
(``KERAS_BACKEND``), where gradients come from each backend's own autodiff.
"""

import itertools

import keras
import numpy as np
import pytest

from tripletutils.losses import (
    ContrastiveLoss,
    MultiSimilarityLoss,
    SupervisedContrastiveLoss,
    contrastive_loss,
    multi_similarity_loss,
    supervised_contrastive_loss,
)


# ----------------------------------------------------------------- references
def np_contrastive(y, e, pos_margin, neg_margin, squared):
    pos, neg = [], []
    for i, j in itertools.permutations(range(len(y)), 2):
        d = np.sum((e[i] - e[j]) ** 2)
        d = d if squared else np.sqrt(d)
        if y[i] == y[j]:
            pos.append(max(0.0, d - pos_margin))
        else:
            neg.append(max(0.0, neg_margin - d))
    return (np.mean(pos) if pos else 0.0) + (np.mean(neg) if neg else 0.0)


def _unit(e):
    return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-8)


def np_multi_similarity(y, e, alpha, beta, base, eps):
    z = _unit(e)
    s = z @ z.T
    losses = []
    for i in range(len(y)):
        p = [j for j in range(len(y)) if j != i and y[j] == y[i]]
        n = [j for j in range(len(y)) if y[j] != y[i]]
        if not p or not n:
            continue
        kept_n = [j for j in n if s[i, j] + eps > min(s[i, p])]
        kept_p = [j for j in p if s[i, j] - eps < max(s[i, n])]
        pos = np.log1p(sum(np.exp(-alpha * (s[i, j] - base)) for j in kept_p)) / alpha
        neg = np.log1p(sum(np.exp(beta * (s[i, j] - base)) for j in kept_n)) / beta
        losses.append(pos + neg)
    return np.mean(losses) if losses else 0.0


def np_supcon(y, e, t):
    z = _unit(e)
    losses = []
    for i in range(len(y)):
        p = [j for j in range(len(y)) if j != i and y[j] == y[i]]
        if not p:
            continue
        logits = np.array([z[i] @ z[a] / t for a in range(len(y)) if a != i])
        # log-sum-exp shifted by its maximum: exact at any temperature
        log_den = logits.max() + np.log(np.exp(logits - logits.max()).sum())
        losses.append(-np.mean([z[i] @ z[j] / t - log_den for j in p]))
    return np.mean(losses) if losses else 0.0


# A small hand-made batch: 3 classes, a duplicated point (zero distance), a
# class with a single member (an anchor without a positive).
Y = np.array([0, 0, 1, 1, 1, 2])
E = np.array(
    [
        [1.0, 0.0, 0.2],
        [1.0, 0.0, 0.2],  # identical to the first: distance 0
        [0.0, 1.0, 0.1],
        [0.3, 0.9, 0.0],
        [-0.2, 0.8, 0.4],
        [0.1, -1.0, 0.5],
    ]
)

CASES = [
    (
        contrastive_loss,
        np_contrastive,
        dict(pos_margin=0.0, neg_margin=1.0, squared=False),
    ),
    (
        contrastive_loss,
        np_contrastive,
        dict(pos_margin=0.1, neg_margin=1.5, squared=True),
    ),
    (
        multi_similarity_loss,
        np_multi_similarity,
        dict(alpha=2.0, beta=50.0, base=0.5, epsilon=0.1),
    ),
    (
        multi_similarity_loss,
        np_multi_similarity,
        dict(alpha=1.0, beta=10.0, base=0.0, epsilon=0.5),
    ),
    (supervised_contrastive_loss, np_supcon, dict(temperature=0.1)),
    (supervised_contrastive_loss, np_supcon, dict(temperature=1.0)),
]


def _ref(ref, y, e, kwargs):
    return ref(y, e, *kwargs.values())


def _gradient(loss_of, e):
    """d loss_of(x) / dx at ``e`` (a NumPy array), by the backend's autodiff."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.Variable(e)
        with tf.GradientTape() as tape:
            loss = loss_of(x)
        return tape.gradient(loss, x).numpy()
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(lambda x: loss_of(x))(jax.numpy.asarray(e)))
    if backend == "torch":
        import torch

        x = torch.tensor(e, requires_grad=True)
        loss_of(x).backward()
        return x.grad.numpy()
    raise NotImplementedError(f"no gradient for the {backend} backend")


def test_the_gradient_helper_differentiates_on_this_backend():
    e = np.array([[1.0, -2.0], [0.5, 3.0]])
    grad = _gradient(lambda x: keras.ops.sum(x**2), e)  # d sum(x^2) = 2x
    np.testing.assert_allclose(grad, 2 * e)


@pytest.mark.parametrize("fn, ref, kwargs", CASES)
def test_values_match_the_numpy_reference(fn, ref, kwargs):
    got = float(fn(Y, E, **kwargs))
    assert got == pytest.approx(_ref(ref, Y, E, kwargs), rel=1e-5, abs=1e-6)
    rng = np.random.default_rng(3)
    for _ in range(3):  # random batches too
        y = rng.integers(0, 3, 10)
        y[:2] = [0, 1]  # at least two classes
        e = rng.normal(size=(10, 4))
        got = float(fn(y, e, **kwargs))
        assert got == pytest.approx(_ref(ref, y, e, kwargs), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("fn, ref, kwargs", CASES)
def test_gradients_match_finite_differences_and_are_finite_at_zero_distance(
    fn, ref, kwargs
):
    grad = _gradient(lambda x: fn(Y, x, **kwargs), E)  # float64: central differences
    assert np.all(np.isfinite(grad))  # rows 0 and 1 coincide
    h = 1e-6
    numeric = np.zeros_like(E)
    for idx in np.ndindex(E.shape):
        if fn is contrastive_loss and idx[0] in (0, 1) and not kwargs["squared"]:
            continue  # |x| has no derivative at 0: only finiteness is asked there
        up, down = E.copy(), E.copy()
        up[idx] += h
        down[idx] -= h
        numeric[idx] = (_ref(ref, Y, up, kwargs) - _ref(ref, Y, down, kwargs)) / (2 * h)
        assert grad[idx] == pytest.approx(numeric[idx], rel=1e-4, abs=1e-6), idx


def test_losses_reward_separated_classes():
    y = np.array([0, 0, 1, 1])
    apart = np.array([[1.0, 0.0], [1.0, 0.01], [-1.0, 0.0], [-1.0, 0.01]])
    mixed = apart[[0, 2, 1, 3]]
    for fn in (contrastive_loss, multi_similarity_loss, supervised_contrastive_loss):
        assert float(fn(y, apart)) < float(fn(y, mixed)), fn.__name__


@pytest.mark.parametrize(
    "fn, kwargs, error, match",
    [
        (contrastive_loss, dict(neg_margin=-1.0), ValueError, "neg_margin must be"),
        (contrastive_loss, dict(pos_margin=1.0, neg_margin=0.5), ValueError, "greater"),
        (contrastive_loss, dict(squared=1), TypeError, "squared must be a bool"),
        (multi_similarity_loss, dict(alpha=0.0), ValueError, "alpha must be finite"),
        (multi_similarity_loss, dict(beta=-1.0), ValueError, "beta must be finite"),
        (multi_similarity_loss, dict(base=2.0), ValueError, r"\[-1, 1\]"),
        (multi_similarity_loss, dict(epsilon=-0.1), ValueError, "epsilon must be"),
        (
            supervised_contrastive_loss,
            dict(temperature=-0.1),
            ValueError,
            "temperature",
        ),
        (
            supervised_contrastive_loss,
            dict(temperature="hot"),
            TypeError,
            "temperature",
        ),
    ],
)
def test_bad_settings_raise(fn, kwargs, error, match):
    with pytest.raises(error, match=match):
        fn(Y, E, **kwargs)


@pytest.mark.parametrize(
    "fn", [contrastive_loss, multi_similarity_loss, supervised_contrastive_loss]
)
def test_bad_batches_raise(fn):
    with pytest.raises(ValueError, match="at least two classes"):
        fn(np.zeros(4, int), E[:4])
    with pytest.raises(ValueError, match=r"shape \(batch, dim\)"):
        fn(Y, E[:, 0])
    with pytest.raises(ValueError, match="same batch size"):
        fn(Y[:5], E)


@pytest.mark.xfail(
    keras.backend.backend() != "tensorflow",
    reason="JAX and PyTorch refuse string labels while converting them, before "
    "the loss checks them, with their own errors: PyTorch ValueError('Invalid "
    "dtype: str32'), JAX a TypeError that names no labels (issue #29, conventions)",
    raises=(ValueError, AssertionError),
    strict=True,
)
@pytest.mark.parametrize(
    "fn", [contrastive_loss, multi_similarity_loss, supervised_contrastive_loss]
)
def test_string_labels_raise_a_type_error(fn):
    with pytest.raises(TypeError, match="integer class ids"):
        fn(np.array(["a", "b", "a", "b", "a", "b"]), E)


@pytest.mark.parametrize(
    "cls, kwargs, fn",
    [
        (ContrastiveLoss, dict(neg_margin=1.5), contrastive_loss),
        (MultiSimilarityLoss, dict(beta=20.0), multi_similarity_loss),
        (SupervisedContrastiveLoss, dict(temperature=0.5), supervised_contrastive_loss),
    ],
)
def test_loss_classes_wrap_the_functions_and_round_trip(cls, kwargs, fn):
    loss = cls(**kwargs)
    assert float(loss(Y, E)) == pytest.approx(float(fn(Y, E, **kwargs)), rel=1e-5)
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(again) is cls and again.get_config() == loss.get_config()
    with pytest.raises(ValueError, match="sample_weight"):
        loss(Y, E, sample_weight=np.ones(6))
    bad = {k: -1.0 for k in kwargs}
    with pytest.raises(ValueError):
        cls(**bad)  # settings are checked when the loss is made


def test_a_model_trains_with_each_loss():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 16)
    x = rng.normal(size=(64, 8)).astype("float32") + 2.0 * np.eye(8)[y * 2]
    for cls in (ContrastiveLoss, MultiSimilarityLoss, SupervisedContrastiveLoss):
        keras.utils.set_random_seed(0)
        net = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
        net.compile(optimizer=keras.optimizers.Adam(1e-2), loss=cls())
        history = net.fit(x, y, batch_size=32, epochs=15, verbose=0, shuffle=True)
        losses = history.history["loss"]
        assert np.isfinite(losses).all() and losses[-1] < losses[0], cls.__name__


def test_no_overflow_or_underflow_in_float32_at_extreme_settings():
    e = E.astype("float32")
    e[5] = 0.0  # a zero row: normalised to zero
    # exp(beta (s - base)) would be exp(100) at s = 1: inf in float32
    ms = multi_similarity_loss(Y, keras.ops.convert_to_tensor(e), beta=100.0, base=0.0)
    ref = np_multi_similarity(Y, E * (np.arange(6) != 5)[:, None], 2.0, 100.0, 0.0, 0.1)
    assert np.isfinite(float(ms)) and float(ms) == pytest.approx(ref, rel=1e-4)

    # exp(s / t) at t = 0.005 underflows unless each row is shifted by its maximum
    zeroed = E * (np.arange(6) != 1)[:, None]  # anchor 1: a zero row
    z32 = keras.ops.convert_to_tensor(zeroed.astype("float32"))
    sc = supervised_contrastive_loss(Y, z32, 0.005)
    assert float(sc) == pytest.approx(np_supcon(Y, zeroed, 0.005), rel=1e-4)
    for fn in (contrastive_loss, multi_similarity_loss, supervised_contrastive_loss):
        grad = _gradient(lambda x: fn(Y, x), zeroed.astype("float32"))
        assert np.all(np.isfinite(grad)), fn.__name__
