"""Repeated runs: intervals against hand computations, the results file round trip."""

import math

import numpy as np
import pytest

from tripletutils import experiments as X


def test_t_interval_hand_computed():
    r = X.t_interval([1.0, 2.0, 3.0])
    # t_{0.975, 2} = 4.302652729911275 (tables); sd = 1
    half = 4.302652729911275 / math.sqrt(3)
    assert r["n"] == 3 and r["mean"] == 2.0 and r["sd"] == pytest.approx(1.0)
    assert r["low"] == pytest.approx(2.0 - half) and r["high"] == pytest.approx(
        2 + half
    )
    r90 = X.t_interval([1.0, 2.0, 3.0], confidence=0.9)  # t_{0.95, 2} = 2.919986
    assert r90["high"] - 2.0 == pytest.approx(2.919985580355516 / math.sqrt(3))


@pytest.mark.parametrize(
    "values, confidence, error, match",
    [
        ([1.0], 0.95, ValueError, "at least 2"),
        ([[1.0, 2.0]], 0.95, ValueError, "1-D"),
        ([1.0, float("nan")], 0.95, ValueError, "1 non-finite"),
        ([1.0, 2.0], 1.0, ValueError, r"in \(0, 1\)"),
        ([1.0, 2.0], "high", TypeError, "confidence must be a float"),
    ],
)
def test_t_interval_rejects_bad_input(values, confidence, error, match):
    with pytest.raises(error, match=match):
        X.t_interval(values, confidence)


def test_bootstrap_interval_covers_the_mean_and_is_seeded():
    hits = np.r_[np.ones(970), np.zeros(30)]  # an accuracy of 0.97 on 1,000 queries
    r = X.bootstrap_interval(hits, seed=0)
    assert r["mean"] == pytest.approx(0.97) and r["n"] == 1000
    # the normal approximation: 0.97 -/+ 1.96 * sqrt(0.97 * 0.03 / 1000)
    half = 1.96 * math.sqrt(0.97 * 0.03 / 1000)
    assert r["low"] == pytest.approx(0.97 - half, abs=3e-3)
    assert r["high"] == pytest.approx(0.97 + half, abs=3e-3)
    assert X.bootstrap_interval(hits, seed=0) == r
    with pytest.raises(ValueError, match="resamples"):
        X.bootstrap_interval(hits, resamples=10)


def _tiny_mnist():
    rng = np.random.default_rng(0)

    def part(n):
        y = np.arange(n) % 10
        x = rng.random((n, 28, 28, 1)).astype(np.float32) * 0.2
        for i, c in enumerate(y):
            x[i, 2 * c : 2 * c + 3, :, 0] += 0.8
        return x, y.astype(np.uint8)

    return part(400), part(200)


def test_compare_intervals_follows_the_books_rule():
    a = {"low": 0.90, "high": 0.95}
    assert X.compare_intervals({"low": 0.96, "high": 0.99}, a) == 1  # wholly above
    assert X.compare_intervals(a, {"low": 0.96, "high": 0.99}) == -1
    assert X.compare_intervals(a, {"low": 0.94, "high": 0.99}) == 0  # overlap
    assert X.compare_intervals(a, {"low": 0.95, "high": 0.99}) == 0  # touching
    assert X.compare_intervals(a, {"low": 0.91, "high": 0.92}) == 0  # inside
    assert X.compare_intervals(a, a) == 0
    # the dicts of t_interval, with a mean and more: only low and high count
    hi = X.t_interval([0.99, 0.991, 0.992])
    lo = X.t_interval([0.95, 0.951, 0.952])
    assert X.compare_intervals(hi, lo) == 1 and X.compare_intervals(lo, hi) == -1
    # a row of a table (pandas Series) works too
    pd = pytest.importorskip("pandas")
    assert X.compare_intervals(pd.Series(hi), pd.Series(lo)) == 1


@pytest.mark.parametrize(
    "a, error, match",
    [
        ({"low": 0.9}, TypeError, "must have 'low' and 'high'"),
        ((0.9, 0.95), TypeError, "must have 'low' and 'high'"),
        ({"low": "x", "high": 0.95}, TypeError, "must be numbers"),
        ({"low": 0.96, "high": 0.95}, ValueError, "low > high"),
        ({"low": math.nan, "high": 0.95}, ValueError, "must be finite"),
    ],
)
def test_compare_intervals_rejects_bad_input(a, error, match):
    with pytest.raises(error, match=match):
        X.compare_intervals(a, {"low": 0.9, "high": 0.95})
    with pytest.raises(error, match=match):
        X.compare_intervals({"low": 0.9, "high": 0.95}, a)


