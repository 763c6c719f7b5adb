r"""Calibration benchmark: do the posterior credible intervals contain the truth as often as they claim?

Set-up (the demo geometry): ``num_maps`` true convergence maps ``κ*`` on 64×64 pixels of 0.87′ (the COSMOS field's
104.4′ at 120 pixels) drawn as shifted-lognormal fields with the Planck18 z_s = 1 power spectrum
(:func:`core.physics.fields.lognormal_field`; ``--truth gaussian``: Gaussian fields; ``--truth halo_model``: halo-model
maps of :func:`core.physics.halos.halo_model_maps`, ``halo_model_clustered`` the same with haloes following the
large-scale field); the real COSMOS footprint resampled to the grid (:func:`core.data.observation.cosmos_mask`);
uniform shape noise ``σ_n = σ_e/√(n_gal A_pix)`` with COSMOS-like ``σ_e = 0.3`` and ``n_gal = 65`` arcmin⁻²
(0.043 per pixel at 0.87′); shear ``γ = M(Pκ* + n)`` (:func:`core.data.observation.mock_shear`).

Estimators, each compared with the truth:

* ``KS`` — Kaiser–Squires with Gaussian smoothing (FWHM ``ks_fwhm_arcmin``); ``Wiener`` — the Wiener filter with the
  theory power map (the Gaussian-posterior mean);
* ``Gaussian (exact)`` — exact samples of the Gaussian posterior (constrained realisations, no MCMC): the reference
  that isolates the effect of the prior's misspecification (the truth is lognormal, the prior Gaussian);
* ``Gaussian prior (HMC)`` / ``Hybrid prior (HMC)`` — the posterior sampled by :func:`core.pipeline.run` (``--sampler``, any
  registered sampler) under the Gaussian or the hybrid prior (the latter only when shipped weights exist for the
  pixel scale).

Metrics per map (pixels inside the mask unless noted): the RMSE ``√⟨(κ̂ − κ*)²⟩`` and the Pearson correlation of
the point estimate (posterior mean) with the truth; for samplers, the coverage ``c_q`` = fraction of pixels whose
true value lies in the central ``q`` credible interval of the samples (empirical quantiles, :func:`core.analysis.summaries.interval_coverage`),
for ``q = 0.68, 0.95``. A calibrated posterior with the true prior has ``E c_q ≈ q`` (up to the finite number of
samples: with ``C`` samples the empirical interval covers slightly less, see ``expected_coverage``). Each number is the
mean over maps with its standard error (standard deviation over maps / √num_maps; :mod:`benchmarks._tables`).

Run ``python -m benchmarks.calibration --quick`` (a couple of minutes on a CPU) or without ``--quick`` for the
fuller version; both print a JSON summary and write ``benchmarks/results/calibration[_quick].{json,md}``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from benchmarks._tables import aggregate, fmt, run_or_report, write_report
from core.options import DATA_SOURCES, DENOISERS, PRIORS, sampler_names

logger = logging.getLogger("benchmarks.calibration")

RESULTS_DIR = Path(__file__).resolve().parent / "results"
#: simulated truth kinds (the data sources of core.options other than real data)
TRUTHS = tuple(s for s in DATA_SOURCES if s != "cosmos")
COVERAGE_LEVELS = (0.68, 0.95)


@dataclass
class CalibrationConfig:
    """Settings of one calibration run (see the module docstring)."""

    npix: int = 64
    pixel_size_arcmin: float = 104.4 / 120
    num_maps: int = 8
    num_chains: int = 32
    sigma_e: float = 0.3
    n_gal_arcmin2: float = 65.0
    truth: str = "lognormal"
    mask: str = "cosmos"
    sigma_max: float = 0.5
    sigma_min: float = 1e-3
    num_levels: int = 60
    steps_per_level: int = 10
    sampler: str = "hmc"
    num_leapfrog_steps: int = 3
    final_denoise: str | None = "tweedie"
    ks_fwhm_arcmin: float = 2.0
    priors: tuple[str, ...] = ("gaussian", "hybrid")
    exact_reference: bool = True
    seed: int = 0
    jit_compile: bool = False

    def validate(self) -> None:
        from core.options import sampler_names

        if self.truth not in TRUTHS:
            raise ValueError(f"truth must be one of {TRUTHS}, got {self.truth!r}")
        if self.mask not in ("cosmos", "full"):
            raise ValueError(f"mask must be 'cosmos' or 'full', got {self.mask!r}")
        if self.sampler not in sampler_names():
            raise ValueError(f"sampler must be one of {sampler_names()}, got {self.sampler!r}")
        for name in ("num_maps", "num_levels", "steps_per_level", "num_leapfrog_steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.num_chains < 2:
            raise ValueError(f"num_chains must be at least 2 for intervals, got {self.num_chains!r}")
        unknown = set(self.priors) - set(PRIORS)
        if unknown:
            raise ValueError(f"priors must be among {PRIORS}; got {sorted(unknown)}")


QUICK = dict(num_maps=2, num_chains=16, num_levels=30, steps_per_level=5)


def expected_coverage(num_samples: int, level: float, trials: int = 200_000, seed: int = 0) -> float:
    """Coverage of the empirical central ``level`` interval of ``num_samples`` exchangeable draws for one more
    exchangeable draw (distribution-free; evaluated by Monte Carlo with standard normals, error ≈ 1e-3)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((trials, num_samples))
    lo, hi = np.quantile(x, [(1 - level) / 2, (1 + level) / 2], axis=1)
    t = rng.standard_normal(trials)
    return float(np.mean((t >= lo) & (t <= hi)))


