"""Benchmark of the driver's time-sized chunks: how long a chunk takes and how soon a cancel takes effect.

For each case (map size, prior, sampler) a run with ``chunk_seconds = 0.5`` is started through
``core.pipeline.run``; a timer sets the cancel event ``--cancel-after`` seconds in (mid-chunk, as a Stop button
or Ctrl-C would) and we record the wall time of every chunk (between snapshots) and the latency from the
cancel to the generator's end. The first chunks include tracing (one transition each); the statistics of the
chunk durations are over the chunks after the first two. Prints one JSON document::

    python benchmarks/bench_chunks.py              # 64², 128², 256² Gaussian + 128² hybrid (≈ 1 min)
    python benchmarks/bench_chunks.py --quick      # 64² Gaussian only
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from core import pipeline  # noqa: E402

CASES = [(64, "gaussian", "hmc"), (128, "gaussian", "hmc"), (256, "gaussian", "hmc"), (128, "hybrid", "hmc")]


def measure(npix: int, prior: str, sampler: str, chunk_seconds: float, cancel_after: float) -> dict:
    problem = pipeline.simulated_problem(npix, 0.87, source="lognormal", mask="random_holes", prior=prior, seed=0)
    schedule = pipeline.make_schedule(num_levels=200, steps_per_level=10)  # far more than the run will do
    cancel = threading.Event()
    stamps: list[float] = []
    steps: list[int] = []
    start = time.perf_counter()
    timer = None
    for snap in pipeline.run(problem, sampler, schedule, num_chains=8, seed=0, chunk_seconds=chunk_seconds, cancel=cancel):
        stamps.append(time.perf_counter())
        steps.append(snap.step)
        if timer is None:  # start the clock once the first (tracing) chunk is back
            timer = threading.Timer(cancel_after, cancel.set)
            timer.start()
            cancel_set_at = time.perf_counter() + cancel_after
    end = time.perf_counter()
    durations = np.diff(np.array([start] + stamps))
    steady = durations[2:] if len(durations) > 3 else durations[1:]
    sizes = np.diff(np.array([0] + steps))
    return {
        "npix": npix, "prior": prior, "sampler": sampler, "chunk_seconds": chunk_seconds,
        "num_chunks": len(stamps), "chunk_transitions": sizes.tolist(),
        "chunk_s_median": float(np.median(steady)), "chunk_s_max": float(np.max(steady)),
        "first_chunk_s": float(durations[0]), "cancel_latency_s": float(end - cancel_set_at),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="only the 64² Gaussian case")
    p.add_argument("--chunk-seconds", type=float, default=0.5)
    p.add_argument("--cancel-after", type=float, default=4.0, help="seconds after the first chunk")
    args = p.parse_args()
    cases = CASES[:1] if args.quick else CASES
    results = [measure(n, prior, s, args.chunk_seconds, args.cancel_after) for n, prior, s in cases]
    print(json.dumps({"machine": platform.platform(), "cpus": os.cpu_count(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
