"""The experiments engine: records, staleness, resume after a kill, fan-out."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tripletutils import engine as E
from tripletutils import experiments as X
from tripletutils.fingerprint import code_fingerprint

PACKAGE = Path(E.__file__).resolve().parent
ROOT = PACKAGE.parent


def _fake_experiment(rows=False):
    return X.Experiment(
        name="fake",
        description="records written by the test, never run",
        seeds=(0, 1),
        candidates={"a": {"lr": 0.1}, "b": {"lr": 0.2}},
        common={"split": "none"},
        run=lambda candidate, seed, mnist: {},
        rows=rows,
    )


def _worker_out(metrics, code, seconds=2.0):
    """What a worker returns for one run (as engine._execute does)."""
    return {
        "metrics": metrics,
        "seconds": seconds,
        "code_fingerprint": code,
        "data_fingerprint": "d" * 16,
        "machine": {"cpu": "test CPU"},
        "bfloat16_native": False,
    }


def _write_fake_records(folder, code, rows=False):
    for run in E.plan("fake"):
        metrics = {"score": run.seed + (0.5 if run.candidate == "b" else 0.0)}
        out = [metrics] if rows is True else metrics  # rows="dict": one row, a dict
        record = E._record(run, _worker_out(out, code))
        E._write_atomically(run.path(folder), json.dumps(record))


def test_run_ids_hash_what_defines_a_run(monkeypatch):
    runs = E.plan("online_mining")
    ids = [r.run_id for r in runs]
    assert len(runs) == 19 * 5 and len(set(ids)) == len(ids)
    assert (
        E.Run("smoke", "margin_0.1", 0).run_id == E.Run("smoke", "margin_0.1", 0).run_id
    )
    assert (
        E.Run("smoke", "margin_0.1", 0).run_id != E.Run("smoke", "margin_0.1", 1).run_id
    )
    before = E.Run("smoke", "margin_0.1", 0).run_id
    changed = X.EXPERIMENTS["smoke"].candidates | {"margin_0.1": {"margin": 0.11}}
    monkeypatch.setitem(
        X.EXPERIMENTS,
        "smoke",
        X.Experiment(**{**X.EXPERIMENTS["smoke"].__dict__, "candidates": changed}),
    )
    assert E.Run("smoke", "margin_0.1", 0).run_id != before  # the config is hashed
    assert E.Run("smoke", "margin_0.1", 0).run_id.startswith("margin_0.1.s0.")


def test_every_experiment_has_distinct_candidates_and_serialisable_configs():
    for name, exp in X.EXPERIMENTS.items():
        assert exp.name == name and len(exp.seeds) >= 2
        assert len(set(exp.candidate_keys)) == len(exp.candidate_keys) >= 1
        if exp.dynamic:  # planned from records (tests/test_transfer.py)
            assert exp.after  # run once the experiments it reads are complete
            continue
        for run in E.plan(name):
            json.dumps(run.config)  # JSON, as the record stores it
    assert [n for n, e in X.EXPERIMENTS.items() if not e.default] == ["smoke"]
    assert E._dependency_order(list(X.EXPERIMENTS))  # no cycle, no unknown name


def test_plan_and_run_reject_bad_input(tmp_path):
    with pytest.raises(ValueError, match="unknown experiment 'nope'"):
        E.plan("nope")
    with pytest.raises(ValueError, match="distinct and non-empty"):
        E.plan("smoke", seeds=[])
    with pytest.raises(ValueError, match="no candidate"):
        E.Run("smoke", "margin_9", 0)
    with pytest.raises(ValueError, match="seed must be"):
        E.Run("smoke", "margin_0.1", -1)
    with pytest.raises(ValueError, match="unknown experiment"):
        E.run_experiments(["nope"], tmp_path / "r")
    with pytest.raises(ValueError, match="at least 1"):
        E.run_experiments(["smoke"], tmp_path / "r", workers=0)
    with pytest.raises(TypeError, match="workers must be an int"):
        E.run_experiments(["smoke"], tmp_path / "r", workers=1.5)
    with pytest.raises(TypeError, match="not a str"):
        E.run_experiments("smoke", tmp_path / "r")
    assert not (tmp_path / "r").exists()  # nothing written


@pytest.mark.parametrize(
    "argv, match",
    [
        (["nope"], "unknown experiments ['nope']"),
        (["smoke", "--workers", "0"], "--workers must be at least 1"),
        (["smoke", "--seeds", "1"], "give a --folder"),
    ],
)
def test_main_rejects_bad_arguments_in_one_line(argv, match, capsys, tmp_path):
    folder = [] if "--seeds" in argv else ["--folder", str(tmp_path / "r")]
    assert E.main(argv + folder) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()


def test_a_dry_run_prints_the_plan_and_estimate_and_runs_nothing(tmp_path, mnist_path):
    folder = tmp_path / "r"
    old = E.Run("smoke", "margin_0.1", 0)  # an earlier record (other code) times it
    out = _worker_out({}, "0" * 16, seconds=120.0)
    E._write_atomically(old.path(folder), json.dumps(E._record(old, out)))
    lines = []
    counts = E.run_experiments(
        ["smoke"], folder, workers=2, log=lines.append, dry_run=True
    )
    assert counts["planned"] == 4 and counts["stale"] == 1 and counts["ran"] == 0
    assert lines[0].startswith("4 of 4 runs to do (0 fresh, 1 stale, 0 corrupt)")
    # 4 runs at the one timed run's 120 s (margin_0.2's from the experiment's
    # median): 8 min of runs, 4 min on 2 workers
    assert lines[0].endswith("about 8 min of runs, 4 min wall on 2 workers")
    assert lines[1] == "  smoke: 4 runs, about 8 min of runs, 4 min wall on 2 workers"
    E.run_experiments(["fast_loop"], folder, log=lines.append, dry_run=True)
    assert lines[-1].endswith("no earlier records to estimate the time from")
    assert len(list((folder / "smoke").glob("*.json"))) == 1  # nothing ran


@pytest.mark.slow
def test_an_unreachable_scheduler_is_one_error_and_writes_nothing(tmp_path):
    with pytest.raises(ConnectionError, match="no Dask scheduler answers"):
        E.run_experiments(["smoke"], tmp_path / "r", scheduler="tcp://127.0.0.1:9")
    assert not (tmp_path / "r").exists()


def test_load_results_builds_the_chapters_view_from_records(tmp_path, monkeypatch):
    monkeypatch.setitem(X.EXPERIMENTS, "fake", _fake_experiment())
    _write_fake_records(tmp_path, E._current_code())
    result = E.load_results("fake", tmp_path)
    assert "legacy" not in result and result["records"] == 4
    assert [r["seed"] for r in result["runs"]] == [0, 1]
    assert result["runs"][1]["metrics"] == {"a": {"score": 1.0}, "b": {"score": 1.5}}
    assert result["runs"][0]["seconds"] == 4.0 and result["machines"] == ["test CPU"]
    monkeypatch.setitem(X.EXPERIMENTS, "fake", _fake_experiment(rows=True))
    _write_fake_records(tmp_path / "rows", E._current_code(), rows=True)
    rows = E.load_results("fake", tmp_path / "rows")["runs"][0]["metrics"]
    assert rows == {"runs": [{"score": 0.0}, {"score": 0.5}]}  # candidate order
    # a run of table rows may give its one row as a dict (online_mining does)
    _write_fake_records(tmp_path / "one_row", E._current_code(), rows="dict")
    rows = E.load_results("fake", tmp_path / "one_row")["runs"][1]["metrics"]
    assert rows == {"runs": [{"score": 1.0}, {"score": 1.5}]}


def test_a_missing_or_corrupt_record_is_named(tmp_path, monkeypatch):
    monkeypatch.setitem(X.EXPERIMENTS, "fake", _fake_experiment())
    with pytest.raises(FileNotFoundError, match="4 of 4 runs have no record"):
        E.load_results("fake", tmp_path)
    _write_fake_records(tmp_path, E._current_code())
    victim = E.plan("fake")[1].path(tmp_path)
    victim.write_text(victim.read_text()[:40])  # truncated mid-write
    with pytest.raises(ValueError, match=f"corrupt records.*{victim.name}"):
        E.load_results("fake", tmp_path)
    assert any(victim.name in p and "corrupt" in p for p in E.check_records(tmp_path))


def _package_copy(tmp_path, edit):
    copy = tmp_path / "package"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    losses = copy / "losses.py"
    losses.write_text(edit(losses.read_text()))
    return copy


def test_a_docstring_edit_keeps_records_fresh_a_code_change_makes_them_stale(
    tmp_path, monkeypatch
):
    monkeypatch.setitem(X.EXPERIMENTS, "fake", _fake_experiment())
    _write_fake_records(tmp_path, E._current_code())
    source = (PACKAGE / "losses.py").read_text()
    assert '"""Triplet losses' in source and "\n_EPS = 1e-16\n" in source

    doc = _package_copy(
        tmp_path / "doc", lambda s: s.replace('"""Triplet losses', '"""Losses', 1)
    )
    monkeypatch.setattr(
        E, "_current_code", lambda name=None: code_fingerprint(folder=doc)
    )
    assert E.load_results("fake", tmp_path)["records"] == 4
    assert E.check_records(tmp_path) == []

    code = _package_copy(
        tmp_path / "code", lambda s: s.replace("_EPS = 1e-16", "_EPS = 1e-15")
    )
    monkeypatch.setattr(
        E, "_current_code", lambda name=None: code_fingerprint(folder=code)
    )
    with pytest.raises(ValueError, match="4 records made by other code") as err:
        E.load_results("fake", tmp_path)
    for run in E.plan("fake"):
        assert run.path(tmp_path).name in str(err.value)
    assert len(E.check_records(tmp_path)) == 4
    ids = [r.run_id for r in E.plan("fake")]
    assert E.load_results("fake", tmp_path, accept_stale=ids)["records"] == 4


