"""The results ledger: its statistics against NumPy/SciPy, and its coverage.

The ledger (``tripletutils.ledger``, printed by ``book/ledger.ipynb``) lists
every score the experiments' records give the book. The last tests read the
chapters: every interval statistic a chapter glues (a key ending in ``_mean``,
``_low`` or ``_high``) must be a value the ledger lists, and every chapter that
reads records links to the ledger.
"""

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from test_glue import glued_values
from tripletutils import ledger
from tripletutils.experiments import EXPERIMENTS

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
LEDGER_NB = ROOT / "book" / "ledger.ipynb"

#: Glued interval statistics that are not scores of the experiments' records.
NOT_RECORDS = {
    "05": {
        "own_mean": "pooled over both protocols' 20 runs (the prose compares pools)",
        "fixed_mean": "pooled over both protocols' 20 runs (the prose compares pools)",
    },
    "08": {
        "boot_mean": "the chapter's own network, bootstrap over its test queries",
        "boot_low": "the chapter's own network, bootstrap over its test queries",
        "boot_high": "the chapter's own network, bootstrap over its test queries",
    },
    "09": {
        "R_ratio_low": "a ratio of class counts, not a score",
        "R_ratio_high": "a ratio of class counts, not a score",
    },
    "14": {
        "approx_p1_low": "the search benchmark's file, not an experiment",
        "approx_p1_high": "the search benchmark's file, not an experiment",
    },
}
STATISTIC = re.compile(r"_(mean|low|high)$")


def _sizes():
    """set_sizes on small made-up labels (the statistics do not depend on them)."""
    return ledger.set_sizes(np.repeat(np.arange(10), 60), np.repeat(np.arange(10), 20))


def _results(runs, machines=("CPU A",)):
    return {"runs": runs, "machines": list(machines)}


def _t_reference(values):
    v = np.asarray(values, dtype=np.float64)
    n, mean, sd = len(v), v.mean(), v.std(ddof=1)
    t = stats.t.ppf(0.975, n - 1)
    return {
        "mean": mean,
        "low": mean - t * sd / np.sqrt(n),
        "high": mean + t * sd / np.sqrt(n),
        "pred_low": mean - t * sd * np.sqrt(1 + 1 / n),
        "pred_high": mean + t * sd * np.sqrt(1 + 1 / n),
    }


def test_rows_of_candidates_match_a_plain_reference():
    values = {"a": [0.91, 0.93, 0.96], "b": [0.5, 0.52, 0.49]}
    runs = [
        {
            "seed": s,
            "metrics": {
                c: {"val_precision_at_1": v[s], "fit_seconds": 3.0, "precision": "f32"}
                for c, v in values.items()
            },
        }
        for s in range(3)
    ]
    rows = ledger.experiment_rows("recipe_search", _results(runs), _sizes())
    assert [(r["group"], r["score"]) for r in rows] == [
        ("a", "val_precision_at_1"),
        ("b", "val_precision_at_1"),
    ]
    for row, name in zip(rows, "ab"):
        ref = _t_reference(values[name])
        for key, expected in ref.items():
            assert row[key] == pytest.approx(expected, rel=1e-12), key
        assert row["seeds"] == 3 and row["folds"] == 1
        assert row["precision"] == "f32" and row["cpu"] == "CPU A"
        assert row["queries"] == "validation images: 60"
        assert "leave-one-out" in row["references"] and "59 each" in row["references"]
        assert row["test_influence"] == ledger.TEST_INFLUENCE["recipe_search"]


