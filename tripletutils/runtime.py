"""Start TensorFlow quietly and reproducibly.

TensorFlow 2.21 writes start-up lines to the process's standard error while it
loads its C++ libraries ("oneDNN custom operations are on", "Could not find
cuda drivers", "failed call to cuInit"). Most are logged *before* Abseil's
logging is initialised, so ``TF_CPP_MIN_LOG_LEVEL`` does not filter them (we
measured this with tensorflow and tensorflow-cpu 2.21), and the only variable
that removes the oneDNN line, ``TF_ENABLE_ONEDNN_OPTS=0``, also turns oneDNN
off, which slows CPU training: on the book's 2-core AMD EPYC with AVX2, oneDNN
made training 1.3 times faster (see :func:`import_tensorflow`). In Jupyter
those lines land in the notebook as red stderr blocks.

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
from typing import Dict, Iterator, Optional

__all__ = ["import_tensorflow", "set_seed", "bfloat16_is_native", "hardware_info"]

#: ``/proc/cpuinfo`` flags of x86 CPUs that compute bfloat16 products natively.
_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


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

    It also sets ``TF_ENABLE_ONEDNN_OPTS=1`` if the variable is not set yet:
    TensorFlow turns oneDNN on by itself only on CPUs with AVX-512 or AMX; on
    the book's 2-core AMD EPYC with AVX2 it made training 1.3 times faster
    (300 steps of the book's best recipe in float32: 19.9 s instead of 25.2 s).

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
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
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


def bfloat16_is_native(cpuinfo: Optional[str] = None) -> bool:
    """Whether this machine computes bfloat16 natively (so that it pays off).

    On a CPU without bfloat16 instructions TensorFlow emulates them: on a
    2-core AMD EPYC with AVX2 only, a step of the book's best recipe took
    0.52 s in bfloat16 and 0.066 s in float32 (200 and 300 steps timed).
    True on a GPU of compute capability 8.0 or newer, and on an x86 CPU whose
    ``/proc/cpuinfo`` flags list
    ``avx512_bf16`` or ``amx_bf16``; False elsewhere (other CPUs, older GPUs,
    no ``/proc/cpuinfo``). The environment variable ``TRIPLETUTILS_BFLOAT16``
    overrides the answer: ``1`` for True, ``0`` for False.

    Parameters
    ----------
    cpuinfo : str, optional
        The text of ``/proc/cpuinfo`` (default: read it); for tests.

    Returns
    -------
    bool

    Raises
    ------
    TypeError
        If ``cpuinfo`` is not a str.
    ValueError
        If ``TRIPLETUTILS_BFLOAT16`` is set to anything but ``0`` or ``1``.
    """
    if cpuinfo is not None and not isinstance(cpuinfo, str):
        raise TypeError(f"cpuinfo must be a str, got {type(cpuinfo).__name__}")
    override = os.environ.get("TRIPLETUTILS_BFLOAT16")
    if override is not None:
        if override not in ("0", "1"):
            raise ValueError(f"TRIPLETUTILS_BFLOAT16 must be 0 or 1, got {override!r}")
        return override == "1"
    tf = import_tensorflow()
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        if tuple(details.get("compute_capability") or (0, 0)) >= (8, 0):
            return True
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                cpuinfo = f.read()
        except OSError:
            return False
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            return any(flag in flags for flag in _BF16_CPU_FLAGS)
    return False


def hardware_info() -> Dict[str, str]:
    """Describe the machine and software a measurement ran on.

    Returns
    -------
    dict of str to str
        ``cpu`` (model name from /proc/cpuinfo, else ``platform.processor()``),
        ``cores`` (logical CPUs usable by this process), ``python``,
        ``tensorflow``, ``keras``, ``onednn`` (the ``TF_ENABLE_ONEDNN_OPTS``
        setting, "default (on)" when unset) and ``gpus`` (count).
    """
    import platform

    import keras
    import tensorflow as tf

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 0
    return {
        "cpu": cpu,
        "cores": str(cores),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)"),
        "gpus": str(len(tf.config.list_physical_devices("GPU"))),
    }
