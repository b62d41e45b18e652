"""The transfer protocol: its grid, its folds, its selection rule, its test stage."""

import dataclasses
import json

import numpy as np
import pytest
from scipy.stats import spearmanr

from tripletutils import engine as E
from tripletutils import experiments as X
from tripletutils.evaluation import embed
from tripletutils.metrics import retrieval_metrics
from tripletutils.training import build_recipe_net

GRID = [
    (method, lr) for method in X.TRANSFER_METHODS for lr in X.TRANSFER_LEARNING_RATES
]


def _tiny_mnist(n_train=400, n_test=200):
    """Ten digits in turn, each a bright band at its own height."""
    rng = np.random.default_rng(0)

    def part(n):
        y = np.arange(n) % 10
        x = rng.random((n, 28, 28, 1)).astype(np.float32) * 0.2
        for i, c in enumerate(y):
            x[i, 2 * c : 2 * c + 3, :, 0] += 0.8
        return x, y.astype(np.int64)

    return part(n_train), part(n_test)


# ------------------------------------------------------------------ the grid


def test_every_method_gets_the_same_network_budget_and_grid():
    assert len(X.TRANSFER_METHODS) == 8 and len(X.TRANSFER_LEARNING_RATES) == 2
    base = dataclasses.asdict(X.BEST_RECIPE)
    mine = dataclasses.asdict(X.TRANSFER_BASE)
    changed = {k for k in base if base[k] != mine[k]}
    assert changed == {"name", "p", "k", "steps", "precision"}
    for method in X.TRANSFER_METHODS:
        for lr in X.TRANSFER_LEARNING_RATES:
            for final, pk in ((False, (4, 24)), (True, X.TRANSFER_FINAL_PK)):
                r = X.transfer_recipe(method, lr, final=final)
                assert (r.p, r.k) == pk and r.p * r.k == 96 and r.steps == 800
                assert (r.network, r.embedding_dim, r.l2_normalize) == (
                    "lenet",
                    64,
                    True,
                )
                assert (r.loop, r.steps_per_execution, r.precision) == (
                    "compiled",
                    100,
                    "float32",
                )
                assert r.learning_rate == lr and r.cosine_decay
    assert X.TRANSFER_FINAL_PK == (6, 16)
    # each loss at its fixed settings
    assert X.transfer_recipe("semi_hard", 1e-3).mining == "semi_hard"
    assert X.transfer_recipe("semi_hard", 1e-3).margin == 0.2
    contrastive = X.transfer_recipe("contrastive", 1e-3)
    assert contrastive.loss == "contrastive" and contrastive.mining == "batch_all"
    assert dict(contrastive.loss_options) == {"pos_margin": 0.0, "neg_margin": 1.0}
    ms = dict(X.transfer_recipe("multi_similarity", 1e-3).loss_options)
    assert ms == {"alpha": 2.0, "beta": 50.0, "base": 0.5, "epsilon": 0.1}
    supcon = X.transfer_recipe("supervised_contrastive", 1e-3)
    assert dict(supcon.loss_options) == {"temperature": 0.1}
    assert X._head("cosine") == {"head": "cosine", "temperature": 0.05}
    assert X._head("softmax") == {"head": "softmax"} and X._head("batch_all") == {}
    with pytest.raises(ValueError, match="method must be one of"):
        X.transfer_recipe("arcface", 1e-3)


def test_transfer_validation_fans_out_methods_rates_and_folds():
    exp = X.EXPERIMENTS["transfer_validation"]
    assert exp.default and not exp.dynamic and exp.seeds == (0, 1, 2)
    cells = {
        (c["method"], c["learning_rate"], c["fold"]) for c in exp.candidates.values()
    }
    assert cells == {(m, lr, f) for m, lr in GRID for f in range(3)}
    assert len(exp.candidates) == 8 * 2 * 3 == 48
    assert len(E.plan("transfer_validation")) == 144
    for c in exp.candidates.values():
        assert (tuple(c["train_digits"]), tuple(c["held_out"])) == X.TRANSFER_FOLDS[
            c["fold"]
        ]
        assert not set(c["train_digits"] + c["held_out"]) & set(X.TRANSFER_TEST)
    test = X.EXPERIMENTS["transfer_test"]
    assert test.default and test.dynamic and test.seeds == tuple(range(5))
    assert test.after == ("transfer_validation",)
    assert test.candidate_keys == X.TRANSFER_METHODS + X.TRANSFER_BASELINES
    # every experiment but the engine's smoke test runs by default
    assert [n for n, e in X.EXPERIMENTS.items() if not e.default] == ["smoke"]


# ------------------------------------------------ what each run may see


def _fake_net(dim=8):
    import keras

    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(16, name="before")(x)
    x = keras.layers.Dense(dim, name="embedding")(x)
    return keras.Model(inputs, x)


