"""Cost of the score network r_θ and of the hybrid-prior score, before/after compilation; writes one JSON document.

For every map side (default 64 and 360) at one batch size (default 8, the dashboard's chains) it measures, on
the current default device, with the shipped weights of the matching pixel scale (0.87′ for ≤ 128², else 0.29′;
the architecture is the same):

* FLOP per map of the network forward, counted by TensorFlow's graph profiler
  (``tf.compat.v1.profiler`` ``float_operation`` on the frozen concrete function of the Keras forward): all ops
  and the ``Conv2D`` ops alone (FFTs are not counted by the profiler; they are < 1 % of the work).
* wall time per call (minimum and median of ``--repeats`` calls after one warm-up call, whose time — tracing
  and, with XLA, compilation — is reported as ``first_call_s``; the variants are timed in interleaved rounds,
  and the 1-minute load average is recorded, because the CPU is shared) and the achieved GFLOP/s (network FLOP / time) of
    - ``keras_graph``: the Keras forward ``net((x, σ, g))`` in a ``tf.function`` (how the samplers ran it before),
    - ``keras_xla``: the same with ``jit_compile=True``,
    - ``score_eager``: ``HybridPrior.score`` with the residual run eagerly (how eager callers ran it before;
      64² only),
    - ``score_graph`` / ``score_xla``: ``HybridPrior.score`` as shipped now (residual a ``tf.function`` with a
      ``(None, N, N)`` signature), ``jit_compile=False`` (the default) / ``True``,
    - ``denoise_vjp_graph`` / ``denoise_jvp_graph``: ``D(x, σ)`` with one vector–Jacobian / Jacobian–vector
      product (what DPS / MMPS pay per evaluation), default prior; ``--autodiff-xla`` adds the XLA ones;
* the largest relative difference of the compiled scores to the eager reference forward.

oneDNN (``TF_ENABLE_ONEDNN_OPTS``) must be chosen before TensorFlow is imported: ``--onednn on|off`` sets it
for this process (``default`` leaves TensorFlow's choice; it is off on this AMD CPU).

Usage::

    python benchmarks/bench_network.py --output benchmarks/results/network_cpu.json
    python benchmarks/bench_network.py --sizes 64 --repeats 3 --onednn on --output benchmarks/results/network_cpu_onednn.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def _time_interleaved(runs: dict[str, Callable[[], Any]], repeats: int) -> dict[str, dict[str, float]]:
    """First call of each (trace/compile), then ``repeats`` rounds over all runs in turn (so that a load change on
    the shared CPU hits every variant alike); minimum and median per run."""
    first, times = {}, {name: [] for name in runs}
    for name, fn in runs.items():
        t0 = time.perf_counter()
        _block(fn())
        first[name] = time.perf_counter() - t0
    for _ in range(repeats):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            _block(fn())
            times[name].append(time.perf_counter() - t0)
    return {name: {"first_call_s": round(first[name], 3), "min_s": round(min(times[name]), 5),
                   "median_s": round(statistics.median(times[name]), 5)} for name in runs}


def graph_flops(concrete: Any, op_types: list[str] | None = None) -> int:
    """FLOP of a concrete function, counted by TensorFlow's graph profiler on its frozen graph (``float_operation``);
    ``op_types``: count only ops of these types (regexes, e.g. ``["Conv2D"]``). TensorFlow is imported here, so
    importing this module does not fix TensorFlow's start-up options."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    frozen = convert_variables_to_constants_v2(concrete)
    opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    opts["output"] = "none"
    if op_types:
        opts["account_type_regexes"] = op_types
    return int(tf.compat.v1.profiler.profile(frozen.graph, options=opts).total_float_ops)


