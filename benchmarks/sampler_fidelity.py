r"""Known-answer test of the posterior samplers with the *learned* prior: full mask, uniform noise (issue #12).

With no mask and the same noise ``σ_n`` on both shear components of every pixel, the lensing operator ``P`` is an
isometry from the convergence (all Fourier modes but ``k = 0``) onto the E-mode shear, so the data are equivalent to
the Kaiser–Squires E map ``κ_E = Pᵀγ = κ + σ_n z`` (``z`` white): the B-mode carries only noise. For *any* prior
``p`` the posterior is then the denoising posterior at level ``σ_n``,

.. math::  p(κ \mid γ) = p(κ \mid x_{σ_n} = κ_E), \qquad E[κ \mid γ] = κ_E + σ_n^2 \nabla \log p_{σ_n}(κ_E) = D(κ_E, σ_n),

(Tweedie), up to the unobserved mean mode (every map here is compared with its mean removed). So with the hybrid
prior the exact posterior mean is one network evaluation, the denoiser at ``σ_n`` applied to ``κ_E``, and exact
posterior samples are the unconditional reverse diffusion of the same prior started at ``x_{σ_n} = κ_E``
(Euler–Maruyama over ``levels`` geometric levels from ``σ_n`` to ``σ_min``, then Tweedie). The samplers of the
registry, run on the lensing problem, must reproduce them.

Per map and method: Pearson r and RMSE of the (mean-removed) posterior mean against the truth (Δ paired with the
Wiener filter), and the rms distance of the sampler's mean to the exact mean ``D(κ_E, σ_n)``, split into its
Monte-Carlo part (``√(mean_pixels s²/N)``, N chains) and the rest, the **bias** ``√(d² − mc²)`` (0 for an exact
sampler). The exact reverse diffusion with the same number of chains has the same Monte-Carlo loss of r, so
``r − r_exact-diffusion`` is a like-for-like measure of what a sampler loses. With the Gaussian prior the exact mean
is the Wiener filter itself (checked: ``gaussian_tweedie_vs_wiener``).

Truths: held-out halo-model maps (:mod:`core.physics.halos`, seed ``HELDOUT_SEED + 5``, never used in training) at
0.87′, 64², ``σ_n = 0.042`` (the COSMOS median pixel noise at 0.87′). Run ``python -m benchmarks.sampler_fidelity``
(``--sampler mmps:integrator=heun --sampler dps ...``); writes ``benchmarks/results/sampler_fidelity.{json,md}``.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from benchmarks._tables import fmt, mean_se, paired_difference, run_or_report, write_report
from benchmarks.calibration import point_metrics
from benchmarks.compare_samplers import parse_sampler
from benchmarks.halo_posterior import HELDOUT_SEED

logger = logging.getLogger("benchmarks.sampler_fidelity")

RESULTS_DIR = Path(__file__).resolve().parent / "results"
EXACT = "exact reverse diffusion from κ_E"


@dataclass(frozen=True)
class FidelityConfig:
    """Settings of one run (see the module docstring)."""

    samplers: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = (("mmps", (("integrator", "heun"),)),)
    weights: str = "hybrid_halo_0.87arcmin"
    pixel_arcmin: float = 104.4 / 120
    npix: int = 64
    noise_std: float = 0.042
    num_maps: int = 8
    num_chains: int = 64
    num_levels: int = 20
    sigma_max: float = 0.5
    sigma_min: float = 1e-3
    exact_levels: int = 100
    seed: int = HELDOUT_SEED + 5

    def validate(self) -> None:
        from core.options import sampler_spec

        for name, options in self.samplers:
            spec = sampler_spec(name)  # ValueError naming an unknown sampler
            for key, value in options:
                spec.option(key).validate(value)
        for name in ("num_maps", "num_chains", "num_levels", "exact_levels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                raise ValueError(f"{name} must be an integer ≥ 2, got {value!r}")
        if not (np.isfinite(self.noise_std) and self.noise_std > self.sigma_min > 0):
            raise ValueError(f"noise_std must exceed sigma_min > 0, got noise_std={self.noise_std!r}, "
                             f"sigma_min={self.sigma_min!r}")
        if self.npix < 16 or self.npix % 2:
            raise ValueError(f"npix must be an even integer ≥ 16, got {self.npix!r}")


def method_label(name: str, options: Sequence[tuple[str, Any]]) -> str:
    return name + ("" if not options else " (" + ", ".join(f"{k}={v}" for k, v in options) + ")")


def exact_posterior_samples(prior: Any, kappa_e: np.ndarray, noise_std: float, sigma_min: float, num_levels: int,
                            num_chains: int, seed: Sequence[int]) -> np.ndarray:
    """Posterior samples for full mask + uniform noise: reverse VE diffusion of ``prior`` from ``x_{σ_n} = κ_E``
    (Euler–Maruyama over geometric levels ``σ_n → σ_min``, then the Tweedie mean), ``(num_chains, N, N)``."""
    import tensorflow as tf

    rng = np.random.default_rng(list(seed))
    sigmas = np.geomspace(noise_std, sigma_min, num_levels)
    x = tf.constant(np.repeat(kappa_e[None], num_chains, 0), tf.float32)
    for a, b in zip(sigmas[:-1], sigmas[1:]):
        step = float(a * a - b * b)
        x = x + step * prior.score(x, float(a)) + np.sqrt(step) * tf.constant(rng.standard_normal(x.shape), tf.float32)
    return prior.denoise(x, float(sigmas[-1])).numpy().astype(np.float64)


def _centred(x: np.ndarray) -> np.ndarray:
    return x - x.mean(axis=(-2, -1), keepdims=True)


def compare_to_exact(samples: np.ndarray, exact_mean: np.ndarray) -> dict[str, float]:
    """rms distance of the samples' mean to the exact mean (means removed), its Monte-Carlo part and the bias."""
    mean = _centred(samples.mean(0))
    distance = float(np.sqrt(np.mean((mean - _centred(exact_mean)) ** 2)))
    mc = float(np.sqrt(np.mean(samples.var(0, ddof=1) / samples.shape[0])))
    return {"distance_to_exact_mean": distance, "monte_carlo": mc, "bias": float(np.sqrt(max(distance**2 - mc**2, 0.0)))}


