"""Forward-pass timing and size of the score network; prints one JSON document.

For every map size (default 64, 128, 256, 360) and batch size (default 1, 8, 32) it times the
compiled (``tf.function``) forward pass ``r_θ(κ, σ)`` of the hybrid network (Gaussian-score channel
included, Gaussian score itself not timed) on the current default device: one warm-up call (tracing),
then the median of ``--repeats`` calls.  Also reports the parameter count and float32 weight size.

Usage::

    python benchmarks/bench_network.py                       # the shipped 0.87' architecture
    python benchmarks/bench_network.py --sizes 64,128 --batches 1,8 --repeats 3
    python benchmarks/bench_network.py --weights assets/weights/hybrid_0.87arcmin.json
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tensorflow as tf  # noqa: E402

from core.priors.hybrid import WEIGHTS_DIR, read_metadata  # noqa: E402
from core.priors.network import build_score_network, count_parameters  # noqa: E402


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", default=str(WEIGHTS_DIR / "hybrid_0.87arcmin.json"),
                        help="metadata JSON whose architecture is benchmarked (falls back to the default architecture)")
    parser.add_argument("--sizes", type=_ints, default=[64, 128, 256, 360], help="comma-separated map sides")
    parser.add_argument("--batches", type=_ints, default=[1, 8, 32], help="comma-separated batch sizes")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per configuration (median reported)")
    args = parser.parse_args(argv)

    try:
        config = read_metadata(args.weights)["architecture"]["config"]
        source = str(args.weights)
    except (FileNotFoundError, ValueError):
        config, source = {"channels": [16, 32, 64], "blocks_per_scale": 2}, "default architecture"
    net = build_score_network(config, npix=64, seed=0)
    forward = tf.function(lambda x, s, g: net((x, s, g)) if net.hybrid else net((x, s)), reduce_retracing=True)
    n_params = count_parameters(net)
    results = []
    for npix in args.sizes:
        for batch in args.batches:
            x = tf.random.stateless_normal((batch, npix, npix), [0, npix]) * 0.02
            g = tf.random.stateless_normal((batch, npix, npix), [1, npix])
            s = tf.fill([batch], 0.01)
            forward(x, s, g).numpy()  # trace + warm-up
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                forward(x, s, g).numpy()
                times.append(time.perf_counter() - t0)
            med = statistics.median(times)
            results.append({"npix": npix, "batch": batch, "forward_s": round(med, 5),
                            "ms_per_map": round(1e3 * med / batch, 3), "min_s": round(min(times), 5)})
    device = tf.config.list_logical_devices("GPU")
    print(json.dumps({
        "architecture": config, "source": source, "num_parameters": n_params,
        "weights_mb_float32": round(4 * n_params / 2**20, 3),
        "device": device[0].name if device else "CPU", "cpu_threads": tf.config.threading.get_intra_op_parallelism_threads() or "default",
        "platform": platform.platform(), "tensorflow": tf.__version__, "repeats": args.repeats, "results": results,
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