def test_check_records_finds_orphans(tmp_path, monkeypatch):
    monkeypatch.setitem(X.EXPERIMENTS, "fake", _fake_experiment())
    _write_fake_records(tmp_path, E._current_code())
    monkeypatch.setitem(
        X.EXPERIMENTS,
        "fake",
        X.Experiment(**{**_fake_experiment().__dict__, "seeds": (0,)}),
    )
    problems = E.check_records(tmp_path)
    assert len(problems) == 2 and all("belongs to no run" in p for p in problems)


def test_a_failing_run_is_logged_and_the_others_go_on(tmp_path, monkeypatch):
    import concurrent.futures

    monkeypatch.setitem(X.EXPERIMENTS, "fake", _fake_experiment())
    code = E._current_code()

    def task(experiment, candidate, seed, config):
        if (candidate, seed) == ("b", 1):
            raise RuntimeError("the package's code changed during the run")
        return _worker_out({"score": float(seed)}, code, seconds=1.0)

    lines = []
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        done, failed = E._run_all(
            E.plan("fake"), pool, tmp_path, lines.append, False, task
        )
    assert done == 3 and [(r.candidate, r.seed) for r, _ in failed] == [("b", 1)]
    assert any(
        line.startswith("FAILED fake b.s1.") and "changed" in line for line in lines
    )
    assert len(list((tmp_path / "fake").glob("*.json"))) == 3  # no record for it