@pytest.fixture
def fake_training(monkeypatch):
    """train and train_softmax_baseline replaced: they record what they got."""
    seen = {"train": [], "classifier": [], "scored": [], "diverge": False}

    def history():
        stopped = 3 if seen["diverge"] else None
        return {"fit_seconds": 0.5, "precision": "float32", "stopped_at_step": stopped}

    def fake_train(recipe, x, y, seed=0, **kwargs):
        assert kwargs == {"on_non_finite": "stop"}
        seen["train"].append((recipe, np.asarray(y).copy(), len(x)))
        return _fake_net(), None, history()

    def fake_classifier(recipe, x, y, seed=0, **kwargs):
        assert kwargs.pop("on_non_finite") == "stop"
        seen["classifier"].append((recipe, np.asarray(y).copy(), len(x), kwargs))
        return _fake_net(), None, history()

    real_scores = X.fold_validation_scores

    def spy(e, labels, fold):
        seen["scored"].append((np.asarray(labels).copy(), fold, e.shape))
        return real_scores(e, labels, fold)

    monkeypatch.setattr(X, "train", fake_train)
    monkeypatch.setattr(X, "train_softmax_baseline", fake_classifier)
    monkeypatch.setattr(X, "fold_validation_scores", spy)
    return seen


def test_a_validation_run_trains_on_its_fold_and_scores_its_held_out_digits(
    fake_training,
):
    mnist = _tiny_mnist()
    for fold, (train_digits, held) in enumerate(X.TRANSFER_FOLDS):
        for method in ("multi_similarity", "softmax", "cosine"):
            key = X._validation_key(method, 3e-3, fold)
            run = X._transfer_validation_run(key, 0, mnist)
            assert (run["method"], run["learning_rate"], run["fold"]) == (
                method,
                3e-3,
                fold,
            )
            assert run["train_digits"] == sorted(train_digits)
            assert run["val_digits"] == sorted(held)
            for name in ("precision_at_1", "map_at_r"):
                for prefix in ("val_", "val_backbone_"):
                    assert 0 <= run[prefix + name] <= 1
            assert run["stopped_at_step"] is None and run["precision"] == "float32"
            json.dumps(run)  # a record
    # every training label is one of the fold's training digits (the
    # classifiers get them as class ids 0..3), every scored one held out
    for recipe, y, n in fake_training["train"]:
        assert recipe.name.endswith("_fold") and (recipe.p, recipe.k) == (4, 24)
        assert n == len(y)
    assert len(fake_training["train"]) == 3
    trained = [set(np.unique(y)) for _, y, _ in fake_training["train"]]
    assert trained == [set(t) for t, _ in X.TRANSFER_FOLDS]
    for recipe, y, n, head in fake_training["classifier"]:
        assert set(np.unique(y)) == {0, 1, 2, 3} and head["head"] in (
            "softmax",
            "cosine",
        )
    assert [h for *_, h in fake_training["classifier"]][:2] == [
        {"head": "softmax"},
        {"head": "cosine", "temperature": 0.05},
    ]
    for labels, fold, shape in fake_training["scored"]:
        assert set(np.unique(labels)) == set(X.TRANSFER_FOLDS[fold][1])
    # both features: after the embedding layer (8-d here) and before it (16-d)
    assert {shape[1] for *_, shape in fake_training["scored"]} == {8, 16}


def test_a_diverged_validation_run_is_recorded_with_none_scores(fake_training):
    fake_training["diverge"] = True
    run = X._transfer_validation_run("batch_hard_lr0.003_fold1", 2, _tiny_mnist())
    assert run["stopped_at_step"] == 3
    assert [run[k] for k in ("val_precision_at_1", "val_map_at_r")] == [None, None]
    assert run["val_backbone_map_at_r"] is None and not fake_training["scored"]


def test_softmax_features_are_centred_on_the_training_mean(fake_training):
    mnist = _tiny_mnist()
    (x_tr, y_tr), _ = X.fold_data(mnist, 0)
    net = _fake_net()
    history = {"stopped_at_step": None}
    recipe = X.transfer_recipe("softmax", 1e-3)
    soft = X._Trained("softmax", recipe, net, history, x_tr)
    plain = X._Trained("cosine", recipe, net, history, x_tr)
    raw = embed(net, x_tr)
    expected = raw - raw.mean(axis=0)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(soft.features(x_tr, "embedding"), expected, atol=1e-5)
    cos = plain.features(x_tr, "embedding")
    np.testing.assert_allclose(
        cos, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-6
    )
    assert soft.features(x_tr, "backbone").shape == (len(x_tr), 16)


# --------------------------------------------------------- the selection rule


