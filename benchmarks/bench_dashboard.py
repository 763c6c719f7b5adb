"""Benchmark of the dashboard's default demo: time to reach σ_min and the page refresh rate. Prints JSON.

The app is built exactly as for a browser session (its Bokeh models are instantiated with ``get_root`` so every
frame really re-renders the plots) and its ``refresh`` is called every ``REFRESH_MS`` ms from this thread, as
the session's periodic callback would, while the run controller samples on its worker thread.

Reported: ``prepare_s`` (observation, prior, baselines), ``sample_s`` (driver's elapsed time to the final
snapshot, compilation included), ``wall_to_sigma_min_s`` (Run pressed → done shown), frames produced by the
sampler and applied to the views (chunks are cut by time, ``chunk_seconds``), the achieved refresh rate (applied frames per second of sampling) and the
cost of one refresh (mean and 95th percentile, ms).

Usage: ``python benchmarks/bench_dashboard.py [--quick] [key=value ...]`` (settings overrides, e.g. npix=128).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

QUICK = {"npix": "16", "num_chains": "2", "num_levels": "4", "steps_per_level": "2"}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings (a smoke test of the benchmark)")
    parser.add_argument("overrides", nargs="*", help="settings as key=value")
    args = parser.parse_args(argv)

    from dashboard.app import REFRESH_MS, create_app
    from dashboard.runner import RunState
    from dashboard.server import device_description
    from dashboard.settings import DashboardSettings

    settings = DashboardSettings()
    values = dict(QUICK) if args.quick else {}
    for item in args.overrides:
        key, _, value = item.partition("=")
        values[key] = value
    problems = settings.update_from_mapping(values)
    if problems:
        raise SystemExit("bad settings: " + "; ".join(problems))

    app = create_app(settings, autostart_preview=False)
    app.__panel__().get_root()  # live Bokeh models: every frame updates the plots' data sources as in a session
    model = app.model

    t0 = time.perf_counter()
    model.preview()
    model.controller.join()
    app.refresh()
    prepare_s = time.perf_counter() - t0
    if model.controller.state == RunState.ERROR:
        raise SystemExit(f"preparation failed: {model.controller.status().message}")

    refresh_times: list[float] = []
    frames_before = app.frames_applied
    t0 = time.perf_counter()
    model.run()
    period = REFRESH_MS / 1000.0
    while True:
        tick = time.perf_counter()
        app.refresh()
        refresh_times.append(time.perf_counter() - tick)
        if not model.controller.is_active and model.controller.latest()[1] is not None:
            app.refresh()
            break
        time.sleep(max(0.0, period - (time.perf_counter() - tick)))
    wall = time.perf_counter() - t0
    status = model.controller.status()
    if status.state != RunState.DONE:
        raise SystemExit(f"run did not finish: {status.state.value}: {status.message}")
    frame_id, snap = model.controller.latest()
    applied = app.frames_applied - frames_before
    costs_ms = np.asarray(refresh_times) * 1000.0
    result = {
        "benchmark": "dashboard default demo",
        "device": device_description(),
        "machine": platform.machine(),
        "settings": {k: v for k, v in settings.as_dict().items() if k != "teaching" and v is not None},
        "transitions_per_chain": int(snap.total_steps),
        "prepare_s": round(prepare_s, 3),
        "sample_s": round(float(snap.elapsed_s), 3),
        "wall_to_sigma_min_s": round(wall, 3),
        "nfe_per_chain": None if getattr(snap, "nfe", None) is None else round(float(snap.nfe)),
        "chunk_seconds": float(settings.chunk_seconds),
        "frames_applied": int(applied),
        "refresh_period_ms": REFRESH_MS,
        "page_refresh_rate_hz": round(applied / wall, 2) if wall > 0 else None,
        "refresh_cost_ms_mean": round(float(costs_ms.mean()), 2) if costs_ms.size else None,
        "refresh_cost_ms_p95": round(float(np.percentile(costs_ms, 95)), 2) if costs_ms.size else None,
        "final_acceptance": round(float(snap.acceptance), 3),
    }
    app.close()
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
