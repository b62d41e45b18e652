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
