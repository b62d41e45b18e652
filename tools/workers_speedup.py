"""Measure what `make experiments --workers N` gains on this machine.

The same runs (online_mining's first four candidates, seed 0: 600 steps each,
scored as the experiment scores them) three ways, in this order, on an otherwise
idle machine:

* one process computing with TensorFlow's default threads, the runs one after
  another (the engine before this one);
* the engine's local pool with 1 worker (one process of one thread);
* the engine's local pool with 2 workers (two processes of one thread each).

Prints the wall time of each and the ratios. Usage, from the repository root:
``.venv/bin/python tools/workers_speedup.py`` (about 5 minutes on 2 cores).
"""

import concurrent.futures
import multiprocessing
import subprocess
import sys
import time

from tripletutils import engine as E
from tripletutils.runtime import hardware_info

RUNS = [
    ("online_mining", c, 0) for c in list(E.EXPERIMENTS["online_mining"].candidates)[:4]
]

SEQUENTIAL = """
import sys, time
from tripletutils import engine as E
runs = {runs!r}
E._mnist()
t0 = time.perf_counter()
for name, candidate, seed in runs:
    E.EXPERIMENTS[name].run(candidate, seed, E._mnist())
print(time.perf_counter() - t0)
"""


def pool(workers: int) -> float:
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=context, initializer=E._one_thread
    ) as ex:
        warm = [ex.submit(E._mnist) for _ in range(workers)]  # load data, import TF
        concurrent.futures.wait(warm)
        t0 = time.perf_counter()
        futures = [ex.submit(E._execute, *run) for run in RUNS]
        for f in futures:
            f.result()
        return time.perf_counter() - t0


def main() -> int:
    print(f"CPU: {hardware_info()['cpu']}, {hardware_info()['cores']} cores")
    out = subprocess.run(
        [sys.executable, "-c", SEQUENTIAL.format(runs=RUNS)],
        capture_output=True,
        text=True,
        check=True,
    )
    one_process = float(out.stdout.strip().splitlines()[-1])
    one_worker = pool(1)
    two_workers = pool(2)
    print(f"{len(RUNS)} runs of online_mining, seed 0 (600 steps each):")
    print(f"  1 process, default threads: {one_process:6.1f} s")
    print(f"  --workers 1 (1 thread):     {one_worker:6.1f} s")
    print(f"  --workers 2 (1 thread each): {two_workers:6.1f} s")
    print(
        f"  --workers 2 vs 1 process, default threads: "
        f"{one_process / two_workers:.2f} x"
    )
    print(f"  --workers 2 vs --workers 1: {one_worker / two_workers:.2f} x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