@pytest.mark.slow
def test_seed_reproduction_runs_record_what_chapter_5_reads():
    mnist = _tiny_mnist()
    out = {
        p: X._seed_reproduction_run(p, 0, mnist)
        for p in ("seed_protocol", "book_split")
    }
    for m in out.values():
        assert 0.0 <= m["seed_metric"] <= 1.0 and len(m["per_class"]) == 10
        assert np.mean(m["per_class"]) == pytest.approx(m["seed_metric"])
        assert m["precision"] == "float32"
    assert out["seed_protocol"]["train_triplets"] > out["book_split"]["train_triplets"]
    # chapter 4's validation triplets: only the book's split has a validation part
    assert 0.0 <= out["book_split"]["val_seed_metric"] <= 1.0
    assert "val_seed_metric" not in out["seed_protocol"]
    again = X._seed_reproduction_run("book_split", 0, mnist)  # deterministic on CPU
    assert again["seed_metric"] == out["book_split"]["seed_metric"]
    assert again["val_seed_metric"] == out["book_split"]["val_seed_metric"]


def test_online_mining_configs_give_every_scheme_every_margin_once():
    configs = X._mining_configs()
    keys = [(c["mining"], c["margin"], c["l2_normalize"]) for c in configs]
    assert len(keys) == len(set(keys)) == 19
    assert list(X.EXPERIMENTS["online_mining"].candidates) == [
        X._mining_key(c) for c in configs
    ]
    for scheme in X.MINING_SCHEMES_COMPARED:
        tried = {m for s, m, l2 in keys if s == scheme and l2}
        if scheme == "soft_margin":
            assert tried == {None}  # no margin to choose
        else:
            assert set(X.MINING_MARGINS) <= tried, scheme
    for l2, margin in X.L2_MARGIN_GRID:
        assert ("batch_all", margin, l2) in keys
    assert X.MINING_BASE.loop == "compiled" and X.MINING_BASE.precision == "float32"


def test_fast_loop_compares_chapter_4s_recipes_on_the_books_split():
    import dataclasses

    exp = X.EXPERIMENTS["fast_loop"]
    assert exp.seeds == tuple(range(5))
    trains = {
        "seed_fast": (X.FAST_SEED_RECIPE, "all 60,000"),
        "seed_fast_split": (X.FAST_SEED_RECIPE, X._SPLIT),
        "improved_plain": (X.IMPROVED_RECIPE, X._SPLIT),
        "improved_fast": (X.FAST_IMPROVED_RECIPE, X._SPLIT),
        "best_plain": (X.BEST_FIT_RECIPE, X._SPLIT),
        "best_fast": (X.BEST_RECIPE, X._SPLIT),
    }
    assert list(exp.candidates) == list(X._FAST_LOOP) == list(trains)
    for key, (recipe, train) in trains.items():
        assert getattr(X, X._FAST_LOOP[key]) == recipe, key  # what the run trains
        assert exp.candidates[key] == {
            "recipe": dataclasses.asdict(recipe),
            "train": train,
        }, key
    # each pair differs in the fast settings only: the plain seed side is
    # seed_reproduction's book_split (SEED_RECIPE on the same training images)
    fast_settings = {"loop", "fused", "steps_per_execution", "precision"}
    plain_seed = X.EXPERIMENTS["seed_reproduction"].candidates["book_split"]
    assert plain_seed == {
        "recipe": dataclasses.asdict(X.SEED_RECIPE),
        "train": f"{X._SPLIT}[0]",
    }
    pairs = (
        (plain_seed["recipe"], exp.candidates["seed_fast_split"]["recipe"]),
        (
            exp.candidates["improved_plain"]["recipe"],
            exp.candidates["improved_fast"]["recipe"],
        ),
    )
    for plain, fast in pairs:
        changed = {k for k in plain if k != "name" and plain[k] != fast[k]}
        assert changed == fast_settings, changed
        assert (plain["loop"], plain["precision"]) == ("fit", "float32")
    # scored on chapter 4's validation triplets, as the chapter draws them
    assert exp.common["validation_triplets"] == "seed_offline_triplets(y_val, seed=1)"
    assert "validation_triplets" in X.EXPERIMENTS["seed_reproduction"].common