def expected_coverages(num_samples: int, levels: Sequence[float] = COVERAGE_LEVELS) -> dict[str, float]:
    """``{"coverage_68": expected_coverage(num_samples, 0.68), …}`` for each of ``levels``."""
    return {f"coverage_{int(round(q * 100))}": expected_coverage(num_samples, q) for q in levels}


def point_metrics(estimate: np.ndarray, truth: np.ndarray, sel: np.ndarray) -> dict[str, float]:
    """RMSE and Pearson r of a point estimate against the truth over the pixels ``sel`` (``rmse``, ``pearson``),
    and the RMSE over all pixels (``rmse_all_pixels``). The metrics every benchmark reports for a map estimate."""
    diff = estimate - truth
    return {
        "rmse": float(np.sqrt(np.mean(diff[sel] ** 2))),
        "rmse_all_pixels": float(np.sqrt(np.mean(diff**2))),
        "pearson": float(np.corrcoef(estimate[sel], truth[sel])[0, 1]),
    }


def monte_carlo_corrected_rmse(samples: np.ndarray, truth: np.ndarray, sel: np.ndarray,
                               mean_variance: np.ndarray | None = None) -> float:
    r"""RMSE of the sampler's *exact* posterior mean μ (infinitely many samples), estimated from ``N`` ``samples``
    (axis 0): the sample mean m = μ + ε has E‖m − t‖² = ‖μ − t‖² + Σᵢ Var εᵢ, so

        MSE_corrected = mean_sel[(mᵢ − tᵢ)²] − mean_sel[Var εᵢ]

    is unbiased for ‖μ − t‖² / n_sel (the Monte-Carlo excess of a finite-sample mean removed). ``mean_variance`` is
    the per-pixel ``Var εᵢ``; by default ``s²ᵢ / N`` with the unbiased sample variance, right for independent samples
    (parallel chains of an annealed or diffusion sampler). Autocorrelated MCMC draws pass their own estimate (e.g.
    batch means over chains). Clipped at 0 before the square root."""
    n = samples.shape[0]
    if n < 2:
        raise ValueError(f"monte_carlo_corrected_rmse needs at least 2 samples, got {n}")
    if mean_variance is None:
        mean_variance = samples.var(axis=0, ddof=1) / n
    mse = np.mean((samples.mean(axis=0) - truth)[sel] ** 2) - np.mean(mean_variance[sel])
    return float(np.sqrt(max(mse, 0.0)))


