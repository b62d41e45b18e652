import subprocess
import sys

import pytest

from tripletutils.runtime import import_tensorflow, set_seed


def test_fresh_process_import_is_silent():
    code = (
        "from tripletutils.runtime import import_tensorflow; "
        "tf = import_tensorflow(); print(tf.constant(2).numpy())"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0
    assert proc.stdout.strip() == "2"
    assert proc.stderr == ""


def test_stderr_works_again_after_import():
    code = (
        "import os; from tripletutils.runtime import import_tensorflow; "
        "import_tensorflow();"
        "os.write(2, b'still here')"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stderr == "still here"


def test_set_seed_makes_draws_repeatable():
    import keras

    set_seed(3)
    a = keras.random.uniform((4,)).numpy()
    set_seed(3)
    assert (a == keras.random.uniform((4,)).numpy()).all()


def test_bad_arguments():
    with pytest.raises(ValueError, match="0..3"):
        import_tensorflow(7)
    with pytest.raises(TypeError, match="seed must be an int"):
        set_seed("0")


def test_bfloat16_is_native_reads_the_cpu_flags(monkeypatch):
    from tripletutils.runtime import bfloat16_is_native

    monkeypatch.delenv("TRIPLETUTILS_BFLOAT16")
    tf = import_tensorflow()
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind: [])
    intel = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_tile\n"
    amd = "processor\t: 0\nflags\t\t: fpu avx2 fma f16c\n"
    assert bfloat16_is_native(intel) is True
    assert bfloat16_is_native("flags : sse amx_bf16") is True
    assert bfloat16_is_native(amd) is False
    assert bfloat16_is_native("no flags line here") is False
    assert bfloat16_is_native("flags : avx512_bf16x") is False  # whole flags only
    monkeypatch.setenv("TRIPLETUTILS_BFLOAT16", "0")
    assert bfloat16_is_native(intel) is False
    monkeypatch.setenv("TRIPLETUTILS_BFLOAT16", "1")
    assert bfloat16_is_native(amd) is True


def test_bfloat16_is_native_rejects_bad_input(monkeypatch):
    from tripletutils.runtime import bfloat16_is_native

    with pytest.raises(TypeError, match="cpuinfo must be a str"):
        bfloat16_is_native(b"flags : avx512_bf16")
    monkeypatch.setenv("TRIPLETUTILS_BFLOAT16", "yes")
    with pytest.raises(ValueError, match="must be 0 or 1, got 'yes'"):
        bfloat16_is_native()


def test_compute_precision_falls_back_to_float32_where_bfloat16_is_emulated(
    monkeypatch, tiny_data
):
    import dataclasses

    from tripletutils.training import Recipe, compute_precision, train

    bf16 = Recipe("r", p=4, k=6, steps=2, dropout=0.0, precision="mixed_bfloat16")
    f16 = dataclasses.replace(bf16, precision="mixed_float16")
    f32 = dataclasses.replace(bf16, precision="float32")
    monkeypatch.setenv("TRIPLETUTILS_BFLOAT16", "0")
    assert compute_precision(bf16) == "float32"
    assert compute_precision(f16) == "mixed_float16"  # kept as asked
    assert compute_precision(f32) == "float32"
    x, y = tiny_data(48)
    _, model, history = train(bf16, x, y, seed=0)
    assert history["precision"] == "float32"
    assert history["recipe"]["precision"] == "mixed_bfloat16"  # what was asked
    assert all(layer.dtype_policy.name == "float32" for layer in model.layers)
    monkeypatch.setenv("TRIPLETUTILS_BFLOAT16", "1")
    assert compute_precision(bf16) == "mixed_bfloat16"
    _, _, history = train(bf16, x, y, seed=0)
    assert history["precision"] == "mixed_bfloat16"
    with pytest.raises(TypeError):
        compute_precision("mixed_bfloat16")