def run(config: FidelityConfig) -> dict[str, Any]:
    from core import pipeline
    from core.data.observation import NoiseModel, Observation
    from core.physics.cosmology import SourceRedshifts
    from core.physics.geometry import MapGeometry
    from core.physics.halos import HaloModelConfig, halo_model_simulator
    from core.physics.lensing import LensingOperator

    config.validate()
    start = time.perf_counter()
    geometry = MapGeometry(config.npix, config.pixel_arcmin)
    simulator = halo_model_simulator(geometry, HaloModelConfig(sources=SourceRedshifts.single_plane(1.0)))
    truths = simulator.sample_maps(config.num_maps, [config.seed, 0]).astype(np.float64)
    power = pipeline.theory_power_map(geometry)
    hybrid = pipeline.build_prior("hybrid", geometry, power_map=power, weights=config.weights)
    gaussian = pipeline.build_prior("gaussian", geometry, power_map=power)
    mask = np.ones(geometry.shape, np.float32)
    noise = NoiseModel(np.full((2,) + geometry.shape, config.noise_std, np.float32))
    lensing = LensingOperator(geometry)
    schedule = pipeline.make_schedule("geometric", config.sigma_max, config.sigma_min, config.num_levels, 1)
    everywhere = np.ones(geometry.shape, bool)
    labels = [method_label(n, o) for n, o in config.samplers]
    rows: dict[str, list[dict[str, float]]] = {k: [] for k in ["Wiener filter", "exact posterior mean", EXACT, *labels]}
    seconds: dict[str, float] = {k: 0.0 for k in rows}
    checks: list[float] = []
    for i, truth in enumerate(truths):
        obs = Observation.simulated(geometry, truth, noise, mask, seed=[config.seed + 1, i])
        kappa_e = _centred(lensing.kaiser_squires(obs.shear)[0].numpy().astype(np.float64))
        t = _centred(truth)
        reference = pipeline.build_problem(obs.shear, obs.noise_std, mask, geometry, prior="gaussian",
                                           power_map=power, truth=truth)
        wiener = _centred(np.asarray(reference.wiener, np.float64))
        gauss_tweedie = _centred(gaussian.denoise(kappa_e[None].astype(np.float32), config.noise_std).numpy()[0])
        checks.append(float(np.sqrt(np.mean((gauss_tweedie - wiener) ** 2)) / np.sqrt(np.mean(wiener**2))))
        exact_mean = _centred(hybrid.denoise(kappa_e[None].astype(np.float32), config.noise_std).numpy()[0]
                              .astype(np.float64))
        rows["Wiener filter"].append(point_metrics(wiener, t, everywhere))
        rows["exact posterior mean"].append(point_metrics(exact_mean, t, everywhere))
        t0 = time.perf_counter()
        exact = exact_posterior_samples(hybrid, kappa_e, config.noise_std, config.sigma_min, config.exact_levels,
                                        config.num_chains, [config.seed + 2, i])
        seconds[EXACT] += time.perf_counter() - t0
        rows[EXACT].append({**point_metrics(_centred(exact.mean(0)), t, everywhere), **compare_to_exact(exact, exact_mean)})
        problem = pipeline.build_problem(obs.shear, obs.noise_std, mask, geometry, prior=hybrid, power_map=power,
                                         truth=truth)
        problem.wiener = reference.wiener
        for label, (name, options) in zip(labels, config.samplers):
            t0 = time.perf_counter()
            last = None
            for last in pipeline.run(problem, sampler=name, schedule=schedule, num_chains=config.num_chains,
                                     seed=[config.seed + 3, i], final_denoise="tweedie", **dict(options)):
                pass
            if last is None or not last.done:
                raise RuntimeError(f"{label}: the run did not finish")
            seconds[label] += time.perf_counter() - t0
            chains = last.chains.astype(np.float64)
            rows[label].append({**point_metrics(_centred(chains.mean(0)), t, everywhere),
                                **compare_to_exact(chains, exact_mean), "nfe": float(last.nfe) + 1.0})
            logger.info("map %d %s: r %.4f (exact mean %.4f, exact diffusion %.4f, Wiener %.4f), bias %.5f", i, label,
                        rows[label][-1]["pearson"], rows["exact posterior mean"][-1]["pearson"],
                        rows[EXACT][-1]["pearson"], rows["Wiener filter"][-1]["pearson"], rows[label][-1]["bias"])

    wiener_rows, exact_rows = rows["Wiener filter"], rows[EXACT]
    summary: dict[str, Any] = {}
    for name, values in rows.items():
        entry: dict[str, Any] = {"rmse": mean_se([m["rmse"] for m in values]),
                                 "pearson": mean_se([m["pearson"] for m in values]), "seconds": seconds[name]}
        if name != "Wiener filter":
            entry["d_pearson_vs_wiener"] = paired_difference([m["pearson"] for m in values],
                                                             [m["pearson"] for m in wiener_rows])
            entry["d_rmse_relative_vs_wiener"] = paired_difference([m["rmse"] / w["rmse"] - 1 for m, w in
                                                                    zip(values, wiener_rows)], [0.0] * len(values))
        if "bias" in values[0]:
            for key in ("bias", "monte_carlo", "distance_to_exact_mean"):
                entry[key] = mean_se([m[key] for m in values])
            entry["d_pearson_vs_exact_diffusion"] = paired_difference([m["pearson"] for m in values],
                                                                      [m["pearson"] for m in exact_rows])
        if "nfe" in values[0]:
            entry["nfe_per_chain"] = values[0]["nfe"]
        summary[name] = entry
    return {"config": {**asdict(config), "command": "python -m benchmarks.sampler_fidelity " + " ".join(sys.argv[1:])},
            "gaussian_tweedie_vs_wiener_max_relative_rms": max(checks),
            "methods": summary, "per_map": rows, "seconds": time.perf_counter() - start}