def test_the_default_experiments_plan_616_runs():
    runs = {
        name: len(exp.seeds) * len(exp.candidate_keys)
        for name, exp in X.EXPERIMENTS.items()
        if exp.default
    }
    assert runs == {
        "seed_reproduction": 10 * 2,
        "fast_loop": 5 * 6,  # 5 * 3 before chapter 4's validation check
        "online_mining": 5 * 19,
        "unseen_classes": 5 * 9,
        "recipe_search": 5 * 5,  # 3 * 5 before
        "transfer_validation": 3 * 8 * 2 * 3,  # seeds x methods x rates x folds
        "transfer_test": 5 * (8 + 3),  # 8 methods, 3 baselines
        "transfer_knobs": 3 * 2 * 4 * 3,  # seeds x methods x knobs x folds
        "transfer_folds_test": 5 * 8,
        "transfer_closed_set": 3 * (7 + 3) * 3,  # seeds x (recipes + baselines) x folds
    }
    assert sum(runs.values()) == 616  # 215 before the transfer protocol


@pytest.mark.slow
def test_fast_loop_and_online_mining_runs_record_what_the_chapters_read(monkeypatch):
    import dataclasses

    monkeypatch.setattr(
        X,
        "MINING_BASE",
        dataclasses.replace(X.MINING_BASE, steps=4, steps_per_execution=2),
    )
    monkeypatch.setattr(
        X,
        "BEST_RECIPE",
        dataclasses.replace(X.BEST_RECIPE, steps=4, p=4, k=4, steps_per_execution=2),
    )
    monkeypatch.setattr(
        X,
        "BEST_FIT_RECIPE",
        dataclasses.replace(
            X.BEST_FIT_RECIPE, steps=4, p=4, k=4, steps_per_execution=2
        ),
    )
    (x, y), test = _tiny_mnist()
    mnist = ((np.concatenate([x] * 3), np.concatenate([y] * 3)), test)
    fast = {key: X._fast_loop_run(key, 0, mnist) for key in X._FAST_LOOP}
    assert list(fast) == list(X.EXPERIMENTS["fast_loop"].candidates)
    assert 0 <= fast["seed_fast"]["seed_metric"] <= 1
    assert "val_seed_metric" not in fast["seed_fast"]  # all 60,000: no validation
    for key in ("best_plain", "best_fast"):
        assert (
            0 <= fast[key]["val_precision_at_1"] <= 1 and fast[key]["fit_seconds"] > 0
        )
        assert "val_seed_metric" not in fast[key]
    # chapter 4's recipes on the book's split: its validation triplets (chapter
    # 4's check), and chapter 5's test triplets, overall and per class
    for key in ("seed_fast_split", "improved_plain", "improved_fast"):
        run = fast[key]
        assert 0 <= run["val_seed_metric"] <= 1 and run["fit_seconds"] > 0, key
        assert 0 <= run["seed_metric"] <= 1 and len(run["per_class"]) == 10, key
        assert np.mean(run["per_class"]) == pytest.approx(run["seed_metric"]), key
        assert "val_precision_at_1" not in run, key
    for key in ("best_fast", "seed_fast", "seed_fast_split", "improved_fast"):
        assert fast[key]["precision"] == "mixed_bfloat16", key  # conftest forces it
    assert fast["best_plain"]["precision"] == "float32"
    assert fast["improved_plain"]["precision"] == "float32"
    keys = list(X.EXPERIMENTS["online_mining"].candidates)
    mining = [X._online_mining_run(key, 0, mnist) for key in keys]
    assert [(r["mining"], r["margin"], r["l2_normalize"]) for r in mining] == [
        (c["mining"], c["margin"], c["l2_normalize"]) for c in X._mining_configs()
    ]
    for r in mining:
        for key in ("val_precision_at_1", "val_map_at_r", "test_one_nn_accuracy"):
            assert 0 <= r[key] <= 1
        assert "val_one_nn_accuracy" not in r  # no chapter reads it
        if r["l2_normalize"]:
            assert r["mean_norm"] == pytest.approx(1.0, abs=1e-3)