def test_a_worker_with_other_code_or_data_leaves_no_record(tmp_path, monkeypatch):
    import concurrent.futures

    monkeypatch.setitem(X.EXPERIMENTS, "fake", _fake_experiment())

    def task(experiment, candidate, seed, config):
        return _worker_out({}, "c" * 16 if candidate == "a" else "0" * 16, 1.0)

    lines = []
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        done, failed = E._run_all(
            E.plan("fake"),
            pool,
            tmp_path,
            lines.append,
            False,
            task,
            ("c" * 16, "d" * 16),
        )
    assert done == 2 and {r.candidate for r, _ in failed} == {"b"}
    assert any("the worker ran code 0000000000000000" in line for line in lines)


# ------------------------------------------- experiments planned from others


def _two_stages(monkeypatch):
    """``first`` (two learning rates) and ``second``, chosen from its records.

    The runs go through the engine's own worker function in a pool of threads
    (no training, no MNIST): each run appends (experiment, candidate, seed,
    config) to the list returned, ``scores`` sets first's scores, and a key
    ``(experiment, candidate, seed)`` in ``fail`` makes that run raise.
    """
    import concurrent.futures

    calls, scores, fail, seen = [], {"a": 0.0, "b": 1.0}, set(), []

    def run_first(candidate, seed, mnist):
        calls.append(("first", candidate, seed, None))
        if ("first", candidate, seed) in fail:
            raise RuntimeError("this run fails")
        return {"score": scores[candidate] + seed}

    def run_second(candidate, seed, mnist, config):
        calls.append(("second", candidate, seed, config))
        return {"trained_with": config["lr"]}

    def choose(results):
        seen.append(sorted(results))
        runs = results["first"]["runs"]
        means = {c: sum(r["metrics"][c]["score"] for r in runs) for c in ("a", "b")}
        best = max(means, key=means.__getitem__)
        return {"best": X.EXPERIMENTS["first"].candidates[best]}

    first = X.Experiment(
        name="first",
        description="two candidates",
        seeds=(0, 1),
        candidates={"a": {"lr": 0.1}, "b": {"lr": 0.2}},
        common={},
        run=run_first,
        default=False,
    )
    second = X.Experiment(
        name="second",
        description="the best of first's, chosen from its records",
        seeds=(0, 1),
        candidates=choose,
        common={},
        run=run_second,
        default=False,
        after=("first",),
        candidate_keys=("best",),
    )
    monkeypatch.setitem(X.EXPERIMENTS, "first", first)
    monkeypatch.setitem(X.EXPERIMENTS, "second", second)
    monkeypatch.setattr(E, "_one_thread", lambda: None)
    monkeypatch.setattr(E, "_mnist", lambda: ((None, None), (None, None)))
    monkeypatch.setattr(E, "_mnist_fingerprint", lambda mnist: "d" * 16)
    monkeypatch.setattr(
        E,
        "_executor",
        lambda workers, scheduler: (concurrent.futures.ThreadPoolExecutor(2), None),
    )
    return calls, scores, fail, seen


