"""Benchmark of the score-based samplers: score evaluations/s and chain-steps/s, eager vs tf.function vs XLA.

Prints one JSON document to stdout::

    python benchmarks/bench_sampler.py            # map sizes 64/128/256/360, 1–64 chains (minutes)
    python benchmarks/bench_sampler.py --quick    # a small subset (< 2 min on 2 CPU cores)

The problem is the Gaussian posterior (Gaussian prior × mask-free shear likelihood, uniform noise) with a
synthetic red power map, wired by :func:`core.pipeline.build_problem`, so the numbers measure the sampler
machinery (FFTs, leapfrog, Simpson line integral) and not a network. ``score_evals_per_s`` counts maps
(chains × calls) per second of ``problem.posterior.score``; ``chain_steps_per_s`` counts transitions × chains per
second of the kernel of the registered ``"hmc"`` sampler (:func:`core.pipeline.make_sampler`: annealed
Metropolis-adjusted HMC, 3 leapfrog steps + 3 line-integral evaluations each), after compilation (compile time
reported separately). ``time_to_sigma_min`` is the wall time of a whole :func:`core.pipeline.run` (Wiener
initialisation, annealing to σ_min in five fixed chunks, Tweedie denoising).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from core import pipeline  # noqa: E402
from core.inference.driver import last_snapshot  # noqa: E402
from core.physics.geometry import MapGeometry  # noqa: E402
from core.physics.lensing import LensingOperator  # noqa: E402

SAMPLER = "hmc"
NUM_LEAPFROG_STEPS = 3


def make_problem(npix: int, seed: int = 0) -> pipeline.Problem:
    """The benchmark's Gaussian problem on ``npix``² pixels covering the COSMOS field (104.4′)."""
    geometry = MapGeometry(npix, 0.29 * 360 / npix)
    k = np.hypot(geometry.k1, geometry.k2)
    power = 1.0 / (1.0 + (k / 0.05) ** 2) ** 1.5
    power *= 0.02**2 / power.mean()
    rng = np.random.default_rng(seed)
    truth = np.real(np.fft.ifft2(np.fft.fft2(rng.normal(size=geometry.shape)) * np.sqrt(power))).astype(np.float32)
    std = np.full((2, npix, npix), 0.05, np.float32)
    shear = LensingOperator(geometry).forward(truth[None])[0].numpy() + std * rng.normal(size=std.shape)
    return pipeline.build_problem(shear.astype(np.float32), std, None, geometry, prior="gaussian", power_map=power,
                                  truth=truth)


