"""The book's named recipes and the model cache (key, atomic writes, bad files)."""

import dataclasses
import json

import numpy as np
import pytest

from tripletutils.evaluation import embed
from tripletutils.models import build_embedding_net
from tripletutils.recipes import (
    BEST_FIT_RECIPE,
    BEST_RECIPE,
    FAST_IMPROVED_RECIPE,
    FAST_SEED_RECIPE,
    IMPROVED_RECIPE,
    SEED_RECIPE,
    cached_training,
    load_or_train,
)
from tripletutils.training import Recipe


def test_recipes_differ_only_where_documented():
    a, b = dataclasses.asdict(SEED_RECIPE), dataclasses.asdict(IMPROVED_RECIPE)
    assert {k for k in a if a[k] != b[k]} == {
        "name",
        "mining",
        "raw_pixels",
        "activation",
        "l2_normalize",
    }
    assert SEED_RECIPE.margin == 1.0 and SEED_RECIPE.squared
    assert SEED_RECIPE.batch_size == 32 and SEED_RECIPE.epochs == 2
    assert SEED_RECIPE.steps is None and not SEED_RECIPE.cosine_decay
    assert SEED_RECIPE.activation == "relu" and SEED_RECIPE.raw_pixels
    assert BEST_RECIPE.network == "lenet" and BEST_RECIPE.steps == 2000


SPEED = {"loop", "fused", "steps_per_execution", "precision"}


@pytest.mark.parametrize(
    "plain, other",
    [
        (SEED_RECIPE, FAST_SEED_RECIPE),
        (IMPROVED_RECIPE, FAST_IMPROVED_RECIPE),
        (BEST_RECIPE, BEST_FIT_RECIPE),
    ],
)
def test_speed_variants_change_only_speed_settings(plain, other):
    a, b = dataclasses.asdict(plain), dataclasses.asdict(other)
    assert {k for k in a if a[k] != b[k]} <= SPEED | {"name"}
    assert a["name"] != b["name"]  # their own files in the cache


def test_the_two_fast_recipes_share_their_speed_settings():
    a, b = (
        dataclasses.asdict(FAST_SEED_RECIPE),
        dataclasses.asdict(FAST_IMPROVED_RECIPE),
    )
    assert {k: a[k] for k in SPEED} == {k: b[k] for k in SPEED}
    assert FAST_SEED_RECIPE.loop == "compiled" and FAST_SEED_RECIPE.fused


def _tiny_net(seed):
    return build_embedding_net(embedding_dim=4, seed=seed)


def test_cached_training_key_decides_load_or_train(tmp_path):
    calls = []

    def train_fn():
        calls.append(1)
        return _tiny_net(len(calls)), {"step_loss": [1.0, 0.5]}

    net, hist, trained = cached_training(
        "r", {"seed": 0, "data": "abc"}, train_fn, artifacts=tmp_path
    )
    assert trained and calls == [1] and hist["seed"] == 0 and hist["data"] == "abc"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "r_embedding.keras",
        "r_history.json",
    ]  # no temporary file left behind
    loaded, hist2, trained2 = cached_training(
        "r", {"seed": 0, "data": "abc"}, train_fn, artifacts=tmp_path
    )
    assert not trained2 and calls == [1] and hist2 == hist
    x = np.ones((2, 28, 28, 1), np.float32)
    np.testing.assert_allclose(embed(loaded, x), embed(net, x), atol=1e-6)
    # one changed entry of the key, or retrain=True: trained again
    key = {"seed": 0, "data": "xyz"}
    assert cached_training("r", key, train_fn, artifacts=tmp_path)[2]
    assert calls == [1, 1]
    assert cached_training("r", key, train_fn, artifacts=tmp_path, retrain=True)[2]
    assert len(calls) == 3
    # a tuple in the key compares as the list JSON reads back: loaded
    assert cached_training("t", {"s": (1, 2)}, train_fn, artifacts=tmp_path)[2]
    assert not cached_training("t", {"s": (1, 2)}, train_fn, artifacts=tmp_path)[2]
    with pytest.raises(TypeError, match="key must be a dict"):
        cached_training("r", [("seed", 0)], train_fn, artifacts=tmp_path)
    with pytest.raises(TypeError, match="train_fn must be callable"):
        cached_training("r", {}, None, artifacts=tmp_path)
    with pytest.raises(TypeError, match="name must be a non-empty str"):
        cached_training("", {}, train_fn, artifacts=tmp_path)


def test_interrupted_save_leaves_no_history_pointing_at_it(tmp_path):
    def good():
        return _tiny_net(0), {"step_loss": [1.0]}

    cached_training("r", {"seed": 0}, good, artifacts=tmp_path)
    before = (tmp_path / "r_embedding.keras").read_bytes()

    class Interrupted(Exception):
        pass

    def interrupted_save(path):
        path.write_bytes(b"PK\x03\x04 half a zip")  # the temporary file, partly
        raise Interrupted

    def bad():
        net = _tiny_net(1)
        net.save = interrupted_save  # Ctrl-C or a full disk while saving
        return net, {"step_loss": [2.0]}

    with pytest.raises(Interrupted):
        cached_training("r", {"seed": 0}, bad, artifacts=tmp_path, retrain=True)
    # the old network is intact, no partial file is left, and no history claims
    # the interrupted run: the next call trains again instead of loading
    assert (tmp_path / "r_embedding.keras").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r_embedding.keras"]
    _, _, trained = cached_training("r", {"seed": 0}, good, artifacts=tmp_path)
    assert trained