def test_an_experiment_after_another_is_planned_once_its_records_exist(
    tmp_path, monkeypatch
):
    calls, _, _, seen = _two_stages(monkeypatch)
    lines = []
    counts = E.run_experiments(["second", "first"], tmp_path, log=lines.append)
    assert counts == {
        "planned": 6,
        "fresh": 0,
        "stale": 0,
        "corrupt": 0,
        "ran": 6,
        "failed": 0,
        "waiting": 0,
    }
    # first's four runs, then (its records complete) second's two
    assert [c[0] for c in calls] == ["first"] * 4 + ["second"] * 2
    assert lines[0].startswith("4 of 4 runs to do")
    assert sum(line.startswith("2 of 2 runs to do") for line in lines) == 1
    # b scores best on first's records: second trains with its configuration,
    # and its candidates function read first's results only
    assert {c[3]["lr"] for c in calls if c[0] == "second"} == {0.2}
    assert seen and all(names == ["first"] for names in seen)
    result = E.load_results("second", tmp_path)
    assert result["runs"][1]["metrics"] == {"best": {"trained_with": 0.2}}
    assert E.check_records(tmp_path) == []
    again = E.run_experiments(["first", "second"], tmp_path, log=lines.append)
    assert again["fresh"] == 6 and again["ran"] == 0 and len(calls) == 6


def test_an_experiment_waits_for_an_incomplete_one_and_says_so(
    tmp_path, monkeypatch, capsys
):
    calls, _, fail, _ = _two_stages(monkeypatch)
    lines = []
    counts = E.run_experiments(["second"], tmp_path, log=lines.append)
    assert lines == ["second: waits for first (4 runs missing)"]
    assert counts["waiting"] == 2 and counts["planned"] == 0 and calls == []
    fail.add(("first", "b", 1))
    counts = E.run_experiments(["first", "second"], tmp_path, log=lines.append)
    assert (counts["ran"], counts["failed"], counts["waiting"]) == (3, 1, 2)
    assert lines[-1] == "second: waits for first (1 run missing)"
    assert not (tmp_path / "second").exists()
    with pytest.raises(
        FileNotFoundError,
        match=r"second chooses its candidates from first's records.*"
        r"1 of 4 runs have no record",
    ):
        E.load_results("second", tmp_path)
    with pytest.raises(ValueError, match="plan its runs with plan"):
        E.Run("second", "best", 0)  # its configuration comes from records
    assert E.main(["second", "--folder", str(tmp_path)]) == 1  # nothing it could run
    assert "0 runs done, 0 were fresh, 0 failed, 2 wait" in capsys.readouterr().out


