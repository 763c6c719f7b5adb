"""Benchmark of the 2-D lab: frames per second of the compute + view-update path with 500 chains. Writes JSON.

The lab app is built exactly as for a browser session (its Bokeh models are instantiated with ``get_root`` in
a Bokeh ``Document``, so every frame really sets the ColumnDataSource columns that would be sent to the
browser) and :meth:`dashboard.lab.app.LabApp.advance` — what the session's periodic callback does while
playing: ``speed`` transitions of the compiled kernel, the trajectory re-run, histograms, energy distance
every few frames, density/score field when σ changes — is timed over ``--frames`` frames after a warm-up
(tracing excluded, reported separately as ``first_frame_s``). The frame rate a browser sees is at most this
and at most ``1000 / PERIOD_MS``.

Usage: ``python benchmarks/bench_lab.py [--frames 60] [--chains 500] [--output benchmarks/results/lab.json]``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CASES = [  # (target, sampler, leapfrog steps, transitions per frame)
    ("bimodal", "hmc", 5, 1),
    ("bimodal", "hmc", 5, 2),
    ("banana", "hmc", 5, 2),
    ("ring", "hmc", 5, 2),
    ("inverse", "hmc", 5, 2),
    ("ring", "mala", 1, 2),
]


def run_case(target: str, sampler: str, leapfrog: int, speed: int, chains: int, frames: int) -> dict:
    from bokeh.document import Document

    from dashboard.lab.app import PERIOD_MS, LabApp

    query = {"target": target, "sampler": sampler, "leapfrog_steps": str(leapfrog), "speed": str(speed),
             "num_chains": str(chains), "teaching": "false"}
    app = LabApp(query=query)
    assert not app.url_errors, app.url_errors
    doc = Document()
    app.__panel__().get_root(doc)
    app._warm_thread.join()
    start = time.perf_counter()
    app.advance(speed)
    first = time.perf_counter() - start
    for _ in range(3):
        app.advance(speed)
    times = []
    for _ in range(frames):
        t0 = time.perf_counter()
        app.advance(speed)
        times.append(time.perf_counter() - t0)
    times_ms = 1e3 * np.asarray(times)
    fps = 1e3 / times_ms.mean()
    return {
        "target": target, "sampler": sampler, "leapfrog_steps": leapfrog, "transitions_per_frame": speed,
        "num_chains": chains, "frames": frames, "first_frame_s": round(first, 3),
        "frame_ms_mean": round(float(times_ms.mean()), 2), "frame_ms_p95": round(float(np.percentile(times_ms, 95)), 2),
        "compute_plus_update_fps": round(float(fps), 1),
        "browser_fps_bound": round(float(min(fps, 1000.0 / PERIOD_MS)), 1),
        "transitions_per_second": round(float(fps * speed), 1),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--chains", type=int, default=500)
    parser.add_argument("--quick", action="store_true", help="the first case only, 10 frames")
    parser.add_argument("--output", default=str(Path(__file__).resolve().parent / "results" / "lab.json"))
    args = parser.parse_args(argv)
    cases = CASES[:1] if args.quick else CASES
    frames = 10 if args.quick else args.frames
    load_before = os.getloadavg()
    results = [run_case(*case, chains=args.chains, frames=frames) for case in cases]
    out = {
        "benchmark": "lab", "target_fps": 10, "num_chains": args.chains,
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_average_before": [round(v, 2) for v in load_before],
                    "load_average_after": [round(v, 2) for v in os.getloadavg()]},
        "results": results,
        "min_fps": min(r["compute_plus_update_fps"] for r in results),
    }
    text = json.dumps(out, indent=2)
    print(text)
    if not args.quick:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text + "\n")
    return out


if __name__ == "__main__":
    main()