def sample_metrics(samples: np.ndarray, truth: np.ndarray, sel: np.ndarray) -> dict[str, float]:
    """Metrics of independent posterior ``samples`` (axis 0) against the truth: :func:`point_metrics` of their
    mean; 68/95 % central-interval coverage over ``sel``, over all pixels, at the truth's top 5 % (``_top5pct``)
    and at the posterior mean's top 5 % (``_mean_top5pct``, the data-selected version that an exact posterior keeps
    calibrated); the mean posterior std; the Monte-Carlo-corrected RMSE (:func:`monte_carlo_corrected_rmse`)."""
    from core.analysis.summaries import interval_coverage

    mean = samples.mean(axis=0)
    out = point_metrics(mean, truth, sel)
    cov = interval_coverage(samples, truth, COVERAGE_LEVELS, mask=sel)
    cov_all = interval_coverage(samples, truth, COVERAGE_LEVELS)
    # the high tail, where a lognormal truth departs most from a Gaussian prior: truth above its 95th percentile
    peaks = sel & (truth > np.quantile(truth[sel], 0.95))
    cov_peaks = interval_coverage(samples, truth, COVERAGE_LEVELS, mask=peaks)
    # the same fraction selected by the data (the posterior mean above its 95th percentile): an exact posterior is
    # calibrated there, unlike at the truth's top 5 % (benchmarks/conditional_coverage.py)
    high_mean = sel & (mean > np.quantile(mean[sel], 0.95))
    cov_high_mean = interval_coverage(samples, truth, COVERAGE_LEVELS, mask=high_mean)
    for q in COVERAGE_LEVELS:
        out[f"coverage_{int(round(q * 100))}"] = cov[q]
        out[f"coverage_{int(round(q * 100))}_all_pixels"] = cov_all[q]
        out[f"coverage_{int(round(q * 100))}_top5pct"] = cov_peaks[q]
        out[f"coverage_{int(round(q * 100))}_mean_top5pct"] = cov_high_mean[q]
    out["mean_posterior_std"] = float(samples.std(axis=0, ddof=1)[sel].mean())
    out["rmse_mc_corrected"] = monte_carlo_corrected_rmse(samples, truth, sel)
    return out


def _truths(config: CalibrationConfig, geometry: Any, power: np.ndarray) -> np.ndarray:
    """``num_maps`` simulated truths ``(M, N, N)`` float64 of the configured kind (seed ``config.seed``)."""
    from core import pipeline

    if config.truth in pipeline.HALO_SOURCES:
        from core.physics.halos import halo_model_maps

        return np.asarray(halo_model_maps(geometry, config.num_maps, seed=config.seed,
                                          config=pipeline.halo_source_config(config.truth)), dtype=np.float64)
    from core.physics.fields import gaussian_field, lognormal_field

    make_truth = lognormal_field if config.truth == "lognormal" else gaussian_field
    return np.asarray(make_truth(power, config.num_maps, config.seed), dtype=np.float64)


def _sampler_options(config: CalibrationConfig) -> dict[str, Any]:
    """The options of ``config.sampler`` that the config sets (``num_leapfrog_steps`` only for samplers taking it)."""
    from core.options import sampler_spec

    takes = {o.name for o in sampler_spec(config.sampler).options}
    return {"num_leapfrog_steps": config.num_leapfrog_steps} if "num_leapfrog_steps" in takes else {}