def test_a_dry_run_says_whose_records_choose_the_candidates(tmp_path, monkeypatch):
    calls, _, _, _ = _two_stages(monkeypatch)
    lines = []
    counts = E.run_experiments(
        ["first", "second"], tmp_path, log=lines.append, dry_run=True
    )
    assert lines[0].startswith("4 of 4 runs to do (0 fresh")
    assert lines[-1] == (
        "second: its candidates are chosen from first's records (4 runs "
        "missing): 2 runs (1 candidate x 2 seeds) once they are complete"
    )
    assert counts["planned"] == 4 and counts["waiting"] == 2 and calls == []
    assert not (tmp_path / "first").exists()
    E.run_experiments(["first"], tmp_path, log=lines.append)
    counts = E.run_experiments(["second"], tmp_path, log=lines.append, dry_run=True)
    assert counts["planned"] == 2 and counts["waiting"] == 0  # now it can plan
    assert lines[-2].startswith("2 of 2 runs to do")


def test_new_records_upstream_choose_again_under_new_run_ids(tmp_path, monkeypatch):
    calls, _, _, _ = _two_stages(monkeypatch)
    E.run_experiments(["first", "second"], tmp_path, log=lambda line: None)
    old = {r.run_id for r in E.plan("second", folder=tmp_path)}
    for run in E.plan("first"):  # first's records now favour a
        path = run.path(tmp_path)
        record = json.loads(path.read_text())
        record["metrics"]["score"] = 9.0 if run.candidate == "a" else 0.0
        path.write_text(json.dumps(record))
    new = {r.run_id for r in E.plan("second", folder=tmp_path)}
    assert len(new) == 2 and not new & old
    orphans = E.check_records(tmp_path)
    assert len(orphans) == 2 and all("belongs to no run" in p for p in orphans)
    with pytest.raises(FileNotFoundError, match="2 of 2 runs have no record"):
        E.load_results("second", tmp_path)
    counts = E.run_experiments(["first", "second"], tmp_path, log=lambda line: None)
    assert counts["fresh"] == 4 and counts["ran"] == 2
    assert [c[3]["lr"] for c in calls[-2:]] == [0.1, 0.1]
    assert E.load_results("second", tmp_path)["runs"][0]["metrics"] == {
        "best": {"trained_with": 0.1}
    }
    # an incomplete upstream: second's records cannot be checked against a choice
    E.plan("first")[0].path(tmp_path).unlink()
    problems = E.check_records(tmp_path)
    assert len(problems) == 4 and all(
        "its candidates cannot be chosen" in p and "first's records" in p
        for p in problems
    )