def test_unloadable_cached_file_is_retrained_with_one_line(tmp_path, capsys):
    def train_fn():
        return _tiny_net(0), {"step_loss": [1.0]}

    cached_training("r", {"seed": 0}, train_fn, artifacts=tmp_path)
    path = tmp_path / "r_embedding.keras"
    path.write_bytes(path.read_bytes()[:100])  # truncated by hand
    net, _, trained = cached_training("r", {"seed": 0}, train_fn, artifacts=tmp_path)
    out = capsys.readouterr().out.strip().splitlines()
    assert trained and len(out) == 1
    assert (
        "r_embedding.keras could not be loaded" in out[0] and "training again" in out[0]
    )
    _, _, trained2 = cached_training("r", {"seed": 0}, train_fn, artifacts=tmp_path)
    assert not trained2  # repaired
    (tmp_path / "r_history.json").write_text("{not json")
    assert cached_training("r", {"seed": 0}, train_fn, artifacts=tmp_path)[2]


@pytest.mark.slow
@pytest.mark.parametrize(
    "recipe",
    [
        dataclasses.replace(SEED_RECIPE, epochs=1),
        dataclasses.replace(IMPROVED_RECIPE, epochs=1),
        Recipe("tiny", mining="batch_hard", p=4, k=4, steps=3, embedding_dim=8),
    ],
    ids=["seed", "improved", "batch_hard"],
)
def test_load_or_train_trains_then_loads(tiny_data, tmp_path, recipe):
    x, y = tiny_data()
    xv, yv = tiny_data(80, seed=1)
    every = {"validate_every": 2} if recipe.triplet_model else {"monitor_every": 2}
    net, hist, trained = load_or_train(recipe, x, y, xv, yv, tmp_path, **every)
    assert trained
    assert len(hist["step_loss"]) >= 3 and np.all(np.isfinite(hist["step_loss"]))
    net2, hist2, trained2 = load_or_train(recipe, x, y, xv, yv, tmp_path, **every)
    assert not trained2
    assert hist2["step_loss"] == hist["step_loss"]
    np.testing.assert_allclose(embed(net2, x[:4]), embed(net, x[:4]), atol=1e-6)
    # another seed is a different model: retrained, not loaded
    _, _, trained3 = load_or_train(recipe, x, y, xv, yv, tmp_path, seed=1, **every)
    assert trained3
    saved = json.loads((tmp_path / f"{recipe.name}_history.json").read_text())
    assert saved["seed"] == 1
    # another split of the data is a different model too
    _, _, trained4 = load_or_train(
        recipe, x[:200], y[:200], xv, yv, tmp_path, seed=1, **every
    )
    assert trained4
    # a history that records other things is retrained, not returned without them
    _, hist5, trained5 = load_or_train(
        recipe, x[:200], y[:200], xv, yv, tmp_path, seed=1
    )
    assert trained5 and "monitor" not in hist5 and "val_loss" not in hist5


@pytest.mark.slow
@pytest.mark.parametrize(
    "change",
    [
        dict(fused=True),
        dict(precision="mixed_bfloat16"),
        dict(steps_per_execution=2),
        dict(network="lenet"),
        dict(embedding_dim=16),
        dict(dropout=0.0),
    ],
    ids=lambda c: next(iter(c)),
)
def test_every_recipe_field_is_in_the_cache_key(tiny_data, tmp_path, change):
    x, y = tiny_data()
    base = Recipe("k", mining="random_triplets", p=4, k=6, steps=2, embedding_dim=8)
    load_or_train(base, x, y, artifacts=tmp_path)
    assert not load_or_train(base, x, y, artifacts=tmp_path)[2]
    _, hist, trained = load_or_train(
        dataclasses.replace(base, **change), x, y, artifacts=tmp_path
    )
    assert trained, f"{change} loaded a model trained without it"
    assert all(hist["recipe"][k] == v for k, v in change.items())


def test_load_or_train_rejects_bad_input(tiny_data, tmp_path):
    x, y = tiny_data(40)
    with pytest.raises(TypeError, match="recipe must be a Recipe"):
        load_or_train("seed", x, y, artifacts=tmp_path)
    with pytest.raises(TypeError, match="numpy arrays"):
        load_or_train(SEED_RECIPE, x.tolist(), y, artifacts=tmp_path)
    with pytest.raises(TypeError, match="unexpected keyword"):
        load_or_train(SEED_RECIPE, x, y, artifacts=tmp_path, net=None)


def test_missing_key_entries_do_not_match(tmp_path):
    def train_fn():
        return _tiny_net(0), {"step_loss": [1.0]}

    cached_training("r", {"seed": 0}, train_fn, artifacts=tmp_path)
    # a key entry whose value is None is not matched by a history without it
    assert cached_training("r", {"seed": 0, "strategy": None}, train_fn, tmp_path)[2]