def test_fold_candidates_are_one_group_with_the_mean_of_the_folds_per_seed():
    scores = {0: [0.6, 0.7, 0.8], 1: [0.62, 0.75, 0.71], 2: [0.5, 0.66, 0.9]}
    runs = [
        {
            "seed": s,
            "metrics": {
                f"x_fold{k}": {"val_map_at_r": v, "precision": "float32"}
                for k, v in enumerate(scores[s])
            },
        }
        for s in scores
    ]
    rows = ledger.experiment_rows("transfer_knobs", _results(runs), _sizes())
    assert len(rows) == 1 and rows[0]["group"] == "x" and rows[0]["folds"] == 3
    ref = _t_reference([np.mean(scores[s]) for s in scores])
    assert rows[0]["mean"] == pytest.approx(ref["mean"], rel=1e-12)
    assert rows[0]["high"] == pytest.approx(ref["high"], rel=1e-12)
    assert "60 / 60 / 60" not in rows[0]["queries"]  # each fold holds two digits
    assert rows[0]["queries"].endswith("12 / 12 / 12")


def test_table_rows_group_by_configuration_and_skip_diverged_runs():
    def row(mining, p1):
        return {"mining": mining, "margin": 0.2, "val_precision_at_1": p1}

    runs = [
        {"seed": 0, "metrics": {"runs": [row("hard", 0.9), row("all", 0.8)]}},
        {"seed": 1, "metrics": {"runs": [row("hard", None), row("all", 0.82)]}},
        {"seed": 2, "metrics": {"runs": [row("hard", 0.94), row("all", 0.81)]}},
    ]
    rows = ledger.experiment_rows("online_mining", _results(runs), _sizes())
    by_group = {r["group"]: r for r in rows}
    assert set(by_group) == {"mining=hard, margin=0.2", "mining=all, margin=0.2"}
    assert by_group["mining=hard, margin=0.2"]["seeds"] == 2  # seed 1 diverged
    assert by_group["mining=hard, margin=0.2"]["mean"] == pytest.approx(0.92)
    assert by_group["mining=all, margin=0.2"]["seeds"] == 3


def test_a_score_with_one_finite_value_has_nan_statistics():
    runs = [
        {"seed": 0, "metrics": {"a": {"test_map_at_r": 0.5}}},
        {"seed": 1, "metrics": {"a": {"test_map_at_r": None}}},
    ]
    (row,) = ledger.experiment_rows("recipe_search", _results(runs), _sizes())
    assert row["seeds"] == 1 and all(
        math.isnan(row[k]) for k in ("mean", "low", "high", "pred_low", "pred_high")
    )
    assert ledger.ledger_values([row]).size == 0


def test_set_sizes_count_the_splits():
    y_train = np.repeat(np.arange(10), 100)
    y_test = np.repeat(np.arange(10), 30)
    sizes = ledger.set_sizes(y_train, y_test)
    assert sizes["train"] + sizes["val"] == 1000 and sizes["test"] == 300
    assert sizes["test_seen"] == 180 and sizes["test_unseen"] == 120
    assert len(sizes["fold_val"]) == 3 and sum(sizes["fold_val"]) == sizes["val_seen"]
    assert sizes["test_triplets"] > 0 and sizes["val_triplets"] > 0


@pytest.mark.parametrize(
    "y_train, y_test, error",
    [
        (np.zeros(10), np.zeros(10, int), TypeError),
        ([0, 1], np.zeros(10, int), TypeError),
        (np.zeros((2, 5), int), np.zeros(10, int), ValueError),
        (np.zeros(10, int), np.zeros(0, int), ValueError),
    ],
)
def test_set_sizes_rejects_bad_labels(y_train, y_test, error):
    with pytest.raises(error):
        ledger.set_sizes(y_train, y_test)


def test_bad_names_raise_clear_errors():
    sizes = _sizes()
    with pytest.raises(ValueError, match="not in the ledger"):
        ledger.experiment_rows("smoke", _results([]), sizes)
    with pytest.raises(ValueError, match="not a score of"):
        ledger.evaluation_sets("recipe_search", "mean_norm", sizes)
    with pytest.raises(ValueError, match="not in the ledger"):
        ledger.evaluation_sets("nope", "val_map_at_r", sizes)
    with pytest.raises(TypeError, match="not a str"):
        ledger.ledger_rows(
            np.zeros(10, int), np.zeros(10, int), experiments="fast_loop"
        )
    with pytest.raises(ValueError, match="not in the ledger"):
        ledger.ledger_rows(np.zeros(10, int), np.zeros(10, int), experiments=["x"])