def test_experiments_planned_from_others_reject_bad_definitions(tmp_path, monkeypatch):
    _two_stages(monkeypatch)
    second = X.EXPERIMENTS["second"]
    fields = {**second.__dict__}
    with pytest.raises(ValueError, match="need candidate_keys"):
        X.Experiment(**{**fields, "candidate_keys": ()})
    with pytest.raises(ValueError, match="cannot come after itself"):
        X.Experiment(**{**fields, "after": ("second",)})
    with pytest.raises(TypeError, match="after must be a tuple of str"):
        X.Experiment(**{**fields, "after": "first"})
    first = X.EXPERIMENTS["first"]
    with pytest.raises(ValueError, match="differ from the candidates' keys"):
        X.Experiment(**{**first.__dict__, "candidate_keys": ("b", "a")})
    with pytest.raises(TypeError, match="candidates must be a dict or a function"):
        X.Experiment(**{**first.__dict__, "candidates": [1, 2]})
    assert E.resolve_candidates("first", tmp_path) == first.candidates
    with pytest.raises(ValueError, match="config differs from first's candidate"):
        E.Run("first", "a", 0, {"lr": 0.3})
    E.run_experiments(["first"], tmp_path, log=lambda line: None)
    assert E.resolve_candidates("second", tmp_path) == {"best": {"lr": 0.2}}
    wrong = X.Experiment(**{**fields, "candidates": lambda results: {"x": {}}})
    monkeypatch.setitem(X.EXPERIMENTS, "second", wrong)
    with pytest.raises(ValueError, match=r"must give the keys \['best'\]"):
        E.plan("second", folder=tmp_path)
    unhashable = X.Experiment(
        **{**fields, "candidates": lambda results: {"best": {"lr": float("nan")}}}
    )
    monkeypatch.setitem(X.EXPERIMENTS, "second", unhashable)
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        E.plan("second", folder=tmp_path)
    looped = X.Experiment(**{**first.__dict__, "after": ("second",)})
    monkeypatch.setitem(X.EXPERIMENTS, "second", second)
    monkeypatch.setitem(X.EXPERIMENTS, "first", looped)
    with pytest.raises(ValueError, match="come after each other: first -> second"):
        E.run_experiments(["first"], tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_importing_the_engine_leaves_tensorflow_to_its_workers():
    """Nothing runs a TensorFlow op at import (a pair-loss Recipe would): a
    worker imports the engine, then sets TensorFlow to one thread."""
    code = (
        "import tripletutils.engine, tensorflow as tf; "
        "tf.config.threading.set_intra_op_parallelism_threads(1); print('ok')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_the_committed_records_are_fresh():
    """CI: no committed record comes from code that is gone (or is an orphan)."""
    problems = E.check_records(E.RESULTS)
    assert problems == [], "\n".join(problems)


def test_the_results_live_in_the_package():
    assert E.RESULTS == PACKAGE / "results"
    assert sorted(p.name for p in E.RESULTS.iterdir() if p.is_dir())


@pytest.mark.slow
def test_the_built_package_carries_every_committed_result(tmp_path):
    """A chapter opened alone (Colab, an empty folder) reads what pip installed."""
    src = tmp_path / "src"
    shutil.copytree(
        PACKAGE,
        src / "tripletutils",
        ignore=shutil.ignore_patterns("__pycache__", ".lock", ".*.tmp"),
    )
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet"]
        + ["--disable-pip-version-check", "-w", str(tmp_path / "wheel"), str(src)],
        check=True,
    )
    (wheel,) = (tmp_path / "wheel").glob("tripletutils-*.whl")
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    committed = {
        p.relative_to(ROOT).as_posix()
        for p in E.RESULTS.rglob("*.json")
        if not p.name.startswith(".")
    }
    assert "tripletutils/results/cpu_2cores.json" in committed
    assert any(c.count("/") == 3 for c in committed)  # records: results/<exp>/<id>
    missing = sorted(committed - names)
    assert not missing, f"not in the wheel: {missing[:5]} ({len(missing)})"


# ------------------------------------------------------ end to end (training)


def _metrics(folder):
    """Each record's metrics without the timings (which differ run to run)."""
    out = {}
    for path in sorted((Path(folder) / "smoke").glob("*.json")):
        metrics = json.loads(path.read_text())["metrics"]
        out[path.name] = {k: v for k, v in metrics.items() if k != "fit_seconds"}
    return out


def _engine(*args, **kwargs):
    cmd = [sys.executable, "-m", "tripletutils.engine", "smoke", *args]
    return subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        **kwargs,
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory, mnist_path):
    """The smoke experiment, uninterrupted, in the local pool of 2 processes."""
    folder = tmp_path_factory.mktemp("reference")
    counts = E.run_experiments(["smoke"], folder, workers=2, log=lambda line: None)
    assert counts == {
        "planned": 4,
        "fresh": 0,
        "stale": 0,
        "corrupt": 0,
        "ran": 4,
        "failed": 0,
        "waiting": 0,
    }
    metrics = _metrics(folder)
    assert len(metrics) == 4 and all(
        0 < m["val_map_at_r"] <= 1 for m in metrics.values()
    )
    return folder, metrics


