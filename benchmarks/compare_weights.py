r"""Paired held-out DSM loss of two or more weights sets (and the Gaussian score) on the same fresh maps.

The question before shipping retrained weights: is the new network a better score on maps it never saw? Each model's
denoising-score-matching loss per map (:func:`core.priors.training.objective.heldout_dsm_losses`) is evaluated on
the same ``num_maps`` fresh simulated maps (halo-model by default, :func:`core.physics.halos.halo_model_maps`, seed
``[map_seed, 7]``: a seed word no training run uses) with the same noise ``u`` at every σ (common random numbers),
so the paired per-map difference ``L_a − L_b`` cancels the maps' own variation; its mean ± s.e. over maps decides.
The relative gain over the Gaussian score, ``1 − L_model / L_gaussian``, is the number the weights README quotes.

    python -m benchmarks.compare_weights --weights hybrid_halo_0.87arcmin --weights /path/to/new_stem \
        --output benchmarks/results/compare_weights.json

The first ``--weights`` is the reference every other one is paired against.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from benchmarks._tables import run_or_report

logger = logging.getLogger("benchmarks.compare_weights")

DEFAULT_SIGMAS = (0.001, 0.003, 0.01, 0.03, 0.1)


def compare_weights(weights: Sequence[str], npix: int = 64, pixel_arcmin: float = 104.4 / 120, num_maps: int = 128,
                    sigmas: Sequence[float] = DEFAULT_SIGMAS, source: str = "halo_model", map_seed: int = 424242,
                    noise_seed: int = 99) -> dict[str, Any]:
    """Held-out DSM losses of every weights set in ``weights`` (names, stems or paths) and of the Gaussian score, and
    the paired differences of each against the first; ``ValueError`` naming a bad option."""
    import tensorflow as tf

    from core import pipeline
    from core.physics.cosmology import theory_power_map
    from core.physics.geometry import MapGeometry
    from core.priors.training.objective import heldout_dsm_losses

    if len(weights) < 2:
        raise ValueError(f"give at least two --weights to compare, got {list(weights)}")
    if len(set(weights)) != len(weights):
        raise ValueError(f"--weights repeated: {list(weights)}")
    if num_maps < 2:
        raise ValueError(f"num_maps must be at least 2 (a standard error over maps), got {num_maps}")
    if source not in ("halo_model", "lognormal"):
        raise ValueError(f"source must be 'halo_model' or 'lognormal', got {source!r}")
    geometry = MapGeometry(npix, pixel_arcmin)
    if source == "halo_model":
        from core.physics.halos import halo_model_maps

        maps = halo_model_maps(geometry, num_maps, seed=[map_seed, 7])
    else:
        from core.physics.fields import lognormal_field

        maps = lognormal_field(theory_power_map(geometry), num_maps, [map_seed, 7])
    maps = tf.constant(np.asarray(maps, np.float32))
    score_fns: dict[str, Any] = {}
    digests: dict[str, Any] = {}
    for name in weights:
        prior = pipeline.build_prior("hybrid", geometry, weights=name)
        score_fns[name] = tf.function(lambda x, s, p=prior: p.score(x, s), reduce_retracing=True)
        digests[name] = prior.metadata.get("weights_sha256")
    gaussian = pipeline.build_prior("gaussian", geometry)
    score_fns["gaussian"] = tf.function(lambda x, s: gaussian.score(x, s), reduce_retracing=True)
    start = time.perf_counter()
    losses = heldout_dsm_losses(score_fns, maps, list(sigmas), seed=[noise_seed, 1])
    ref = weights[0]
    gains = {name: [1.0 - a / g for a, g in zip(losses[name]["mean"], losses["gaussian"]["mean"])] for name in weights}
    return {
        "config": {"weights": list(weights), "npix": npix, "pixel_arcmin": pixel_arcmin, "num_maps": num_maps,
                   "sigmas": [float(s) for s in sigmas], "source": source, "map_seed": [map_seed, 7],
                   "noise_seed": [noise_seed, 1]},
        "weights_sha256": digests,
        "losses": losses,
        "relative_gain_over_gaussian": gains,
        "reference": ref,
        "seconds": round(time.perf_counter() - start, 1),
    }


def markdown_table(result: dict[str, Any]) -> str:
    cfg, losses = result["config"], result["losses"]
    ref = result["reference"]
    head = "| weights | " + " | ".join(f"σ = {s:g}" for s in cfg["sigmas"]) + " |"
    lines = [f"Held-out DSM loss per pixel on {cfg['num_maps']} fresh {cfg['source']} maps ({cfg['npix']}², "
             f"{cfg['pixel_arcmin']:.3f}′, seed {cfg['map_seed']}); mean ± s.e. over maps; paired against `{ref}`.", "",
             head, "|" + " --- |" * (len(cfg["sigmas"]) + 1)]
    for name in [*cfg["weights"], "gaussian"]:
        row = losses[name]
        lines.append(f"| `{name}` | " + " | ".join(f"{m:.5f} ± {e:.5f}" for m, e in zip(row["mean"], row["sem"])) + " |")
    for name in cfg["weights"][1:]:
        diff = losses.get(f"diff_{ref}_minus_{name}")
        if diff is not None:
            lines.append(f"| `{ref}` − `{name}` | " + " | ".join(
                f"{m:+.5f} ± {e:.5f}" for m, e in zip(diff["mean"], diff["sem"])) + " |")
    lines += ["", "Gain over the Gaussian score, 1 − L/L_gaussian: " + "; ".join(
        f"`{n}` " + ", ".join(f"{100 * g:.2f} %" for g in result["relative_gain_over_gaussian"][n])
        for n in cfg["weights"]) + f" (σ = {', '.join(f'{s:g}' for s in cfg['sigmas'])})."]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.compare_weights", description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", action="append", required=True,
                   help="a weights name, stem or path (repeat; the first is the reference)")
    p.add_argument("--npix", type=int, default=64)
    p.add_argument("--pixel-arcmin", type=float, default=104.4 / 120)
    p.add_argument("--maps", type=int, default=128, help="fresh held-out maps")
    p.add_argument("--source", default="halo_model", choices=("halo_model", "lognormal"))
    p.add_argument("--output", type=Path, default=None, help="write the JSON here (and the markdown beside it)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    result = run_or_report("compare_weights", lambda: compare_weights(
        args.weights, npix=args.npix, pixel_arcmin=args.pixel_arcmin, num_maps=args.maps, source=args.source))
    if result is None:
        return 2
    text = markdown_table(result)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=1) + "\n")
        args.output.with_suffix(".md").write_text(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