def _validation(score, seeds=(0, 1, 2)):
    """transfer_validation's results, hand-made: score(method, lr, fold, seed)."""
    runs = []
    for seed in seeds:
        metrics = {}
        for key, c in X.TRANSFER_VALIDATION_CANDIDATES.items():
            p1, mapr = score(c["method"], c["learning_rate"], c["fold"], seed)
            metrics[key] = {
                "method": c["method"],
                "learning_rate": c["learning_rate"],
                "fold": c["fold"],
                "train_digits": c["train_digits"],
                "val_digits": c["held_out"],
                "val_precision_at_1": p1,
                "val_map_at_r": mapr,
            }
        runs.append({"seed": seed, "seconds": 0.0, "metrics": metrics})
    return {"name": "transfer_validation", "runs": runs}


def _shuffled(seed):
    """Each fold's own order of the 16 candidates."""
    return {f: np.random.default_rng(seed + f).permutation(16) for f in range(3)}


def _expected_agreement(table):
    """Mean Spearman correlation over pairs of folds (scipy, independently)."""
    pairs = [(0, 1), (0, 2), (1, 2)]
    return np.mean([spearmanr(table[a], table[b]).statistic for a, b in pairs])


def test_the_metric_whose_ranking_agrees_across_folds_is_chosen():
    perm = _shuffled(0)

    def score(method, lr, fold, seed):
        i = GRID.index((method, lr))
        # MAP@R ranks the candidates alike on every fold (3e-3 above 1e-3),
        # Precision@1 in each fold's own order
        return 0.9 + 0.001 * perm[fold][i], 0.3 + 0.01 * i + 0.001 * seed

    choice = X.choose_transfer_configs(_validation(score))
    assert choice["metric"] == "val_map_at_r"
    assert choice["agreement"]["val_map_at_r"] == pytest.approx(1.0)
    assert choice["agreement"]["val_precision_at_1"] == pytest.approx(
        _expected_agreement({f: perm[f] for f in range(3)})
    )
    assert choice["learning_rates"] == {m: 3e-3 for m in X.TRANSFER_METHODS}

    def swapped(method, lr, fold, seed):
        i = GRID.index((method, lr))
        j = GRID.index((method, X.TRANSFER_LEARNING_RATES[0] + 3e-3 - lr))
        return 0.9 + 0.001 * j, 0.3 + 0.001 * perm[fold][i]  # P@1 favours 1e-3

    choice = X.choose_transfer_configs(_validation(swapped))
    assert choice["metric"] == "val_precision_at_1"
    assert choice["learning_rates"] == {m: 1e-3 for m in X.TRANSFER_METHODS}


def test_ties_go_to_map_at_r_and_to_the_smaller_learning_rate():
    def flat(method, lr, fold, seed):
        v = 0.5 + 0.01 * X.TRANSFER_METHODS.index(method)
        return v, v  # the two metrics rank alike; the two rates tie

    choice = X.choose_transfer_configs(_validation(flat))
    agreement = choice["agreement"]
    assert agreement["val_map_at_r"] == agreement["val_precision_at_1"]
    assert choice["metric"] == "val_map_at_r" == X.TRANSFER_SELECTION_METRICS[0]
    assert set(choice["learning_rates"].values()) == {1e-3}

    def constant(method, lr, fold, seed):
        return 0.5, 0.5  # no ranking at all: agreement 0, not NaN

    choice = X.choose_transfer_configs(_validation(constant))
    assert choice["agreement"] == {"val_map_at_r": 0.0, "val_precision_at_1": 0.0}


def test_a_diverged_run_ranks_last_and_cannot_be_chosen():
    def score(method, lr, fold, seed):
        i = GRID.index((method, lr))
        mapr = 0.3 + 0.01 * i
        if (method, lr, fold, seed) == ("batch_hard", 3e-3, 1, 2):
            mapr = None  # one seed of one fold diverged
        if method == "cosine" and seed == 0:
            mapr = None  # both rates diverged somewhere
        return 0.9, mapr

    choice = X.choose_transfer_configs(_validation(score))
    assert choice["metric"] == "val_map_at_r"
    assert choice["learning_rates"]["batch_hard"] == 1e-3  # 3e-3 scored higher
    assert choice["learning_rates"]["cosine"] is None
    assert choice["learning_rates"]["contrastive"] == 3e-3
    table = {}
    for fold in range(3):
        row = np.array([0.3 + 0.01 * i for i in range(16)])
        row[GRID.index(("cosine", 1e-3))] = row[GRID.index(("cosine", 3e-3))] = -1
        if fold == 1:
            row[GRID.index(("batch_hard", 3e-3))] = -1
        table[fold] = row
    assert choice["agreement"]["val_map_at_r"] == pytest.approx(
        _expected_agreement(table)
    )