def test_unseen_classes_chooses_without_the_unseen_digits():
    import dataclasses

    # chapter 8's candidates again, on the seen digits' budget, plus lr 1e-2
    assert list(X.UNSEEN_CANDIDATES) == [*X.RECIPE_CANDIDATES, "lr_1e-2"]
    for key, recipe in X.UNSEEN_CANDIDATES.items():
        source = X.RECIPE_CANDIDATES.get(key, X.SEARCH_START)
        mine, theirs = dataclasses.asdict(recipe), dataclasses.asdict(source)
        differs = {k for k in mine if mine[k] != theirs[k]}
        expected = {"name", "p", "steps"} | (
            {"learning_rate"} if key == "lr_1e-2" else set()
        )
        assert differs == expected, key
        assert (recipe.p, recipe.k, recipe.steps) == (X.SEEN_DIGITS, 16, 800)
    # the triplet search tries the softmax baseline's learning rates
    rates = {r.learning_rate for r in X.UNSEEN_CANDIDATES.values()}
    assert set(X.UNSEEN_LEARNING_RATES) <= rates
    # no candidate comes from a choice on all ten digits: the start is not BEST
    assert X.UNSEEN_BASE == X.UNSEEN_CANDIDATES["best"]
    assert X.UNSEEN_BASE.margin == X.SEARCH_START.margin
    exp = X.EXPERIMENTS["unseen_classes"]
    assert exp.common["seen_digits"] == [0, 1, 2, 3, 4, 5]
    triplet = [k for k, c in exp.candidates.items() if c["embedding"] == "triplet"]
    assert triplet == list(X.UNSEEN_CANDIDATES)
    rates = [c["learning_rate"] for k, c in exp.candidates.items() if k not in triplet]
    assert rates == list(X.UNSEEN_LEARNING_RATES)


def test_unseen_classes_scores_a_diverged_run_as_none():
    e = np.ones((6, 4), np.float32)
    e[2, 1] = np.nan
    assert X._scores(e, np.array([0, 0, 1, 1, 2, 2])) == (None, None)
    good = np.eye(6, dtype=np.float32)[[0, 0, 1, 1, 2, 2]]
    assert X._scores(good, np.array([0, 0, 1, 1, 2, 2])) == (1.0, 1.0)
    labels = np.array([0, 0, 1, 1, 2, 2])
    assert X._scores(good, labels, good, labels) == (1.0, 1.0)  # against references
    assert X._scores(good, labels, e, labels) == (None, None)  # diverged references


@pytest.mark.slow
def test_unseen_classes_run_records_what_chapter_8_reads(monkeypatch):
    import dataclasses

    tiny = {"steps": 4, "k": 4, "steps_per_execution": 2}
    candidates = {
        key: dataclasses.replace(r, **tiny) for key, r in X.UNSEEN_CANDIDATES.items()
    }
    monkeypatch.setattr(X, "UNSEEN_CANDIDATES", candidates)
    monkeypatch.setattr(X, "UNSEEN_BASE", candidates["best"])
    (x, y), test = _tiny_mnist()
    mnist = ((np.concatenate([x] * 3), np.concatenate([y] * 3)), test)
    runs = [
        row
        for key in X.EXPERIMENTS["unseen_classes"].candidates
        for row in X._unseen_classes_run(key, 0, mnist)
    ]
    assert [(r["embedding"], r["candidate"], r["learning_rate"]) for r in runs] == [
        ("triplet", key, r.learning_rate) for key, r in candidates.items()
    ] + [
        (name, None, lr)
        for lr in X.UNSEEN_LEARNING_RATES
        for name in ("softmax", "softmax_l2")
    ]
    for r in runs:
        for part in ("val", "test_seen", "test_unseen"):
            for metric in ("precision_at_1", "map_at_r"):
                value = r[f"{part}_{metric}"]
                assert value is None or 0 <= value <= 1, (r["embedding"], part)
        assert r["fit_seconds"] > 0


def test_choose_on_validation_takes_the_best_finite_mean():
    scores = {0.1: [0.90, 0.92], 0.2: [0.93, 0.93], 0.5: [0.99, None]}
    assert X.choose_on_validation(scores, "val_map_at_r") == 0.2  # 0.5 diverged
    scores[0.5] = [0.99, float("nan")]
    assert X.choose_on_validation(scores, "val_map_at_r") == 0.2
    scores[0.5] = [0.99, 0.98]
    assert X.choose_on_validation(scores, "val_map_at_r") == 0.5
    tie = {"a": [0.5, 0.7], "b": [0.6, 0.6]}  # equal means: the first wins
    assert X.choose_on_validation(tie, "val_precision_at_1") == "a"