def _timed(fn, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        out = fn()
    np.asarray(out)  # block on the result
    return time.perf_counter() - start


def bench_score(problem: pipeline.Problem, chains: int, mode: str, budget_s: float) -> dict:
    posterior = problem.posterior
    x = tf.random.stateless_normal((chains,) + problem.geometry.shape, seed=[1, 2]) * 0.02
    sigma = tf.constant(0.1)
    if mode == "eager":
        fn = lambda: posterior.score(x, sigma)  # noqa: E731
    else:
        fn_c = tf.function(lambda x, s: posterior.score(x, s), jit_compile=(mode == "xla"))
        fn = lambda: fn_c(x, sigma)  # noqa: E731
    compile_s = _timed(fn, 1)
    one = max(_timed(fn, 1), 1e-5)
    repeats = int(max(3, min(200, budget_s / one)))
    elapsed = _timed(fn, repeats)
    return {"mode": mode, "chains": chains, "compile_s": round(compile_s, 3),
            "score_evals_per_s": round(repeats * chains / elapsed, 1)}


def bench_steps(problem: pipeline.Problem, chains: int, mode: str, steps: int) -> dict:
    schedule = pipeline.make_schedule("geometric", sigma_max=0.5, sigma_min=0.01, num_levels=10,
                                      steps_per_level=max(1, steps // 10))
    sampler = pipeline.make_sampler(problem, SAMPLER, schedule, num_leapfrog_steps=NUM_LEAPFROG_STEPS)
    kernel = sampler.make_kernel()
    x0 = tf.random.stateless_normal((chains,) + problem.geometry.shape, seed=[3, 4]) * 0.5
    results = kernel.bootstrap_results(x0)

    def run(x, r, n):
        def body(i, x, r):
            x, r = kernel.one_step(x, r, seed=tf.stack([i, 7]))
            return i + 1, x, r
        _, x, r = tf.while_loop(lambda i, *_: i < n, body, (tf.constant(0), x, r))
        return x, r

    if mode == "eager":
        n = max(2, steps // 10)
        fn = lambda: run(x0, results, n)[0]  # noqa: E731
        compile_s = 0.0
    else:
        n = steps
        compiled = tf.function(run, jit_compile=(mode == "xla"))
        fn = lambda: compiled(x0, results, tf.constant(n))[0]  # noqa: E731
        compile_s = _timed(fn, 1)
    elapsed = _timed(fn, 1)
    return {"mode": mode, "chains": chains, "steps": n, "compile_s": round(compile_s, 3),
            "chain_steps_per_s": round(n * chains / elapsed, 2), "s_per_transition": round(elapsed / n, 5)}


def time_to_sigma_min(npix: int, chains: int, num_levels: int, steps_per_level: int, jit: bool) -> dict:
    problem = make_problem(npix)
    schedule = pipeline.make_schedule("geometric", sigma_max=1.0, sigma_min=0.008, num_levels=num_levels,
                                      steps_per_level=steps_per_level)
    start = time.perf_counter()  # the problem's Wiener map (the chains' centre) is computed inside the timed run
    snap = last_snapshot(pipeline.run(problem, SAMPLER, schedule, num_chains=chains, init="wiener", seed=0,
                                      chunk_steps=max(1, schedule.total_steps // 5), final_denoise="tweedie",
                                      jit_compile=jit, num_leapfrog_steps=NUM_LEAPFROG_STEPS))
    return {"npix": npix, "chains": chains, "num_levels": num_levels, "steps_per_level": steps_per_level,
            "total_transitions": schedule.total_steps, "jit_compile": jit,
            "wall_s": round(time.perf_counter() - start, 2), "final_acceptance": round(snap.acceptance, 3)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small subset (< 2 min on 2 CPU cores)")
    args = parser.parse_args(argv)
    if args.quick:
        sizes, chain_counts, modes, steps, budget = [64, 128], [1, 8], ["eager", "function", "xla"], 20, 0.5
        default_run = dict(npix=64, chains=8, num_levels=50, steps_per_level=4)
    else:
        sizes, chain_counts, modes, steps, budget = [64, 128, 256, 360], [1, 8, 64], ["eager", "function", "xla"], 50, 2.0
        default_run = dict(npix=360, chains=8, num_levels=240, steps_per_level=10)
    report: dict = {
        "device": [d.device_type for d in tf.config.list_logical_devices()],
        "gpu": bool(tf.config.list_physical_devices("GPU")),
        "tensorflow": tf.__version__, "python": platform.python_version(), "cpu_count": os.cpu_count(),
        "quick": args.quick, "score": [], "steps": [],
    }
    for npix in sizes:
        problem = make_problem(npix)
        for chains in chain_counts:
            if npix >= 256 and chains > 8 and not report["gpu"]:
                continue  # minutes per configuration on a laptop-class CPU
            for mode in modes:
                report["score"].append({"npix": npix, **bench_score(problem, chains, mode, budget)})
                report["steps"].append({"npix": npix, **bench_steps(problem, chains, mode, steps)})
            print(f"# done npix={npix} chains={chains}", file=sys.stderr, flush=True)
    jit_modes = (False,) if args.quick else (False, True)
    report["time_to_sigma_min"] = [time_to_sigma_min(**default_run, jit=jit) for jit in jit_modes]
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