def run_calibration(config: CalibrationConfig, progress: bool = True) -> dict[str, Any]:
    """Run the benchmark; returns a JSON-serialisable dict (config, per-method aggregates and per-map values).

    Every posterior is wired and run by :mod:`core.pipeline` (one problem per map and prior; its Wiener map, computed
    once, is both the Wiener-filter baseline and the chains' initial centre).
    """
    config.validate()
    from core import pipeline
    from core.analysis.baselines import constrained_realisations, kaiser_squires_map
    from core.data.observation import NoiseModel, Observation, cosmos_mask, full_mask
    from core.inference.driver import last_snapshot
    from core.physics.geometry import MapGeometry

    start = time.perf_counter()
    geometry = MapGeometry(config.npix, config.pixel_size_arcmin)
    power = pipeline.theory_power_map(geometry)
    truths = _truths(config, geometry, power)
    mask = cosmos_mask(geometry) if config.mask == "cosmos" else full_mask(geometry)
    sel = mask > 0
    noise = NoiseModel.from_galaxy_density(geometry, config.sigma_e, config.n_gal_arcmin2)
    schedule = pipeline.make_schedule("geometric", config.sigma_max, config.sigma_min, config.num_levels,
                                      config.steps_per_level)
    priors: dict[str, Any] = {}  # method name → prior object, built once (the network weights are loaded once)
    notes: list[str] = []
    label = config.sampler.upper()
    for kind in config.priors:
        try:
            priors[f"{kind.capitalize()} prior ({label})"] = pipeline.build_prior(kind, geometry, power_map=power)
        except (ValueError, FileNotFoundError, ImportError) as err:
            if kind == "gaussian":
                raise
            notes.append(f"{kind} prior skipped: {err}")
            logger.warning("%s prior skipped: %s", kind, err)
    per_method: dict[str, list[dict[str, float]]] = {}
    timings: dict[str, float] = {}

    def record(name: str, metrics: dict[str, float], seconds: float) -> None:
        per_method.setdefault(name, []).append(metrics)
        timings[name] = timings.get(name, 0.0) + seconds

    options = _sampler_options(config)
    for i in range(config.num_maps):
        truth = truths[i]
        obs = Observation.simulated(geometry, truth, noise, mask, seed=config.seed * 7919 + 1000 + i)
        t0 = time.perf_counter()
        ks = kaiser_squires_map(obs.shear, geometry, mask=mask, smoothing_fwhm_arcmin=config.ks_fwhm_arcmin)[0].numpy()
        record("Kaiser-Squires", point_metrics(ks.astype(np.float64), truth, sel), time.perf_counter() - t0)
        problems = {name: pipeline.build_problem(obs.shear, obs.noise_std, mask, geometry, prior=prior,
                                                 power_map=power, truth=truth)
                    for name, prior in priors.items()}
        reference = next(iter(problems.values()), None) or pipeline.build_problem(
            obs.shear, obs.noise_std, mask, geometry, power_map=power, truth=truth)
        t0 = time.perf_counter()
        wf = np.asarray(reference.wiener, dtype=np.float64)
        record("Wiener filter", point_metrics(wf, truth, sel), time.perf_counter() - t0)
        if config.exact_reference:
            t0 = time.perf_counter()
            exact = constrained_realisations(reference.likelihood, power, config.num_chains,
                                             seed=config.seed * 7919 + 2000 + i)
            record("Gaussian posterior (exact)", sample_metrics(exact.numpy().astype(np.float64), truth, sel),
                   time.perf_counter() - t0)
        for name, problem in problems.items():
            t0 = time.perf_counter()
            snap = last_snapshot(pipeline.run(problem, sampler=config.sampler, schedule=schedule,
                                              num_chains=config.num_chains, seed=config.seed * 7919 + 3000 + i,
                                              final_denoise=config.final_denoise or "none",
                                              jit_compile=config.jit_compile, **options))
            metrics = sample_metrics(snap.chains.astype(np.float64), truth, sel)
            metrics["acceptance"] = float(np.mean(snap.traces["acceptance"]))
            record(name, metrics, time.perf_counter() - t0)
        if progress:
            logger.info("map %d/%d done (%.0f s)", i + 1, config.num_maps, time.perf_counter() - start)
    expected = expected_coverages(config.num_chains)
    return {
        "config": {**dataclasses.asdict(config), "priors": list(config.priors)},
        "geometry": {"npix": geometry.npix, "pixel_size_arcmin": geometry.pixel_size_arcmin,
                     "observed_fraction": float(sel.mean()), "noise_std_per_pixel": float(noise.std[0, 0, 0]),
                     "truth_pixel_std": float(truths.std())},
        "expected_coverage_with_num_chains": expected,
        "methods": {name: aggregate(values) for name, values in per_method.items()},
        "per_map": per_method,
        "seconds": {k: round(v, 2) for k, v in timings.items()},
        "total_seconds": round(time.perf_counter() - start, 1),
        "notes": notes,
    }