def markdown(result: dict[str, Any]) -> str:
    cfg = result["config"]
    lines = ["# Sampler fidelity with the learned prior: full mask, uniform noise (known answer)", "",
             f"`{cfg['command'].strip()}`. {cfg['num_maps']} held-out halo-model truths, {cfg['npix']}² at "
             f"{cfg['pixel_arcmin']:.3f}′, σ_n = {cfg['noise_std']} on both shear components, no mask; weights "
             f"`{cfg['weights']}`; {cfg['num_chains']} chains; samplers on {cfg['num_levels']} geometric levels "
             f"{cfg['sigma_max']} → {cfg['sigma_min']}. Exact posterior mean: the prior's Tweedie denoiser at σ_n "
             f"applied to κ_E; exact samples: its reverse diffusion from κ_E ({cfg['exact_levels']} levels). "
             "Means removed; mean ± s.e. over maps, differences paired. Gaussian-prior check: its Tweedie mean equals "
             f"the Wiener filter to {result['gaussian_tweedie_vs_wiener_max_relative_rms']:.1e} (relative rms).", "",
             "| method | NFE per chain | RMSE | Pearson r | Δ r vs Wiener | Δ RMSE vs Wiener | Δ r vs exact diffusion "
             "(same chains) | rms distance to the exact mean | of which Monte Carlo | bias | s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, m in result["methods"].items():
        pct = m.get("d_rmse_relative_vs_wiener")
        lines.append("| " + " | ".join([
            name, f"{m['nfe_per_chain']:.0f}" if "nfe_per_chain" in m else "–", fmt(m["rmse"], 5), fmt(m["pearson"], 4),
            fmt(m.get("d_pearson_vs_wiener"), 4, signed=True),
            f"{100 * pct['mean']:+.2f} ± {100 * pct['se']:.2f} %" if pct else "–",
            fmt(m.get("d_pearson_vs_exact_diffusion"), 4, signed=True), fmt(m.get("distance_to_exact_mean"), 5),
            fmt(m.get("monte_carlo"), 5), fmt(m.get("bias"), 5), f"{m['seconds']:.0f}"]) + " |")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    d = FidelityConfig()
    p = argparse.ArgumentParser(prog="python -m benchmarks.sampler_fidelity", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--sampler", action="append", default=None, metavar="NAME[:KEY=VALUE,...]",
                   help="a sampler to test (repeatable; default mmps:integrator=heun)")
    p.add_argument("--weights", default=d.weights)
    p.add_argument("--num-maps", type=int, default=d.num_maps)
    p.add_argument("--chains", type=int, default=d.num_chains)
    p.add_argument("--levels", type=int, default=d.num_levels, help="levels of the samplers")
    p.add_argument("--exact-levels", type=int, default=d.exact_levels, help="levels of the exact reverse diffusion")
    p.add_argument("--noise-std", type=float, default=d.noise_std, help="σ_n per shear component")
    p.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    p.add_argument("--tag", default="sampler_fidelity")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    def go() -> int:
        samplers = tuple(parse_sampler(s) for s in args.sampler) if args.sampler else FidelityConfig().samplers
        config = FidelityConfig(samplers=samplers, weights=args.weights, num_maps=args.num_maps,
                                num_chains=args.chains, num_levels=args.levels, exact_levels=args.exact_levels,
                                noise_std=args.noise_std)
        result = run(config)
        write_report(args.output_dir, args.tag, result, markdown(result))
        print(markdown(result))
        return 0

    code = run_or_report("python -m benchmarks.sampler_fidelity", go)
    return 1 if code is None else code


if __name__ == "__main__":
    sys.exit(main())
