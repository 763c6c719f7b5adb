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

**Direct denoising** (the prior alone on the issue's metrics). The same maps observed as ``x = κ + σ n`` (white
noise, every pixel, no lensing operator) and estimated by each prior's Tweedie mean ``x + σ² ∇ log p_σ(x)`` — for the
Gaussian score this is the Wiener filter of the problem. RMSE and Pearson r per map, paired against the Gaussian
(mean ± s.e. over maps), at ``denoise_sigmas`` around the COSMOS pixel noise (0.87′: median σ_n ≈ 0.042). This is a
reference for the lensing posterior benchmark (``halo_posterior.py``), not a bound: the lensing problem has a mask,
inhomogeneous noise and the shear operator, but the gain a prior gives over Wiener on the easier direct problem at the
same pixel noise says how much there is to gain from the prior itself.
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

from benchmarks._tables import run_or_report, standard_error
from core.options import HALO_CLUSTERING

logger = logging.getLogger("benchmarks.compare_weights")

DEFAULT_SIGMAS = (0.001, 0.003, 0.01, 0.03, 0.1)
DEFAULT_DENOISE_SIGMAS = (0.02, 0.04, 0.06, 0.1)


def denoising_metrics(score_fns: dict[str, Any], maps: np.ndarray, sigmas: Sequence[float], seed: int) -> dict[str, Any]:
    """RMSE and Pearson r of the Tweedie denoiser ``x + σ² s(x, σ)`` of each score function on ``maps + σ n`` (the
    same ``n`` for all), and the paired differences against the one named ``"gaussian"`` (relative RMSE, r), per σ."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(maps.shape).astype(np.float32)
    flat_truth = maps.reshape(len(maps), -1)
    out: dict[str, Any] = {"sigma": [float(s) for s in sigmas]}
    per: dict[str, dict[str, list[np.ndarray]]] = {name: {"rmse": [], "pearson": []} for name in score_fns}
    for s in sigmas:
        x = tf.constant(maps + s * noise)
        sig = tf.fill([len(maps)], tf.constant(float(s), tf.float32))
        for name, score in score_fns.items():
            est = (x + float(s) ** 2 * score(x, sig)).numpy().reshape(len(maps), -1)
            per[name]["rmse"].append(np.sqrt(np.mean((est - flat_truth) ** 2, axis=1)))
            per[name]["pearson"].append(np.array([np.corrcoef(e, t)[0, 1] for e, t in zip(est, flat_truth)]))
    def per_sigma(values: list[np.ndarray]) -> dict[str, list[float]]:
        """Per σ: mean and standard error over maps (the ``heldout_dsm_losses`` layout)."""
        return {"mean": [float(v.mean()) for v in values], "sem": [standard_error(v) for v in values]}

    for name, metrics in per.items():
        entry: dict[str, Any] = {k: per_sigma(vals) for k, vals in metrics.items()}
        if name != "gaussian":
            entry["rmse_relative_to_gaussian"] = per_sigma(
                [a / b - 1.0 for a, b in zip(metrics["rmse"], per["gaussian"]["rmse"])])
            entry["pearson_minus_gaussian"] = per_sigma(
                [a - b for a, b in zip(metrics["pearson"], per["gaussian"]["pearson"])])
        out[name] = entry
    return out


def compare_weights(weights: Sequence[str], npix: int = 64, pixel_arcmin: float = 104.4 / 120, num_maps: int = 128,
                    sigmas: Sequence[float] = DEFAULT_SIGMAS, source: str = "halo_model", map_seed: int = 424242,
                    noise_seed: int = 99, denoise_sigmas: Sequence[float] = DEFAULT_DENOISE_SIGMAS,
                    halo_clustering: str = "poisson") -> dict[str, Any]:
    """Held-out DSM losses of every weights set in ``weights`` (names, stems or paths) and of the Gaussian score, and
    the paired differences of each against the first; ``ValueError`` naming a bad option. ``halo_clustering``: the
    halo-model maps' :attr:`core.physics.halos.HaloModelConfig.clustering`."""
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
        from core.physics.halos import HaloModelConfig, halo_model_maps

        config = None if halo_clustering == "poisson" else HaloModelConfig(clustering=halo_clustering)
        maps = halo_model_maps(geometry, num_maps, seed=[map_seed, 7], config=config)
    else:
        from core.physics.fields import lognormal_field

        maps = lognormal_field(theory_power_map(geometry), num_maps, [map_seed, 7])
    maps = tf.constant(np.asarray(maps, np.float32))
    priors: dict[str, Any] = {name: pipeline.build_prior("hybrid", geometry, weights=name) for name in weights}
    digests = {name: prior.metadata.get("weights_sha256") for name, prior in priors.items()}
    priors["gaussian"] = pipeline.build_prior("gaussian", geometry)
    score_fns = {name: tf.function(lambda x, s, p=prior: p.score(x, s), reduce_retracing=True)
                 for name, prior in priors.items()}
    start = time.perf_counter()
    losses = heldout_dsm_losses(score_fns, maps, list(sigmas), seed=[noise_seed, 1])
    denoising = denoising_metrics(score_fns, maps.numpy(), denoise_sigmas, noise_seed) if denoise_sigmas else None
    ref = weights[0]
    gains = {name: [1.0 - a / g for a, g in zip(losses[name]["mean"], losses["gaussian"]["mean"])] for name in weights}
    return {
        "config": {"weights": list(weights), "npix": npix, "pixel_arcmin": pixel_arcmin, "num_maps": num_maps,
                   "sigmas": [float(s) for s in sigmas], "denoise_sigmas": [float(s) for s in denoise_sigmas],
                   "source": source, "map_seed": [map_seed, 7],
                   **({"halo_clustering": halo_clustering} if halo_clustering != "poisson" else {}),
                   "noise_seed": [noise_seed, 1]},
        "weights_sha256": digests,
        "losses": losses,
        "relative_gain_over_gaussian": gains,
        "denoising": denoising,
        "reference": ref,
        "seconds": round(time.perf_counter() - start, 1),
    }