def markdown_table(result: dict[str, Any]) -> str:
    """A markdown report of :func:`run_calibration`'s result (the table the README quotes)."""
    cfg = result["config"]
    geo = result["geometry"]
    exp = result["expected_coverage_with_num_chains"]
    lines = [
        f"Calibration on {cfg['num_maps']} simulated {cfg['truth']} maps, {geo['npix']}×{geo['npix']} pixels of "
        f"{geo['pixel_size_arcmin']:.3g}′, {cfg['mask']} mask ({geo['observed_fraction']:.0%} observed), shape noise "
        f"σ_e = {cfg['sigma_e']}, n_gal = {cfg['n_gal_arcmin2']:g}/arcmin² (σ_n = {geo['noise_std_per_pixel']:.3f} per "
        f"pixel; truth pixel std {geo['truth_pixel_std']:.3f}); {cfg['num_chains']} samples per map; schedule "
        f"{cfg['num_levels']} levels × {cfg['steps_per_level']} steps, σ {cfg['sigma_max']:g} → {cfg['sigma_min']:g}, "
        f"{cfg['sampler']}, final denoising {cfg['final_denoise'] or 'none'}. Metrics over observed pixels, mean ± "
        "standard error over maps.",
        "",
        "| method | RMSE | Pearson r | 68% coverage | 95% coverage | 95% coverage, top 5% κ | mean posterior std |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, m in result["methods"].items():
        lines.append(
            f"| {name} | {fmt(m['rmse'], 4)} | {fmt(m['pearson'])} | {fmt(m.get('coverage_68'))} | "
            f"{fmt(m.get('coverage_95'))} | {fmt(m.get('coverage_95_top5pct'))} | "
            f"{fmt(m.get('mean_posterior_std'), 4)} |"
        )
    lines += [
        "",
        f"Ideal coverage with {cfg['num_chains']} samples (empirical quantiles, exchangeable truth): "
        f"68% → {exp['coverage_68']:.3f}, 95% → {exp['coverage_95']:.3f}. \"top 5% κ\": pixels whose true κ exceeds "
        f"its 95th percentile (where a lognormal truth departs most from a Gaussian prior). KS smoothed with FWHM "
        f"{cfg['ks_fwhm_arcmin']:g}′.",
    ]
    if result.get("notes"):
        lines += [""] + [f"Note: {n}" for n in result["notes"]]
    lines.append(f"Run time {result['total_seconds']:.0f} s (`python -m benchmarks.calibration"
                 f"{' --quick' if cfg['num_maps'] == QUICK['num_maps'] and cfg['num_levels'] == QUICK['num_levels'] else ''}`).")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    d = CalibrationConfig()
    p = argparse.ArgumentParser(prog="python -m benchmarks.calibration", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true", help=f"small run for a CPU in a couple of minutes: {QUICK}")
    p.add_argument("--num-maps", type=int, default=None, help=f"number of simulated truths (default {d.num_maps})")
    p.add_argument("--chains", type=int, default=None, help=f"posterior samples per map (default {d.num_chains})")
    p.add_argument("--levels", type=int, default=None, help=f"annealing levels (default {d.num_levels})")
    p.add_argument("--steps-per-level", type=int, default=None, help=f"transitions per level (default {d.steps_per_level})")
    p.add_argument("--sampler", choices=sampler_names(), default=d.sampler,
                   help="transition kernel (ula: one score evaluation per transition, for the costly hybrid prior)")
    p.add_argument("--sigma-min", type=float, default=d.sigma_min, help="last annealing noise level")
    p.add_argument("--denoise", choices=DENOISERS, default=d.final_denoise,
                   help="final denoising of the chains at sigma-min")
    p.add_argument("--npix", type=int, default=d.npix, help="map side in pixels")
    p.add_argument("--truth", choices=TRUTHS, default=d.truth,
                   help="kind of simulated truth (halo_model: core.physics.halos, non-Gaussian halo maps)")
    p.add_argument("--mask", choices=["cosmos", "full"], default=d.mask, help="survey footprint")
    p.add_argument("--priors", default=",".join(d.priors), help="comma-separated priors to sample: gaussian,hybrid")
    p.add_argument("--no-exact", action="store_true", help="skip the exact Gaussian-posterior reference")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of truths, noise and chains")
    p.add_argument("--xla", action="store_true", help="XLA-compile the sampling chunks")
    p.add_argument("--output-dir", type=Path, default=RESULTS_DIR, help="where to write the JSON and markdown")
    p.add_argument("--tag", default=None, help="file stem (default calibration or calibration_quick)")
    return p


def config_from_args(args: argparse.Namespace) -> CalibrationConfig:
    cfg = CalibrationConfig(npix=args.npix, sampler=args.sampler, sigma_min=args.sigma_min,
                            final_denoise=None if args.denoise == "none" else args.denoise, truth=args.truth, mask=args.mask, seed=args.seed,
                            priors=tuple(p.strip() for p in args.priors.split(",") if p.strip()),
                            exact_reference=not args.no_exact, jit_compile=args.xla)
    if args.quick:
        cfg = dataclasses.replace(cfg, **QUICK)
    overrides = {"num_maps": args.num_maps, "num_chains": args.chains, "num_levels": args.levels,
                 "steps_per_level": args.steps_per_level}
    return dataclasses.replace(cfg, **{k: v for k, v in overrides.items() if v is not None})


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    result = run_or_report("calibration", lambda: run_calibration(config_from_args(args)))
    if result is None:
        return 2
    stem = args.tag or ("calibration_quick" if args.quick else "calibration")
    summary = {k: v for k, v in result.items() if k != "per_map"}
    write_report(args.output_dir, stem, result, markdown_table(result))
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