def test_the_selection_reads_only_validation_records_of_the_digits_0_to_5():
    good = _validation(lambda m, lr, f, s: (0.9, 0.5))
    X.choose_transfer_configs(good)
    with pytest.raises(ValueError, match="transfer_validation's records only"):
        X.choose_transfer_configs({**good, "name": "transfer_test"})
    with pytest.raises(TypeError, match="mapping"):
        X.choose_transfer_configs([good])
    leak = json.loads(json.dumps(good))
    leak["runs"][1]["metrics"]["softmax_lr0.001_fold2"]["val_digits"] = [4, 7]
    with pytest.raises(ValueError, match=r"saw digits \[7\].*may only read"):
        X.choose_transfer_configs(leak)
    other = json.loads(json.dumps(good))
    other["runs"][0]["metrics"]["softmax_lr0.001_fold2"]["val_digits"] = [0, 1]
    with pytest.raises(ValueError, match="fold 2 trains on"):
        X.choose_transfer_configs(other)
    short = json.loads(json.dumps(good))
    del short["runs"][2]["metrics"]["cosine_lr0.003_fold0"]
    with pytest.raises(ValueError, match="grid is incomplete"):
        X.choose_transfer_configs(short)
    # what the real runs record: the digits their data held, none of 6-9
    # (and fold_validation_scores refuses images of 6-9 outright)
    _, (x_test, y_test) = _tiny_mnist()
    unseen = np.isin(y_test, X.TRANSFER_TEST)
    with pytest.raises(ValueError, match="may only see classes"):
        X.fold_validation_scores(
            x_test[unseen].reshape(unseen.sum(), -1), y_test[unseen], 0
        )


def test_the_selection_inputs_hold_no_test_digit(fake_training):
    """Runs of the real run function, chosen from: no label of 6-9 anywhere."""
    mnist = _tiny_mnist()
    runs = []
    for seed in (0, 1, 2):
        metrics = {
            key: X._transfer_validation_run(key, seed, mnist)
            for key in X.TRANSFER_VALIDATION_CANDIDATES
            if key.startswith(("batch_all", "softmax"))
        }
        runs.append({"seed": seed, "metrics": metrics})
    for per_seed in runs:
        for m in per_seed["metrics"].values():
            assert not set(m["train_digits"] + m["val_digits"]) & set(X.TRANSFER_TEST)
    labels = [y for _, y, _ in fake_training["train"]]
    labels += [y for y, _, _ in fake_training["scored"]]
    assert labels and all(not np.isin(y, X.TRANSFER_TEST).any() for y in labels)


# ----------------------------------------------------------- the test stage


@pytest.fixture
def records(tmp_path, monkeypatch):
    """Hand-made transfer_validation records in a tmp folder (MAP@R prefers 3e-3
    for every method but softmax)."""
    monkeypatch.setattr(E, "_mnist", lambda: ((None, None), (None, None)))
    monkeypatch.setattr(E, "_mnist_fingerprint", lambda mnist: "d" * 16)
    code = E._current_code("transfer_validation")
    for run in E.plan("transfer_validation"):
        c = run.config["candidate"]
        better = (c["learning_rate"] == 3e-3) != (c["method"] == "softmax")
        metrics = {
            "method": c["method"],
            "learning_rate": c["learning_rate"],
            "fold": c["fold"],
            "train_digits": c["train_digits"],
            "val_digits": c["held_out"],
            "val_precision_at_1": 0.9,
            "val_map_at_r": 0.5 + 0.1 * better + 0.01 * run.seed,
        }
        out = {
            "metrics": metrics,
            "seconds": 1.0,
            "code_fingerprint": code,
            "data_fingerprint": "d" * 16,
            "machine": {"cpu": "test CPU"},
            "bfloat16_native": False,
        }
        E._write_atomically(run.path(tmp_path), json.dumps(E._record(run, out)))
    return tmp_path


def test_transfer_test_candidates_are_chosen_from_the_validation_records(records):
    runs = E.plan("transfer_test", folder=records)
    assert len(runs) == 11 * 5 == 55
    configs = {r.candidate: r.config["candidate"] for r in runs}
    assert list(configs) == list(X.TRANSFER_METHODS + X.TRANSFER_BASELINES)
    for method in X.TRANSFER_METHODS:
        lr = 1e-3 if method == "softmax" else 3e-3
        c = configs[method]
        recipe = c["recipe"]
        assert (c["method"], c["learning_rate"]) == (method, lr)
        assert (recipe["p"], recipe["k"], recipe["learning_rate"]) == (6, 16, lr)
        assert recipe == dataclasses.asdict(X.transfer_recipe(method, lr, final=True))
        for name in ("network", "embedding_dim", "steps", "precision"):
            assert recipe[name] == getattr(X.TRANSFER_BASE, name)
    assert configs["cosine"]["head"] == {"head": "cosine", "temperature": 0.05}
    assert configs["batch_all"]["head"] == {}
    assert configs["pca"]["components"] == 64 and configs["pca"]["whiten"] is False
    lines = []
    counts = E.run_experiments(
        ["transfer_test"], records, log=lines.append, dry_run=True
    )
    assert counts["planned"] == 55 and counts["waiting"] == 0
    assert lines[0].startswith("55 of 55 runs to do")
    with pytest.raises(FileNotFoundError, match="55 of 55 runs have no record"):
        E.load_results("transfer_test", records)
    # one validation record fewer: transfer_test waits, and says for what
    E.plan("transfer_validation")[7].path(records).unlink()
    with pytest.raises(
        FileNotFoundError,
        match="transfer_test chooses its candidates from transfer_validation's",
    ):
        E.plan("transfer_test", folder=records)
    lines = []
    counts = E.run_experiments(
        ["transfer_test"], records, log=lines.append, dry_run=True
    )
    assert lines == [
        "transfer_test: its candidates are chosen from transfer_validation's "
        "records (1 run missing): 55 runs (11 candidates x 5 seeds) once they "
        "are complete"
    ]
    assert counts["waiting"] == 55 and counts["planned"] == 0


