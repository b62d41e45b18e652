"""The training-step profile: kernel kinds, the breakdown's arithmetic, the file."""

import json

import pytest

from tripletutils.step_profile import (
    BOOK_PROFILE,
    KINDS,
    kind_of,
    profile_training_steps,
)

BODY = "while/body/_1/while/triplet_model_1/embedding_net_1"
GRAD = "while/body/_1/gradient_tape/while/triplet_model_1/embedding_net_1"


@pytest.mark.parametrize(
    "event, kind",
    [
        (f"{BODY}/conv2d_1/Relu:_MklNativeFusedConv2D", "convolutions"),
        (
            f"{GRAD}/conv2d_1/convolution/Conv2DBackpropInput:_MklNativeConv2DBackpropInput",
            "convolutions",
        ),
        (f"{GRAD}/conv2d_1/ReluGrad:ReluGrad", "activations and pooling"),
        (
            f"{BODY}/max_pooling2d_1/MaxPool2d:_MklNativeMaxPool",
            "activations and pooling",
        ),
        (f"{BODY}/dense_1/MatMul:_MklMatMul", "dense layer"),
        (f"{BODY}/dropout_1/stateless_dropout/SelectV2:SelectV2", "dropout"),
        ("while/body/_1/while/adam/Sqrt:Sqrt", "optimizer updates"),
        (
            "while/body/_1/while/AssignAddVariableOp:AssignAddVariableOp",
            "optimizer updates",
        ),
        (f"{BODY}/Cast:Cast", "precision casts"),
        ("while/body/_1/while/GatherV2:GatherV2", "batch gather"),
        ("while/body/_1/while/Sub:Sub", "other operations"),
    ],
)
def test_kind_of_sorts_the_recorded_kernels(event, kind):
    assert kind_of(event) == kind and kind in KINDS


def test_kind_of_rejects_what_is_not_a_kernel_event():
    with pytest.raises(ValueError, match="not a kernel event"):
        kind_of("ExecutorState::Process".replace("::", "."))
    with pytest.raises(TypeError):
        kind_of(3)


def _check_breakdown(row):
    kinds = sum(row["kinds"].values())
    assert kinds == pytest.approx(row["kernel_seconds"], rel=1e-9)
    assert set(row["kinds"]) == set(KINDS)
    total = row["kernel_seconds"] + row["executor_seconds"] + row["idle_seconds"]
    assert total == pytest.approx(row["threads"] * row["seconds_profiled"], rel=1e-6)
    assert row["threads"] >= 1 and row["kernels_per_step"] > 10
    assert row["kinds"]["convolutions"] > 0 and row["kinds"]["optimizer updates"] > 0


def test_a_short_profile_accounts_for_every_thread_second(tiny_data):
    x, y = tiny_data(240)
    row = profile_training_steps(
        x, y, steps=20, batch_size=4, steps_per_execution=10, precision="float32"
    )
    assert row["steps"] == 20 and row["precision"] == "float32"
    assert row["ms_per_step"] == pytest.approx(1000 * row["seconds_unprofiled"] / 20)
    _check_breakdown(row)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(steps=25, steps_per_execution=10), ValueError),
        (dict(steps=0), ValueError),
        (dict(steps=2.0), TypeError),
        (dict(batch_size=1, steps=10, steps_per_execution=10), ValueError),
        (dict(precision="mixed_float16", steps=10, steps_per_execution=10), ValueError),
    ],
)
def test_profile_rejects_bad_settings(tiny_data, kwargs, error):
    x, y = tiny_data(40)
    with pytest.raises(error):
        profile_training_steps(x, y, **kwargs)


def test_profile_rejects_mismatched_arrays(tiny_data):
    x, y = tiny_data(40)
    with pytest.raises(ValueError, match="one label per image"):
        profile_training_steps(x, y[:-1], steps=10, steps_per_execution=10)
    with pytest.raises(ValueError, match="4-D"):
        profile_training_steps(x[..., 0], y, steps=10, steps_per_execution=10)


def test_the_committed_profile_is_complete_and_adds_up():
    result = json.loads(BOOK_PROFILE.read_text())
    assert result["command"] == "python -m tripletutils.step_profile"
    assert result["code_fingerprint"] and result["hardware"]["cpu"]
    rows = {row["precision"]: row for row in result["profiles"]}
    assert set(rows) == {"mixed_bfloat16", "float32"}
    for row in rows.values():
        _check_breakdown(row)