@pytest.mark.parametrize(
    "scores, metric, error, match",
    [
        ({"a": [0.9]}, "test_map_at_r", ValueError, "validation scores only"),
        ({"a": [0.9]}, 3, TypeError, "metric must be a str"),
        ([0.9], "val_map_at_r", TypeError, "mapping"),
        ({}, "val_map_at_r", ValueError, "empty"),
        ({"a": [0.9], "b": [0.9, 0.8]}, "val_map_at_r", ValueError, "same number"),
        ({"a": [None], "b": [float("inf")]}, "val_p1", ValueError, "finite"),
        ({"a": []}, "val_p1", ValueError, "non-empty"),
    ],
)
def test_choose_on_validation_rejects_bad_input(scores, metric, error, match):
    with pytest.raises(error, match=match):
        X.choose_on_validation(scores, metric)


def test_recipe_search_candidates_change_one_thing_each():
    import dataclasses

    best = dataclasses.asdict(X.SEARCH_START)
    assert X.RECIPE_CANDIDATES["best"] == X.SEARCH_START
    start = dataclasses.replace(X.SEARCH_START, margin=X.BEST_RECIPE.margin)
    assert start == X.BEST_RECIPE  # the search changes the best recipe's margin only
    for name, recipe in X.RECIPE_CANDIDATES.items():
        fields = dataclasses.asdict(recipe)
        changed = {k for k in best if k != "name" and fields[k] != best[k]}
        assert (name == "best") == (not changed), (name, changed)
        assert changed <= {"margin", "learning_rate", "mining", "network"}, changed
        assert recipe.steps == X.BEST_RECIPE.steps  # the same 2-minute budget
    names = [r.name for r in X.RECIPE_CANDIDATES.values()]
    assert len(set(names)) == len(names)  # distinct cache keys


def test_recipe_search_runs_the_protocols_five_seeds():
    exp = X.EXPERIMENTS["recipe_search"]
    assert exp.seeds == (0, 1, 2, 3, 4)
    assert "over 5 seeds" in exp.description
    assert list(exp.candidates) == list(X.RECIPE_CANDIDATES)


@pytest.mark.slow
def test_recipe_search_run_records_what_chapter_7_reads(monkeypatch):
    import dataclasses

    tiny = {
        k: dataclasses.replace(r, steps=4, p=4, k=4, steps_per_execution=2)
        for k, r in X.RECIPE_CANDIDATES.items()
    }
    monkeypatch.setattr(X, "RECIPE_CANDIDATES", tiny)
    (x, y), test = _tiny_mnist()
    mnist = ((np.concatenate([x] * 3), np.concatenate([y] * 3)), test)
    out = {key: X._recipe_search_run(key, 0, mnist) for key in tiny}
    for name, run in out.items():
        for key in ("val", "test"):
            for metric in ("precision_at_1", "map_at_r"):
                value = run[f"{key}_{metric}"]
                assert value is None or 0 <= value <= 1, (name, key, metric)
        assert run["fit_seconds"] > 0


def test_transfer_folds_choose_without_the_test_digits():
    assert X.TRANSFER_TEST == (6, 7, 8, 9)
    seen = set(X.TRANSFER_SEEN)
    assert not seen & set(X.TRANSFER_TEST)
    for train, held in X.TRANSFER_FOLDS:
        assert set(train) | set(held) == seen and len(held) == 2
    mnist = _tiny_mnist()
    for fold, (train, held) in enumerate(X.TRANSFER_FOLDS):
        (_, y_tr), (_, y_val) = X.fold_data(mnist, fold)
        assert set(np.unique(y_tr)) == set(train) and set(np.unique(y_val)) == set(held)
    # the selection score reads the fold's held-out digits only
    (_, _), (x_val, y_val) = X.fold_data(mnist, 0)
    e = x_val.reshape(len(x_val), -1)[:, :64]
    scores = X.fold_validation_scores(e, y_val, 0)
    assert 0 <= scores["val_precision_at_1"] <= 1
    (x_test, y_test) = mnist[1]
    unseen = y_test >= 6
    e_test = x_test[unseen].reshape(unseen.sum(), -1)[:, :64]
    with pytest.raises(
        ValueError, match=r"may only see classes \[0, 1\].*\[6, 7, 8, 9\]"
    ):
        X.fold_validation_scores(e_test, y_test[unseen], 0)
    with pytest.raises(ValueError, match="images of"):  # one test digit is enough
        X.fold_validation_scores(
            np.r_[e, e_test[:1]], np.r_[y_val, y_test[unseen][:1]], 0
        )
    with pytest.raises(ValueError, match="fold must be in"):
        X.fold_data(mnist, 3)