def test_a_test_run_trains_on_0_to_5_and_scores_6_to_9_apart(
    fake_training, monkeypatch
):
    scored = []
    real = X._test_scores

    def spy(e, y, part):
        scored.append((part, np.asarray(y).copy()))
        return real(e, y, part)

    monkeypatch.setattr(X, "_test_scores", spy)
    mnist = _tiny_mnist()
    config = {"method": "semi_hard", "learning_rate": 1e-3}
    run = X._transfer_test_run("semi_hard", 3, mnist, config)
    ((recipe, y, n),) = fake_training["train"]
    assert set(np.unique(y)) == set(X.TRANSFER_SEEN) and (recipe.p, recipe.k) == (
        6,
        16,
    )
    assert recipe.learning_rate == 1e-3 and recipe.mining == "semi_hard"
    assert [(p, set(np.unique(y))) for p, y in scored] == [
        ("test_unseen", set(X.TRANSFER_TEST)),
        ("test_seen", set(X.TRANSFER_SEEN)),
    ]
    for part in ("test_unseen", "test_seen"):
        for name in ("precision_at_1", "r_precision", "map_at_r"):
            assert 0 <= run[f"{part}_{name}"] <= 1
    json.dumps(run)
    # a method whose every rate diverged on validation: no training, None scores
    none = X._transfer_test_run("cosine", 0, mnist, {"learning_rate": None})
    assert none["test_unseen_map_at_r"] is None and len(fake_training["train"]) == 1
    fake_training["diverge"] = True
    stopped = X._transfer_test_run("softmax", 0, mnist, {"learning_rate": 3e-3})
    assert stopped["stopped_at_step"] == 3 and stopped["test_seen_r_precision"] is None