@pytest.mark.slow
def test_a_killed_run_resumes_without_running_a_finished_run_twice(tmp_path, reference):
    _, expected = reference
    proc = _engine("--folder", str(tmp_path), "--workers", "1")
    deadline = time.monotonic() + 300
    while not list((tmp_path / "smoke").glob("*.json")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the engine and its worker, at once
    proc.wait()
    kept = {p.name: p.read_bytes() for p in (tmp_path / "smoke").glob("*.json")}
    assert 1 <= len(kept) < 4
    again = _engine("--folder", str(tmp_path), "--workers", "1")
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0, out
    assert f"{4 - len(kept)} of 4 runs to do ({len(kept)} fresh" in out
    for name, data in kept.items():  # finished before the kill: not run again
        assert (tmp_path / "smoke" / name).read_bytes() == data
    assert _metrics(tmp_path) == expected
    assert not list((tmp_path / "smoke").glob(".*.tmp"))  # no half-written file


@pytest.mark.slow
def test_a_dask_cluster_gives_the_local_pools_records(tmp_path, reference):
    distributed = pytest.importorskip("distributed")
    _, expected = reference
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        counts = E.run_experiments(
            ["smoke"], tmp_path, scheduler=cluster.scheduler_address, log=print
        )
    assert counts["ran"] == 4
    assert _metrics(tmp_path) == expected  # bit for bit


@pytest.mark.slow
def test_dask_workers_of_several_threads_are_refused(tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster:
        with pytest.raises(ConnectionError, match="must each have one thread"):
            E.run_experiments(
                ["smoke"], tmp_path / "r", scheduler=cluster.scheduler_address
            )
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_a_truncated_record_is_named_and_run_again(tmp_path, reference):
    folder, expected = reference
    shutil.copytree(folder / "smoke", tmp_path / "smoke")
    victim = sorted((tmp_path / "smoke").glob("*.json"))[2]
    victim.write_text(victim.read_text()[:100])
    lines = []
    counts = E.run_experiments(["smoke"], tmp_path, workers=1, log=lines.append)
    assert counts["corrupt"] == 1 and counts["ran"] == 1 and counts["fresh"] == 3
    assert any(victim.name in line and "corrupt" in line for line in lines)
    assert _metrics(tmp_path) == expected


@pytest.mark.slow
def test_two_engines_at_once_leave_whole_records(tmp_path, reference):
    _, expected = reference
    first = _engine("--folder", str(tmp_path), "--workers", "1")
    time.sleep(0.5)
    second = _engine("--folder", str(tmp_path), "--workers", "1")
    outs = [p.communicate(timeout=600)[0] for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outs
    assert any("waiting for it to finish" in out for out in outs), outs
    done = sorted(int(out.rsplit(" runs done", 1)[0].split()[-1]) for out in outs)
    assert done == [0, 4]  # the second found everything fresh
    assert _metrics(tmp_path) == expected


def test_an_experiments_code_is_what_its_run_needs(tmp_path, monkeypatch):
    """Adding or changing one experiment leaves the others' records fresh."""
    names = ["_smoke_run"]
    here = code_fingerprint(entry_points={"experiments.py": names})
    assert E._current_code("smoke") == here != E._current_code()
    assert E._current_code("smoke") != E._current_code("transfer_validation")
    copy = tmp_path / "package"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    source = (copy / "experiments.py").read_text()
    neighbour = source + "\n\ndef _another_run(key, seed, mnist):\n    return {}\n"
    (copy / "experiments.py").write_text(neighbour)
    assert code_fingerprint(folder=copy, entry_points={"experiments.py": names}) == here
    assert "steps=20, embedding_dim=16" in source
    (copy / "experiments.py").write_text(
        neighbour.replace("steps=20, embedding_dim=16", "steps=21, embedding_dim=16")
    )
    assert code_fingerprint(folder=copy, entry_points={"experiments.py": names}) != here
    # a test's experiment (its run defined outside the package): the whole code
    monkeypatch.setitem(X.EXPERIMENTS, "fake", _fake_experiment())
    assert E._current_code("fake") == E._current_code()


def test_the_local_pool_runs_each_run_in_a_fresh_process():
    # a run cannot depend on what ran before it in the same worker, and a long
    # sitting cannot build up memory (a reused worker once grew to 12 GB)
    pool, after = E._executor(1, None)
    try:
        pids = [pool.submit(os.getpid).result(timeout=300) for _ in range(3)]
    finally:
        pool.shutdown()
    assert after is None
    assert len(set(pids)) == 3 and os.getpid() not in pids
