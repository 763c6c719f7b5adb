r"""How close each posterior sampler gets to the exact posterior, on held-out halo-model mocks (issue #11/#12).

Same problem as :mod:`benchmarks.halo_posterior` at 0.87′ (64² rebinned COSMOS footprint and per-pixel COSMOS noise,
held-out halo-model truths ``heldout_truths(seed=20261201)``; the observation seeds are the same, so the maps and
data are identical). For each map:

* the Wiener filter ``W`` (the exact Gaussian posterior mean) and ``C`` exact Gaussian posterior samples
  (constrained realisations, ``exactG``) — the reference a sampler must reproduce with the Gaussian prior;
* each configuration ``PRIOR:SAMPLER:LEVELS[:opt=value,...]`` (``PRIOR`` ``G`` = Gaussian, ``H`` = halo-trained
  hybrid, ``L`` = lognormal-trained hybrid), ``C`` chains over a geometric schedule 0.5 → 10⁻³ with Tweedie
  denoising at the end.

Reported per configuration (mean ± s.e. over maps): RMSE of the sample mean minus Wiener's (paired), Pearson r minus
Wiener's, 95 % coverage overall and at the top-5 % truth pixels, the mean posterior std, NFE per chain and seconds.
With the Gaussian prior any gap to ``exactG`` is the sampler's own error; with ``C`` samples the mean of even exact
samples has an RMSE excess of ≈ var/C over Wiener's, so compare configurations at equal ``C``.

Usage::

    python -m benchmarks.sampler_accuracy --maps 3 --chains 64 \
        "G:pc:60:num_corrector_steps=0" "G:mmps:20:integrator=heun" "H:mmps:20:integrator=heun"

writes ``benchmarks/results/sampler_accuracy.json`` (``--tag`` to rename).
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.calibration import point_metrics, sample_metrics  # noqa: E402
from benchmarks.halo_posterior import HELDOUT_SEED, cosmos_patch, heldout_truths  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PRIOR_WEIGHTS = {"H": "hybrid_halo_0.87arcmin", "L": "hybrid_0.87arcmin"}
FIELDS = ("drmse", "dr", "cov95", "top5", "std", "seconds", "nfe")


def parse_config(text: str) -> tuple[str, str, int, dict[str, Any]]:
    """``PRIOR:SAMPLER:LEVELS[:k=v,...]`` → (prior letter, sampler, levels, validated options)."""
    from core.options import sampler_spec

    parts = text.split(":")
    if len(parts) not in (3, 4) or parts[0] not in ("G", *PRIOR_WEIGHTS):
        raise ValueError(f"configuration must be PRIOR:SAMPLER:LEVELS[:k=v,...] with PRIOR in G, H, L; got {text!r}")
    spec = sampler_spec(parts[1])
    options = {}
    for item in (parts[3].split(",") if len(parts) == 4 and parts[3] else []):
        key, _, value = item.partition("=")
        options[key] = spec.option(key).validate(value)
    return parts[0], parts[1], int(parts[2]), options


def run(configs: Sequence[str], num_maps: int, num_chains: int) -> dict[str, Any]:
    from core import pipeline
    from core.analysis.baselines import constrained_realisations
    from core.data.observation import NoiseModel, Observation

    parsed = {c: parse_config(c) for c in configs}
    setup = cosmos_patch("0.87", 64)
    geometry, mask = setup.geometry, setup.mask
    sel = mask > 0
    power = pipeline.theory_power_map(geometry)
    truths, _, _ = heldout_truths(setup, num_maps, HELDOUT_SEED)
    noise = NoiseModel(setup.noise_std)
    priors: dict[str, Any] = {"G": "gaussian"}
    for letter in {p for p, *_ in parsed.values()} - {"G"}:
        priors[letter] = pipeline.build_prior("hybrid", geometry, power_map=power, weights=PRIOR_WEIGHTS[letter])
    rows: dict[str, list[dict[str, float]]] = {}
    for i in range(num_maps):
        truth = truths[i]
        obs = Observation.simulated(geometry, truth, noise, mask, seed=[HELDOUT_SEED + 1, i])
        reference = pipeline.build_problem(obs.shear, obs.noise_std, mask, geometry, prior="gaussian",
                                           power_map=power, truth=truth)
        wiener = point_metrics(np.asarray(reference.wiener, np.float64), truth, sel)
        exact = constrained_realisations(reference.likelihood, power, num_chains,
                                         seed=[HELDOUT_SEED + 2, i]).numpy().astype(np.float64)
        results = {"exactG": (sample_metrics(exact, truth, sel), 0.0, 0.0)}
        for text, (letter, sampler, levels, options) in parsed.items():
            problem = pipeline.build_problem(obs.shear, obs.noise_std, mask, geometry, prior=priors[letter],
                                             power_map=power, truth=truth)
            problem.wiener = reference.wiener
            schedule = pipeline.make_schedule("geometric", 0.5, 1e-3, levels, 1)
            t0 = time.perf_counter()
            last = None
            for last in pipeline.run(problem, sampler=sampler, schedule=schedule, num_chains=num_chains,
                                     seed=[HELDOUT_SEED + 3, i], final_denoise="tweedie", **options):
                pass
            chains = last.chains.astype(np.float64)
            results[text] = (sample_metrics(chains, truth, sel), time.perf_counter() - t0, float(last.nfe) + 1.0)
        for label, (m, seconds, nfe) in results.items():
            rows.setdefault(label, []).append({
                "drmse": m["rmse"] - wiener["rmse"], "dr": m["pearson"] - wiener["pearson"],
                "cov95": m["coverage_95"], "top5": m["coverage_95_top5pct"], "std": m["mean_posterior_std"],
                "seconds": seconds, "nfe": nfe})
            logging.info("map %d %-50s dRMSE %+.5f dr %+.4f cov95 %.3f top5 %.3f std %.4f", i, label,
                         rows[label][-1]["drmse"], rows[label][-1]["dr"], m["coverage_95"],
                         m["coverage_95_top5pct"], m["mean_posterior_std"])
    summary = {}
    for label, per_map in rows.items():
        summary[label] = {}
        for f in FIELDS:
            v = np.array([r[f] for r in per_map])
            summary[label][f] = {"mean": float(v.mean()),
                                 "se": float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")}
    return {"num_maps": num_maps, "num_chains": num_chains, "configs": list(configs), "summary": summary,
            "per_map": rows}


def markdown(result: dict[str, Any]) -> str:
    lines = [f"{result['num_maps']} held-out halo maps, {result['num_chains']} samples each; Δ vs Wiener paired.", "",
             "| configuration | NFE/chain | Δ RMSE vs WF | Δ r vs WF | cov 95 | cov 95 top 5% | mean std |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for label, s in result["summary"].items():
        lines.append(f"| {label} | {s['nfe']['mean']:.0f} | {s['drmse']['mean']:+.5f} ± {s['drmse']['se']:.5f} "
                     f"| {s['dr']['mean']:+.4f} ± {s['dr']['se']:.4f} | {s['cov95']['mean']:.3f} "
                     f"| {s['top5']['mean']:.3f} ± {s['top5']['se']:.3f} | {s['std']['mean']:.4f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("configs", nargs="+", help="PRIOR:SAMPLER:LEVELS[:k=v,...]")
    p.add_argument("--maps", type=int, default=3)
    p.add_argument("--chains", type=int, default=64)
    p.add_argument("--tag", default="sampler_accuracy")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for c in args.configs:
        parse_config(c)  # bad configurations fail before any work
    result = run(args.configs, args.maps, args.chains)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / f"{args.tag}.json").write_text(json.dumps(result, indent=1))
    sys.stdout.write(markdown(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