def test_the_baselines_score_what_they_compute(monkeypatch):
    mnist = _tiny_mnist(n_train=600)
    (x_tr, y_tr), _ = X._book_split(mnist)
    _, (x_test, y_test) = mnist
    seen = np.isin(y_tr, X.TRANSFER_SEEN)
    unseen = np.isin(y_test, X.TRANSFER_TEST)
    flat = x_test.reshape(len(x_test), -1)
    raw = X._transfer_test_run("raw_pixels", 0, mnist, {})
    m = retrieval_metrics(flat[unseen], y_test[unseen], ks=(1,))
    assert raw["test_unseen_precision_at_1"] == m["precision_at_1"] == 1.0  # bands
    assert raw["test_unseen_r_precision"] == m["r_precision"]
    assert raw["test_unseen_map_at_r"] == m["mean_average_precision_at_r"]
    again = X._transfer_test_run("raw_pixels", 4, mnist, {})  # seedless
    assert {k: v for k, v in raw.items() if k != "fit_seconds"} == {
        k: v for k, v in again.items() if k != "fit_seconds"
    }
    from sklearn.decomposition import PCA

    pca = PCA(64, random_state=0).fit(x_tr[seen].reshape(seen.sum(), -1))
    e = pca.transform(flat[unseen])
    assert e.shape == (unseen.sum(), 64)
    m = retrieval_metrics(e.astype(np.float32), y_test[unseen], ks=(1,))
    got = X._transfer_test_run("pca", 1, mnist, {})
    assert got["test_unseen_map_at_r"] == pytest.approx(
        m["mean_average_precision_at_r"]
    )
    assert got["fit_seconds"] > 0 and got["precision"] == "float32"
    # the untrained network: its initial weights, seeded, on the unit sphere
    f0 = X._baseline_features("untrained", x_tr[seen], 0)
    again = X._baseline_features("untrained", x_tr[seen], 0)
    f1 = X._baseline_features("untrained", x_tr[seen], 1)
    e0 = f0(x_test[unseen])
    assert e0.shape == (unseen.sum(), 64)
    np.testing.assert_allclose(np.linalg.norm(e0, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(e0, again(x_test[unseen]))
    assert not np.allclose(e0, f1(x_test[unseen]))
    net = build_recipe_net(X.TRANSFER_BASE, seed=0)
    np.testing.assert_allclose(e0, embed(net, x_test[unseen]), atol=1e-5)
    # a non-finite embedding scores None
    bad = np.ones((4, 2), np.float32)
    bad[0, 0] = np.nan
    assert X._test_scores(bad, np.array([6, 6, 7, 7]), "t") == {
        "t_precision_at_1": None,
        "t_r_precision": None,
        "t_map_at_r": None,
    }


@pytest.mark.slow
def test_tiny_real_runs_of_each_kind(monkeypatch):
    """20 real steps of a pair loss and of each classifier (helper A's API)."""
    tiny = dataclasses.replace(X.TRANSFER_BASE, steps=20, steps_per_execution=10)
    monkeypatch.setattr(X, "TRANSFER_BASE", tiny)
    mnist = _tiny_mnist()
    for method in ("contrastive", "cosine"):
        run = X._transfer_validation_run(f"{method}_lr0.001_fold0", 0, mnist)
        assert run["stopped_at_step"] is None and run["precision"] == "float32"
        assert 0 <= run["val_map_at_r"] <= 1 and 0 <= run["val_backbone_map_at_r"] <= 1
    run = X._transfer_test_run("softmax", 0, mnist, {"learning_rate": 1e-3})
    assert 0 <= run["test_unseen_map_at_r"] <= 1 and run["fit_seconds"] > 0


# ------------------------------------------------ knobs and fold models


def test_knob_methods_are_the_best_triplet_method_and_classifier(records):
    validation = E.load_results("transfer_validation", records)
    chosen = X.knob_methods(validation)
    # the fixture's scores tie across methods at their chosen rates: the first
    assert chosen["triplet"]["method"] == "batch_all"
    assert chosen["triplet"]["learning_rate"] == 3e-3
    assert chosen["classifier"]["method"] == "softmax"
    assert chosen["classifier"]["learning_rate"] == 1e-3
    assert chosen["triplet"]["score"] == pytest.approx(0.61)  # 0.5 + 0.1 + 0.01
    # one triplet method ahead on every fold: it is chosen
    for per_seed in validation["runs"]:
        for m in per_seed["metrics"].values():
            if m["method"] == "semi_hard" and m["learning_rate"] == 3e-3:
                m["val_map_at_r"] += 0.001
            if m["method"] == "cosine":
                m["val_map_at_r"] += 0.002
    chosen = X.knob_methods(validation)
    assert chosen["triplet"]["method"] == "semi_hard"
    assert chosen["classifier"] == {
        "method": "cosine",
        "learning_rate": 3e-3,
        "score": pytest.approx(0.612),
    }
    with pytest.raises(ValueError, match="transfer_validation"):
        X.knob_methods({"name": "transfer_test", "runs": []})


def test_transfer_knobs_turn_one_knob_of_the_chosen_recipes(records):
    runs = E.plan("transfer_knobs", folder=records)
    assert len(runs) == len(X.TRANSFER_KNOB_KEYS) * 3 == (5 + 3) * 3 * 3
    configs = {r.candidate: r.config["candidate"] for r in runs}
    assert list(configs) == list(X.TRANSFER_KNOB_KEYS)
    for key, c in configs.items():
        base = X.transfer_recipe(c["method"], c["learning_rate"])
        changed = {
            name: value
            for name, value in c["recipe"].items()
            if value != getattr(base, name)
        }
        assert changed == c["changes"] == X.TRANSFER_KNOBS[c["knob"]]
        assert c["method"] == ("batch_all" if c["role"] == "triplet" else "softmax")
        assert key == f"{c['role']}_{c['knob']}_fold{c['fold']}"
        assert c["held_out"] == list(X.TRANSFER_FOLDS[c["fold"]][1])
    assert {c["knob"] for c in configs.values() if c["role"] == "classifier"} == {
        "embedding_16",
        "embedding_256",
        "augment",
    }


def test_a_knob_run_trains_the_changed_recipe_on_its_fold(fake_training):
    mnist = _tiny_mnist()
    config = {
        "role": "triplet",
        "knob": "p2_k48",
        "changes": {"p": 2, "k": 48},
        "method": "batch_hard",
        "learning_rate": 1e-3,
        "fold": 2,
    }
    run = X._transfer_knobs_run("triplet_p2_k48_fold2", 1, mnist, config)
    ((recipe, y, n),) = fake_training["train"]
    assert (recipe.p, recipe.k, recipe.mining, recipe.learning_rate) == (
        2,
        48,
        "batch_hard",
        1e-3,
    )
    assert set(np.unique(y)) == set(X.TRANSFER_FOLDS[2][0])
    ((labels, fold, shape),) = fake_training["scored"]
    assert fold == 2 and set(np.unique(labels)) == set(X.TRANSFER_FOLDS[2][1])
    assert shape[1] == 8  # the embedding's features
    assert (run["knob"], run["role"], run["fold"]) == ("p2_k48", "triplet", 2)
    assert 0 <= run["val_map_at_r"] <= 1 and 0 <= run["val_precision_at_1"] <= 1
    json.dumps(run)
    classifier = {**config, "role": "classifier", "knob": "augment"}
    classifier |= {"changes": {"augment": True}, "method": "cosine"}
    X._transfer_knobs_run("classifier_augment_fold2", 1, mnist, classifier)
    ((recipe, y, n, head),) = fake_training["classifier"]
    assert recipe.augment and head == {"head": "cosine", "temperature": 0.05}
    fake_training["diverge"] = True
    stopped = X._transfer_knobs_run("triplet_p2_k48_fold2", 1, mnist, config)
    assert stopped["val_map_at_r"] is None and stopped["stopped_at_step"] == 3


def test_fold_models_are_scored_apart_and_concatenated(
    records, fake_training, monkeypatch
):
    runs = E.plan("transfer_folds_test", folder=records)
    assert len(runs) == 8 * 5
    configs = {r.candidate: r.config["candidate"] for r in runs}
    assert configs["softmax"]["learning_rate"] == 1e-3
    assert configs["semi_hard"]["recipe"] == dataclasses.asdict(
        X.transfer_recipe("semi_hard", 3e-3)
    )
    mnist = _tiny_mnist()
    scored = {}
    real = X._test_scores

    def spy(e, y, part):
        scored[part] = (None if e is None else e.copy(), np.asarray(y).copy())
        return real(e, y, part)

    monkeypatch.setattr(X, "_test_scores", spy)
    run = X._transfer_folds_test_run("semi_hard", 0, mnist, configs["semi_hard"])
    trained = [set(np.unique(y)) for _, y, _ in fake_training["train"]]
    assert trained == [set(t) for t, _ in X.TRANSFER_FOLDS]
    assert all(r.name.endswith("_fold") for r, *_ in fake_training["train"])
    assert run["fit_seconds"] == pytest.approx(1.5)
    for part in ("fold0_", "fold1_", "fold2_", ""):
        assert 0 <= run[f"{part}test_unseen_map_at_r"] <= 1
    # each fold model on the test digits 6-9 only, then the three side by side
    _, (_, y_test) = mnist
    unseen = y_test[np.isin(y_test, X.TRANSFER_TEST)]
    assert sorted(scored) == [
        "fold0_test_unseen",
        "fold1_test_unseen",
        "fold2_test_unseen",
        "test_unseen",
    ]
    for e, y in scored.values():
        np.testing.assert_array_equal(y, unseen)
    parts = [scored[f"fold{f}_test_unseen"][0] for f in range(3)]
    whole = np.concatenate(parts, axis=1)
    whole /= np.linalg.norm(whole, axis=1, keepdims=True)
    np.testing.assert_allclose(scored["test_unseen"][0], whole, rtol=1e-6)
    assert scored["test_unseen"][0].shape == (len(unseen), 3 * 8)
    assert not fake_training["scored"]  # no validation scoring here
    none = X._transfer_folds_test_run("cosine", 0, mnist, {"learning_rate": None})
    assert none["test_unseen_map_at_r"] is None and len(fake_training["train"]) == 3


# ------------------------------------- chapters 7 and 8's recipes on the folds


def _online_mining_results(best_margin):
    """online_mining's results with validation MAP@R peaking at each scheme's
    ``best_margin`` (two seeds)."""
    runs = []
    for seed in (0, 1):
        rows = []
        for scheme in X.MINING_SCHEMES_COMPARED:
            margins = (None,) if scheme == "soft_margin" else X.MINING_MARGINS
            for m in margins:
                score = 0.9 if m == best_margin.get(scheme) else 0.5 + 0.1 * seed
                rows.append(
                    {"mining": scheme, "margin": m, "l2_normalize": True}
                    | {"val_map_at_r": score}
                )
            # off the unit sphere: never chosen, however high
            rows.append(
                {"mining": scheme, "margin": 1.0, "l2_normalize": False}
                | {"val_map_at_r": 1.0}
            )
        runs.append({"seed": seed, "metrics": {"runs": rows}})
    return {"name": "online_mining", "runs": runs}


def test_closed_set_candidates_are_chapter_6s_margins_and_best_recipe():
    best = {"seed_triplets": 0.5, "random_triplets": 0.1, "batch_all": 0.2}
    best |= {"batch_hard": 0.1, "semi_hard": 0.5}
    results = {"online_mining": _online_mining_results(best)}
    candidates = X._transfer_closed_set_candidates(results)
    assert tuple(candidates) == X.TRANSFER_CLOSED_SET_KEYS
    assert len(candidates) == (7 + 3) * 3
    for key, c in candidates.items():
        assert key == f"{c['name']}_fold{c['fold']}"
        train_digits, held = X.TRANSFER_FOLDS[c["fold"]]
        assert (c["train_digits"], c["held_out"]) == (list(train_digits), list(held))
        assert not set(c["train_digits"] + c["held_out"]) & set(X.TRANSFER_TEST)
        if c.get("baseline"):
            continue
        recipe = c["recipe"]
        # the same images a step as the closed-set recipe, on four digits
        base = X.BEST_RECIPE if c["name"] == "best_recipe" else X.MINING_BASE
        assert (recipe["p"], recipe["k"]) == (4, base.p * base.k // 4)
        assert recipe["steps"] == base.steps and recipe["precision"] == "float32"
        if c["name"] == "best_recipe":
            assert c["chapter"] == 7 and recipe["margin"] == X.BEST_RECIPE.margin
        elif c["name"] == "soft_margin":
            assert c["chapter"] == 6 and c["margin"] is None
        else:
            assert c["margin"] == best[c["name"]] == recipe["margin"]
            assert recipe["mining"] == c["name"]


def test_a_closed_set_run_trains_on_its_fold_and_scores_its_held_out_digits(
    fake_training,
):
    best = {s: 0.2 for s in X.MINING_SCHEMES_COMPARED}
    results = {"online_mining": _online_mining_results(best)}
    candidates = X._transfer_closed_set_candidates(results)
    mnist = _tiny_mnist()
    for key in ("semi_hard_fold1", "best_recipe_fold2", "raw_pixels_fold0"):
        run = X._transfer_closed_set_run(key, 0, mnist, candidates[key])
        train_digits, held = X.TRANSFER_FOLDS[candidates[key]["fold"]]
        assert run["train_digits"] == sorted(train_digits)
        assert run["val_digits"] == sorted(held)
        assert 0 <= run["val_precision_at_1"] <= 1 and 0 <= run["val_map_at_r"] <= 1
        json.dumps(run)  # a record
    (semi, y_semi, _), (best_recipe, y_best, _) = fake_training["train"]
    assert (semi.mining, semi.margin, semi.p, semi.k) == ("semi_hard", 0.2, 4, 24)
    assert (best_recipe.network, best_recipe.p, best_recipe.k) == ("lenet", 4, 40)
    assert set(np.unique(y_semi)) == set(X.TRANSFER_FOLDS[1][0])
    assert set(np.unique(y_best)) == set(X.TRANSFER_FOLDS[2][0])
    # raw pixels train nothing; every scored label is a held-out digit
    assert len(fake_training["train"]) == 2
    for labels, fold, _ in fake_training["scored"]:
        assert set(np.unique(labels)) == set(X.TRANSFER_FOLDS[fold][1])
    fake_training["diverge"] = True
    run = X._transfer_closed_set_run(
        "batch_all_fold0", 0, mnist, candidates["batch_all_fold0"]
    )
    assert run["stopped_at_step"] == 3 and run["val_map_at_r"] is None


def _closed_set_results(value):
    """transfer_closed_set's results for two seeds, ``value(name, fold, seed)``."""
    runs = []
    for seed in (1, 0):  # out of order: the scores come in seed order
        metrics = {}
        for key in X.TRANSFER_CLOSED_SET_KEYS:
            name, fold = key.rsplit("_fold", 1)
            v = value(name, int(fold), seed)
            metrics[key] = {"val_precision_at_1": v, "val_map_at_r": v}
        runs.append({"seed": seed, "metrics": metrics})
    return {"name": "transfer_closed_set", "runs": runs}


def test_closed_set_scores_are_means_over_the_folds_per_seed():
    def value(name, fold, seed):
        if name == "batch_hard" and (fold, seed) == (2, 1):
            return None  # diverged
        return 0.5 + 0.1 * fold + 0.01 * seed

    scores = X.closed_set_scores(_closed_set_results(value), "val_map_at_r")
    assert list(scores) == list(X.CLOSED_SET_RECIPES + X.CLOSED_SET_BASELINES)
    assert scores["semi_hard"] == pytest.approx([0.6, 0.61])  # (0.5+0.6+0.7)/3
    assert scores["batch_hard"][0] == pytest.approx(0.6)
    assert scores["batch_hard"][1] is None


def test_closed_set_scores_reject_other_results_metrics_and_gaps():
    results = _closed_set_results(lambda *_: 0.5)
    with pytest.raises(TypeError, match="mapping"):
        X.closed_set_scores([results], "val_map_at_r")
    with pytest.raises(ValueError, match="transfer_closed_set's"):
        X.closed_set_scores(results | {"name": "transfer_test"}, "val_map_at_r")
    with pytest.raises(ValueError, match="metric must be one of"):
        X.closed_set_scores(results, "test_unseen_map_at_r")
    del results["runs"][0]["metrics"]["best_recipe_fold1"]
    with pytest.raises(
        ValueError, match=r"seed 1 lacks the runs \['best_recipe_fold1'\]"
    ):
        X.closed_set_scores(results, "val_map_at_r")