def _block(out: Any) -> None:
    for t in out if isinstance(out, (tuple, list)) else (out,):
        t.numpy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=_ints, default=[64, 360], help="comma-separated map sides")
    parser.add_argument("--batch", type=int, default=8, help="maps per call (chains)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per configuration")
    parser.add_argument("--onednn", choices=("default", "on", "off"), default="default",
                        help="TF_ENABLE_ONEDNN_OPTS for this process (set before TensorFlow is imported)")
    parser.add_argument("--skip-autodiff", action="store_true", help="do not time the VJP/JVP of the denoiser")
    parser.add_argument("--autodiff-xla", action="store_true",
                        help="also time the VJP/JVP of the XLA-compiled prior (compiles for minutes on a loaded CPU)")
    parser.add_argument("--output", default=None, help="write the JSON here (default: stdout only)")
    args = parser.parse_args(argv)
    if args.batch < 1 or args.repeats < 1:
        parser.error(f"--batch and --repeats must be >= 1, got {args.batch}, {args.repeats}")
    if args.onednn != "default":
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1" if args.onednn == "on" else "0"

    import numpy as np
    import tensorflow as tf

    from core.physics.geometry import MapGeometry
    from core.priors.hybrid import HybridPrior, filter_residual, shipped_prior
    from core.priors.network import count_parameters

    results = []
    batch = args.batch
    for npix in args.sizes:
        pixel = 104.4 / 120 if npix <= 128 else 0.29
        prior = shipped_prior(MapGeometry(npix, pixel), jit_compile=True)
        graph_prior = HybridPrior(prior.gaussian, prior.network, prior.metadata, jit_compile=False)
        net = prior.network
        x = tf.random.stateless_normal((batch, npix, npix), [0, npix]) * 0.02
        sigma = tf.constant(np.geomspace(1e-3, 0.5, batch), tf.float32)
        g = prior.gaussian.score(x, sigma)
        v = tf.random.stateless_normal((batch, npix, npix), [1, npix])

        keras_graph = tf.function(lambda a, b, c: net((a, b, c)))
        keras_xla = tf.function(lambda a, b, c: net((a, b, c)), jit_compile=True)
        concrete = keras_graph.get_concrete_function(x, sigma, g)
        flop_all = graph_flops(concrete) / batch
        flop_conv = graph_flops(concrete, ["Conv2D"]) / batch

        def reference_score() -> tf.Tensor:  # eager Keras forward, the definition
            return g + filter_residual(net((x, sigma, g)), prior._power_half, sigma, prior.residual_filter)

        ref = reference_score().numpy()
        runs: dict[str, Callable[[], Any]] = {
            "keras_graph": lambda: keras_graph(x, sigma, g),
            "keras_xla": lambda: keras_xla(x, sigma, g),
            "score_graph": lambda: graph_prior.score(x, sigma),
            "score_xla": lambda: prior.score(x, sigma),
        }
        if npix <= 128:
            runs["score_eager"] = lambda: g + prior._residual_flat(x, sigma, g)
        if not args.skip_autodiff:
            runs["denoise_vjp_graph"] = lambda: graph_prior.denoise_vjp(x, sigma, v)
            runs["denoise_jvp_graph"] = lambda: graph_prior.denoise_jvp(x, sigma, v)
        if args.autodiff_xla:
            runs["denoise_vjp_xla"] = lambda: prior.denoise_vjp(x, sigma, v)
            runs["denoise_jvp_xla"] = lambda: prior.denoise_jvp(x, sigma, v)
        row: dict[str, Any] = {"npix": npix, "batch": batch, "pixel_arcmin": round(pixel, 4),
                               "mflop_per_map": round(flop_all / 1e6, 1), "mflop_per_map_conv2d": round(flop_conv / 1e6, 1)}
        load_before = os.getloadavg()[0]
        for name, timing in _time_interleaved(runs, args.repeats).items():
            timing["gflop_per_s"] = round(flop_all * batch / timing["min_s"] / 1e9, 1)
            timing["ms_per_map"] = round(1e3 * timing["min_s"] / batch, 2)
            row[name] = timing
            print(f"{npix}² {name}: {timing}", file=sys.stderr, flush=True)
        for name, p in (("score_graph", graph_prior), ("score_xla", prior)):
            out = p.score(x, sigma).numpy()
            row[name]["max_rel_diff_to_eager"] = float(np.abs(out - ref).max() / np.abs(ref).max())
        row["load_average_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
        row["speedup_score_xla_vs_score_graph"] = round(row["score_graph"]["min_s"] / row["score_xla"]["min_s"], 2)
        results.append(row)

    devices = tf.config.list_logical_devices("GPU")
    doc = {
        "benchmark": "benchmarks/bench_network.py",
        "command": "python benchmarks/bench_network.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "architecture": prior.network.get_config(),
        "num_parameters": count_parameters(prior.network),
        "flop_method": "tf.compat.v1.profiler float_operation on the frozen Keras forward (2 FLOP per multiply-add)",
        "device": devices[0].name if devices else "CPU",
        "cpu_count": os.cpu_count(),
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
        "platform": platform.platform(),
        "tensorflow": tf.__version__,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "repeats": args.repeats,
        "results": results,
    }
    text = json.dumps(doc, indent=2)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