def markdown_table(result: dict[str, Any]) -> str:
    cfg, losses = result["config"], result["losses"]
    ref = result["reference"]
    head = "| weights | " + " | ".join(f"σ = {s:g}" for s in cfg["sigmas"]) + " |"
    lines = [f"Held-out DSM loss per pixel on {cfg['num_maps']} fresh {cfg['source']}"
             f"{' (' + cfg['halo_clustering'] + ' haloes)' if cfg.get('halo_clustering') else ''} maps ({cfg['npix']}², "
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
    den = result.get("denoising")
    if den:
        lines += ["", "Direct denoising x = κ + σn (no mask, no lensing): the Tweedie mean of each prior against the "
                  "Gaussian one (= the Wiener filter); mean ± s.e. over maps, paired.", "",
                  "| weights | σ | Wiener RMSE | Wiener r | Δ RMSE (relative) | Δ r |", "| --- | --- | --- | --- | --- | --- |"]
        g = den["gaussian"]
        for name in cfg["weights"]:
            e = den[name]
            for i, s in enumerate(den["sigma"]):
                rel, dr = e["rmse_relative_to_gaussian"], e["pearson_minus_gaussian"]
                lines.append(f"| `{name}` | {s:g} | {g['rmse']['mean'][i]:.4f} | {g['pearson']['mean'][i]:.3f} "
                             f"| {100 * rel['mean'][i]:+.2f} ± {100 * rel['sem'][i]:.2f} % "
                             f"| {dr['mean'][i]:+.4f} ± {dr['sem'][i]:.4f} |")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.compare_weights", description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", action="append", required=True,
                   help="a weights name, stem or path (repeat; the first is the reference)")
    p.add_argument("--npix", type=int, default=64)
    p.add_argument("--pixel-arcmin", type=float, default=104.4 / 120)
    p.add_argument("--maps", type=int, default=128, help="fresh held-out maps")
    p.add_argument("--source", default="halo_model", choices=("halo_model", "lognormal"))
    p.add_argument("--halo-clustering", default="poisson", choices=HALO_CLUSTERING,
                   help="halo positions of the halo-model maps (core.physics.halos.HaloModelConfig.clustering)")
    p.add_argument("--denoise-sigmas", default=",".join(f"{v:g}" for v in DEFAULT_DENOISE_SIGMAS),
                   help="comma-separated noise levels of the direct-denoising comparison ('' to skip)")
    p.add_argument("--output", type=Path, default=None, help="write the JSON here (and the markdown beside it)")
    return p


def _sigmas(text: str) -> tuple[float, ...]:
    """``"0.02,0.04"`` → ``(0.02, 0.04)``; ``ValueError`` naming the option for anything but positive numbers."""
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"--denoise-sigmas must be comma-separated numbers, got {text!r}") from None
    if any(not np.isfinite(v) or v <= 0 for v in values):
        raise ValueError(f"--denoise-sigmas must be positive, got {text!r}")
    return values


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    result = run_or_report("compare_weights", lambda: compare_weights(
        args.weights, npix=args.npix, pixel_arcmin=args.pixel_arcmin, num_maps=args.maps, source=args.source,
        denoise_sigmas=_sigmas(args.denoise_sigmas), halo_clustering=args.halo_clustering))
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