def test_every_experiment_the_book_runs_is_in_the_ledger_and_its_page():
    run_by_default = {name for name, e in EXPERIMENTS.items() if e.default}
    assert run_by_default == set(ledger.LEDGER_EXPERIMENTS)
    assert set(ledger.TEST_INFLUENCE) == set(ledger.LEDGER_EXPERIMENTS)
    page = json.loads(LEDGER_NB.read_text())["cells"]
    sources = ["".join(c["source"]) for c in page]
    for name in ledger.LEDGER_EXPERIMENTS:
        label = f"(ledger-{name.replace('_', '-')})="
        assert any(s.startswith(label) for s in sources), name
        assert f'show("{name}")' in sources, name


@pytest.fixture(scope="module")
def committed_values():
    """Every statistic the ledger lists, from the committed records."""
    rows = ledger.ledger_rows(
        np.repeat(np.arange(10), 60), np.repeat(np.arange(10), 20)
    )  # the statistics do not depend on the labels, only the set sizes do
    return ledger.ledger_values(rows)


def _glued_numbers(nb):
    cells = json.loads(nb.read_text())["cells"]
    for name, _, value in glued_values(cells):
        if isinstance(value, float):
            yield name, value


#: How close a glued number must be to a ledger value to be the same number. The
#: chapters glued theirs with the locked SciPy; `make test-oldest` rebuilds the
#: ledger with SciPy 1.11, whose Student-t quantile differs in the 12th digit
#: (1.3e-12 on transfer_closed_set's interval): the same statistic, not another.
SAME_NUMBER = 1e-9


def _listed(values, value):
    i = np.searchsorted(values, value)
    near = values[max(i - 1, 0) : i + 1]
    return bool(np.any(np.abs(near - value) <= SAME_NUMBER * max(1.0, abs(value))))


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_glued_interval_statistic_is_in_the_ledger(nb, committed_values):
    allowed = NOT_RECORDS.get(nb.stem[:2], {})
    missing = [
        f"{name} = {value!r}"
        for name, value in _glued_numbers(nb)
        if STATISTIC.search(name)
        and name not in allowed
        and not _listed(committed_values, value)
    ]
    assert not missing, (
        "glued means or interval bounds that the results ledger does not list "
        f"(list the group in tripletutils.ledger, or exempt it here): {missing}"
    )


def test_the_check_catches_a_number_the_ledger_lacks(committed_values):
    assert _listed(committed_values, float(committed_values[3]))
    assert not _listed(committed_values, float(committed_values[3]) + 1e-6)
    assert not _listed(committed_values, float(committed_values[3]) + 1e-8)


def test_exemptions_name_glued_keys():
    """An exemption for a key no chapter glues any more is stale: remove it."""
    for prefix, allowed in NOT_RECORDS.items():
        (nb,) = [p for p in NOTEBOOKS if p.stem.startswith(prefix)]
        glued = {name for name, _ in _glued_numbers(nb)}
        assert set(allowed) <= glued, (nb.stem, set(allowed) - glued)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_chapters_that_read_records_link_to_the_ledger(nb):
    cells = json.loads(nb.read_text())["cells"]
    code = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    prose = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    labels = {f"ledger-{name.replace('_', '-')}" for name in ledger.LEDGER_EXPERIMENTS}
    linked = set(re.findall(r"<(ledger-[a-z-]+)>", prose))
    assert linked <= labels, linked - labels
    if "load_results(" in code:
        assert linked, f"{nb.stem} reads records but never links to the ledger"
