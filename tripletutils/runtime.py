"""Start TensorFlow quietly and reproducibly.

TensorFlow 2.21 writes start-up lines to the process's standard error while it
loads its C++ libraries ("oneDNN custom operations are on", "Could not find
cuda drivers", "failed call to cuInit"). Most are logged *before* Abseil's
logging is initialised, so ``TF_CPP_MIN_LOG_LEVEL`` does not filter them (we
measured this with tensorflow and tensorflow-cpu 2.21), and the only variable
that removes the oneDNN line, ``TF_ENABLE_ONEDNN_OPTS=0``, also makes CPU
training about 1.6 times slower. In Jupyter those lines land in the notebook
as red stderr blocks.

:func:`import_tensorflow` therefore sets the logging variables *and* points
file descriptor 2 at ``/dev/null`` for the duration of the import and of the
device discovery, then restores it: the lines are never written, and every
later warning or error reaches you as usual.

Import this module before anything that imports TensorFlow. It imports only
the standard library until :func:`import_tensorflow` is called.
"""

from __future__ import annotations

import contextlib
import os
import sys
from types import ModuleType
from typing import Iterator, Optional

__all__ = ["import_tensorflow", "set_seed"]


@contextlib.contextmanager
def _stderr_fd_silenced() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null inside the block (C++ writes too)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow(min_log_level: int = 3) -> ModuleType:
    """Import TensorFlow without its start-up noise and return the module.

    Parameters
    ----------
    min_log_level : int, default 3
        Value for ``TF_CPP_MIN_LOG_LEVEL`` if it is not set yet: 0 shows all
        C++ logs, 1 hides INFO, 2 hides WARNING, 3 hides ERROR too. The
        default is 3 because Keras 3.15's ``model.predict`` on TensorFlow 2.21
        logs a harmless C++ *error* ("NodeDef mentions attribute
        use_unbounded_threadpool which is not in the op definition") on every
        call. Errors that matter still arrive as Python exceptions; set the
        variable yourself to see the C++ logs. With a level of 1 or more the
        Python logger ``tensorflow`` is also set to WARNING (it prints INFO
        lines such as "Assets written to ..." when exporting a SavedModel).

    Returns
    -------
    module
        The ``tensorflow`` module.

    Raises
    ------
    TypeError
        If ``min_log_level`` is not an int.
    ValueError
        If ``min_log_level`` is outside 0..3.
    """
    if isinstance(min_log_level, bool) or not isinstance(min_log_level, int):
        raise TypeError(
            f"min_log_level must be an int, got {type(min_log_level).__name__}"
        )
    if not 0 <= min_log_level <= 3:
        raise ValueError(f"min_log_level must be in 0..3, got {min_log_level}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", str(min_log_level))
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    with _stderr_fd_silenced():
        import tensorflow as tf

        tf.config.list_physical_devices()  # device discovery logs here, once
    if int(os.environ["TF_CPP_MIN_LOG_LEVEL"]) >= 1:
        tf.get_logger().setLevel("WARNING")
    return tf


def set_seed(seed: int = 0, deterministic: Optional[bool] = True) -> None:
    """Seed Python, NumPy and TensorFlow, and ask TensorFlow for deterministic ops.

    Parameters
    ----------
    seed : int, default 0
        Passed to ``keras.utils.set_random_seed``.
    deterministic : bool, default True
        Also call ``tf.config.experimental.enable_op_determinism()``, so that
        two runs on the same CPU give the same numbers.

    Raises
    ------
    TypeError
        If ``seed`` is not an int.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    tf = import_tensorflow()
    import keras

    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
