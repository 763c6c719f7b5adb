r"""Side-by-side benchmark of the posterior samplers with the hybrid prior (issue #11, item 3).

Problems (64² maps of 0.87′, lognormal truths from the Planck18 z_s = 1 power spectrum, :func:`core.pipeline.simulated_problem`):

* ``dashboard`` — the dashboard default: random holes (``mask="random_holes"``), σ_e = 0.26, n_gal = 30 arcmin⁻²;
* ``cosmos`` — the COSMOS-like calibration problem of :mod:`benchmarks.calibration`: the COSMOS footprint,
  σ_e = 0.3, n_gal = 65 arcmin⁻².

Truth map ``i`` of a problem is ``simulated_problem(..., seed=base_seed + i)``; every method sees the same
observations. Methods (``label: prior / sampler / schedule``) — see :data:`METHODS`; the annealed HMC samplers use
the dashboard's schedule (60 levels × 10 transitions, σ 0.5 → 10⁻³), the diffusion samplers one transition per level
change on ``--diffusion-levels`` geometric levels over the same σ range.

Metrics per map, over observed pixels (mean over maps ± standard error over maps): NFE per chain (from the
snapshot, +1 for the final Tweedie denoising), wall time of the run, RMSE and Pearson r of the posterior mean,
coverage of the central 68/95 % intervals of the samples (all observed pixels, the pixels whose true κ is in
the top 5 %, and those whose posterior mean is; :func:`benchmarks.calibration.sample_metrics`, which also gives the
Monte-Carlo-corrected RMSE of the mean; with ``C`` samples the expected coverage of an
empirical interval is ``benchmarks.calibration.expected_coverage(C, q)``, listed in the JSON), the sample skewness
of the pixel values (mean over samples) vs the truth's, and the number of peaks (local maxima, 3×3, above 2 and 3
prior pixel standard deviations) per sample vs the truth's.

Run ``python -m benchmarks.compare_samplers --quick`` (a few minutes) or without ``--quick`` for the full run; it
writes ``benchmarks/results/compare_samplers[_quick].json``. ``--must-reach`` adds the must-reach timings of the
issue (dashboard default with the hybrid prior to σ_min; a whole 360² run at 0.29′; the hybrid posterior mean with
≥ 64 samples vs the Wiener filter, raw and with the Monte-Carlo excess of the finite-sample mean removed) to
``<tag>_must_reach.json``. That last one costs minutes per map; ``--wiener-previous OLD_must_reach.json`` reuses the
maps of an earlier run with the same settings (:func:`previous_hybrid_vs_wiener`) and samples only the others.
Timings are wall-clock on whatever the machine gives (the JSON records ``os.getloadavg()``).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from benchmarks._tables import aggregate, fmt, paired_difference, reusable_rows
from benchmarks.calibration import COVERAGE_LEVELS, point_metrics, sample_metrics

logger = logging.getLogger("benchmarks.compare_samplers")

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PIXEL_ARCMIN = 104.4 / 120
PEAK_THRESHOLDS = (2.0, 3.0)

PROBLEMS: dict[str, dict[str, Any]] = {
    "dashboard": dict(mask="random_holes", sigma_e=0.26, n_gal=30.0),
    "cosmos": dict(mask="cosmos", sigma_e=0.3, n_gal=65.0),
}


@dataclass(frozen=True)
class Method:
    label: str
    prior: str
    sampler: str
    options: dict[str, Any] = field(default_factory=dict)
    annealed: bool = False  # True: the HMC schedule (levels × steps); False: one transition per level change


METHODS: tuple[Method, ...] = (
    Method("gaussian-hmc", "gaussian", "hmc", annealed=True),
    Method("hybrid-hmc", "hybrid", "hmc", annealed=True),
    Method("hybrid-pc-k0", "hybrid", "pc", dict(num_corrector_steps=0)),
    Method("hybrid-pc-k1", "hybrid", "pc", dict(num_corrector_steps=1)),
    Method("hybrid-pc-k3", "hybrid", "pc", dict(num_corrector_steps=3)),
    Method("hybrid-dps", "hybrid", "dps"),
    Method("hybrid-mmps", "hybrid", "mmps"),
    Method("hybrid-mmps-heun", "hybrid", "mmps", dict(integrator="heun")),
)


@dataclass
class Config:
    num_maps: int = 8
    num_chains: int = 8
    npix: int = 64
    sigma_max: float = 0.5
    sigma_min: float = 1e-3
    hmc_levels: int = 60
    hmc_steps_per_level: int = 10
    diffusion_levels: int = 60
    problems: tuple[str, ...] = ("dashboard", "cosmos")
    methods: tuple[str, ...] = tuple(m.label for m in METHODS)
    base_seed: int = 100
    subset_maps: int | None = None  # run the costly methods (SUBSET_METHODS) on the first n maps of a problem only
    weights: str | None = None  # shipped weights of the hybrid prior (None: the preferred ones at the pixel scale)
    subset_methods: tuple[str, ...] = ("hybrid-hmc", "hybrid-mmps", "hybrid-mmps-heun", "hybrid-dps")


def _skewness(x: np.ndarray) -> float:
    d = x - x.mean()
    return float(np.mean(d**3) / np.mean(d**2) ** 1.5)


def _peaks(kappa: np.ndarray, sel: np.ndarray, threshold: float) -> int:
    from core.analysis.summaries import find_peaks

    pos = find_peaks(np.where(sel, kappa, kappa.min() - 1.0), threshold=threshold, size=3, periodic=False)
    return int(len(pos))


def map_metrics(samples: np.ndarray, truth: np.ndarray, sel: np.ndarray, pixel_std: float) -> dict[str, float]:
    """The per-map metrics of the module docstring: those of :func:`benchmarks.calibration.sample_metrics` (RMSE,
    r, coverage overall, at the truth's and at the posterior mean's top 5 %, Monte-Carlo-corrected RMSE) plus the
    sample skewness and peak counts against the truth's."""
    out = sample_metrics(samples, truth, sel)
    out["skewness"] = float(np.mean([_skewness(s[sel]) for s in samples]))
    out["skewness_truth"] = _skewness(truth[sel])
    out["posterior_std"] = out["mean_posterior_std"]
    for t in PEAK_THRESHOLDS:
        out[f"peaks_{t:g}sigma"] = float(np.mean([_peaks(s, sel, t * pixel_std) for s in samples]))
        out[f"peaks_{t:g}sigma_truth"] = float(_peaks(truth, sel, t * pixel_std))
    return out


def _aggregate(per_map: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean ± s.e. over maps of every metric (:func:`benchmarks._tables.aggregate`), and the number of maps."""
    out = aggregate(per_map)
    out["num_maps"] = {"mean": float(len(per_map)), "se": 0.0}
    return out


def _schedule(config: Config, method: Method) -> Any:
    from core.pipeline import make_schedule

    if method.annealed:
        return make_schedule("geometric", config.sigma_max, config.sigma_min, config.hmc_levels, config.hmc_steps_per_level)
    return make_schedule("geometric", config.sigma_max, config.sigma_min, config.diffusion_levels, 1)


def run_method(problem: Any, method: Method, config: Config, seed: int, num_chains: int | None = None) -> tuple[np.ndarray, dict[str, float]]:
    """One run to σ_min (+ final Tweedie denoising): (chains, {nfe, seconds})."""
    from core.pipeline import run

    t0 = time.perf_counter()
    cpu0 = time.process_time()
    last = None
    for last in run(problem, method.sampler, schedule=_schedule(config, method), num_chains=num_chains or config.num_chains,
                    seed=seed, final_denoise="tweedie", **method.options):
        pass
    seconds = time.perf_counter() - t0
    assert last is not None and last.done
    return last.chains.astype(np.float64), {"nfe": float(last.nfe) + 1.0, "seconds": seconds,
                                            "cpu_seconds": time.process_time() - cpu0}


def _problems(config: Config, name: str, index: int, hybrid_prior: Any) -> dict[str, Any]:
    from core.pipeline import build_problem, simulated_problem

    spec = PROBLEMS[name]
    gaussian = simulated_problem(config.npix, PIXEL_ARCMIN, source="lognormal", mask=spec["mask"], sigma_e=spec["sigma_e"],
                                 n_gal=spec["n_gal"], prior="gaussian", seed=config.base_seed + index)
    out = {"gaussian": gaussian}
    if hybrid_prior is not None:
        out["hybrid"] = build_problem(gaussian.shear, gaussian.noise_std, gaussian.mask, gaussian.geometry,
                                      prior=hybrid_prior, truth=gaussian.truth, power_map=gaussian.power_map)
    return out


def run_benchmark(config: Config) -> dict[str, Any]:
    from benchmarks.calibration import expected_coverages
    from core.physics.geometry import MapGeometry
    from core.pipeline import build_prior

    start = time.perf_counter()
    methods = [m for m in METHODS if m.label in config.methods]
    geometry = MapGeometry(config.npix, PIXEL_ARCMIN)
    hybrid = (build_prior("hybrid", geometry, weights=config.weights) if any(m.prior == "hybrid" for m in methods)
              else None)
    results: dict[str, Any] = {}
    for pname in config.problems:
        per_method: dict[str, list[dict[str, float]]] = {}
        for i in range(config.num_maps):
            problems = _problems(config, pname, i, hybrid)
            base = problems["gaussian"]
            truth = base.truth.astype(np.float64)
            sel = base.mask > 0
            pixel_std = float(np.sqrt(np.mean(base.power_map)))
            wiener = base.wiener.astype(np.float64)
            per_method.setdefault("wiener", []).append({
                "rmse": float(np.sqrt(np.mean((wiener - truth)[sel] ** 2))),
                "pearson": float(np.corrcoef(wiener[sel], truth[sel])[0, 1])})
            for method in methods:
                if method.label in config.subset_methods and config.subset_maps is not None and i >= config.subset_maps:
                    continue
                chains, cost = run_method(problems[method.prior], method, config, seed=1000 + i)
                metrics = map_metrics(chains, truth, sel, pixel_std)
                metrics.update(cost)
                per_method.setdefault(method.label, []).append(metrics)
                logger.info("%s map %d %s: rmse %.4f cov95 %.3f nfe %.0f %.1f s", pname, i, method.label, metrics["rmse"],
                            metrics["coverage_95"], cost["nfe"], cost["seconds"])
        results[pname] = {label: _aggregate(v) for label, v in per_method.items()}
        results[pname + "_per_map"] = per_method
    return {
        "config": asdict(config),
        "methods": {m.label: {"prior": m.prior, "sampler": m.sampler, "options": m.options, "annealed": m.annealed} for m in methods},
        "expected_coverage_with_num_chains": expected_coverages(config.num_chains, COVERAGE_LEVELS),
        "results": results,
        "paired_against_hybrid_hmc": paired_against_reference(results),
        "recommendation": recommend(results),
        "load_average": os.getloadavg(),
        "total_seconds": round(time.perf_counter() - start, 1),
    }


PAIRED_KEYS = ("coverage_68", "coverage_95", "coverage_68_top5pct", "coverage_95_top5pct", "rmse", "pearson", "skewness",
               "peaks_3sigma", "nfe", "seconds")


def paired_against_reference(results: dict[str, Any], reference: str = "hybrid-hmc") -> dict[str, Any]:
    """Per problem, on the maps where ``reference`` ran (the first n): every method's mean and its paired difference
    to ``reference`` (mean ± s.e. over those maps) — fair when the costly methods ran on a subset of the maps."""
    out: dict[str, Any] = {}
    for pname, per_method in results.items():
        if not pname.endswith("_per_map") or reference not in per_method:
            continue
        ref = per_method[reference]
        n = len(ref)
        table: dict[str, Any] = {"num_maps": n}
        for label, rows in per_method.items():
            if label == "wiener" or len(rows) < n:
                continue
            entry = {}
            for key in PAIRED_KEYS:
                values = [rows[i][key] for i in range(n)]
                diff = paired_difference(values, [ref[i][key] for i in range(n)])
                entry[key] = {"mean": float(np.mean(values)), "diff": diff["mean"], "diff_se": diff["se"]}
            table[label] = entry
        out[pname[: -len("_per_map")]] = table
    return out


def recommend(results: dict[str, Any], tolerance: float = 0.03) -> dict[str, Any]:
    """The cheapest (NFE) hybrid sampler whose 95 % coverage is within ``tolerance`` of hybrid-HMC's on every problem,
    compared on the same maps (:func:`paired_against_reference`)."""
    out: dict[str, Any] = {"rule": f"cheapest NFE with |coverage_95 − hybrid-hmc's| ≤ {tolerance} on every problem "
                                   "(paired, on the maps where hybrid-hmc ran)"}
    paired = paired_against_reference(results)
    candidates = None
    for table in paired.values():
        ok = {label for label, row in table.items() if label.startswith("hybrid-") and label != "hybrid-hmc"
              and abs(row["coverage_95"]["diff"]) <= tolerance}
        candidates = ok if candidates is None else candidates & ok
    if not candidates:
        out["choice"] = None
        return out
    first = next(iter(paired.values()))
    out["choice"] = min(candidates, key=lambda label: first[label]["nfe"]["mean"])
    out["candidates"] = sorted(candidates)
    return out


# ------------------------------------------------------------------------------------------- must-reach
def must_reach(config: Config, sampler: str, options: dict[str, Any], wiener_maps: int, wiener_chains: int,
               items: Sequence[int] = (1, 2, 3), weights: str | None = None,
               reuse: Mapping[int, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The must-reach measurements ``items`` (1, 2, 3) of issue #11 for one sampler (see the module docstring);
    ``reuse``: item-3 rows of an earlier run by map index, from :func:`previous_hybrid_vs_wiener`."""
    from core.physics.geometry import MapGeometry
    from core.pipeline import build_prior

    method = Method(f"hybrid-{sampler}", "hybrid", sampler, options)
    out: dict[str, Any] = {"sampler": sampler, "options": options, "weights": weights, "config": asdict(config),
                           "load_average_start": os.getloadavg()}
    # 1. dashboard default, hybrid prior, 8 chains, to σ_min (+ Tweedie)
    geometry = MapGeometry(64, PIXEL_ARCMIN)
    hybrid = build_prior("hybrid", geometry, weights=weights)
    problems = _problems(config, "dashboard", 0, hybrid)
    problems["hybrid"].wiener  # noqa: B018 - computed once, as the dashboard does, before timing the run
    if 1 in items:
        chains, cost = run_method(problems["hybrid"], method, config, seed=1)
        out["dashboard_default"] = {**cost, "num_chains": config.num_chains, "target_seconds": 30.0}
    if 2 in items:
        out["cosmos_360"] = _cosmos_360(config, sampler, options)
    out["load_average_mid"] = os.getloadavg()
    if wiener_maps < 1 or 3 not in items:
        return out
    return _hybrid_vs_wiener(out, config, method, hybrid, wiener_maps, wiener_chains, reuse)


def _cosmos_360(config: Config, sampler: str, options: dict[str, Any]) -> dict[str, Any]:
    """360² at 0.29′, 8 chains: time the whole run (the first chunk includes tracing), Wiener filter included."""
    from core.pipeline import make_schedule, run, simulated_problem

    big = simulated_problem(360, 104.4 / 360, source="lognormal", mask="cosmos", sigma_e=0.3, n_gal=65.0,
                            prior="hybrid", seed=0)
    schedule = make_schedule("geometric", config.sigma_max, config.sigma_min, config.diffusion_levels, 1)
    t0 = time.perf_counter()
    big.wiener  # noqa: B018
    wiener_s = time.perf_counter() - t0
    times, cpus, steps = [], [], []
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    for snap in run(big, sampler, schedule=schedule, num_chains=8, seed=2, chunk_seconds=20.0, **options):
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - cpu0)
        steps.append(snap.step)
        if snap.done:
            break
    per_transition = (times[-1] - times[1]) / max(steps[-1] - steps[1], 1) if len(times) >= 3 else times[-1] / steps[-1]
    total = schedule.num_levels - 1
    return {
        "pixel_arcmin": 104.4 / 360, "num_chains": 8, "measured_transitions": steps, "measured_seconds": times,
        "seconds_per_transition": per_transition, "cpu_seconds": cpus,
        "cpu_seconds_per_transition": (cpus[-1] - cpus[1]) / max(steps[-1] - steps[1], 1) if len(cpus) >= 3 else None,
        "num_transitions": total, "wiener_seconds": wiener_s,
        "run_seconds": wiener_s + times[-1], "completed": bool(steps[-1] >= total),
        "target_seconds": 600.0, "note": "the whole run to σ_min timed: Wiener filter + sampling (tracing included)",
    }


# the Config fields that determine must-reach 3's per-map rows (with the sampler, its options and the sample count)
MUST_REACH_3_SETTINGS = ("npix", "sigma_max", "sigma_min", "diffusion_levels", "hmc_levels", "hmc_steps_per_level",
                         "base_seed", "weights")


def previous_hybrid_vs_wiener(previous: dict[str, Any], config: Config, sampler: str, options: dict[str, Any],
                              wiener_chains: int) -> dict[int, dict[str, Any]]:
    """The per-map rows of must-reach 3 in an earlier must-reach JSON ``previous``, keyed by map index, if they were
    made with the same sampler, options, number of samples and :data:`MUST_REACH_3_SETTINGS` (map ``i`` always uses
    truth seed ``base_seed + i`` and sampler seed ``3000 + i``, so such a row is what this run would compute). A
    ``ValueError`` naming what differs otherwise. Rows written before they carried their ``map`` index are in order."""
    section = previous.get("hybrid_vs_wiener") if isinstance(previous, dict) else None
    if not isinstance(section, dict) or not isinstance(section.get("per_map"), list):
        raise ValueError("previous result: no must-reach 3 rows ('hybrid_vs_wiener' with a 'per_map' list)")
    if not isinstance(previous.get("config"), dict):
        raise ValueError("previous result records no config, so its settings cannot be checked")
    old = {**previous["config"], "sampler": previous.get("sampler"), "options": previous.get("options") or {},
           "num_samples": section.get("num_samples")}
    new = {**asdict(config), "sampler": sampler, "options": options, "num_samples": wiener_chains}
    return reusable_rows(section["per_map"], old, new, (*MUST_REACH_3_SETTINGS, "sampler", "options", "num_samples"))


def _hybrid_vs_wiener(out: dict[str, Any], config: Config, method: Method, hybrid: Any, wiener_maps: int,
                      wiener_chains: int, reuse: Mapping[int, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The hybrid posterior mean with ≥ 64 samples vs the Wiener filter on the lognormal COSMOS-like maps; maps in
    ``reuse`` (rows of an earlier run with the same settings, :func:`previous_hybrid_vs_wiener`) are not sampled."""
    reuse = reuse or {}
    per_map = []
    for i in range(wiener_maps):
        if i in reuse:
            per_map.append({**reuse[i], "map": i})
            logger.info("hybrid vs Wiener map %d/%d: reused from the previous result", i + 1, wiener_maps)
            continue
        problems = _problems(config, "cosmos", i, hybrid)
        base = problems["gaussian"]
        sel = base.mask > 0
        truth = base.truth.astype(np.float64)
        chains, cost = run_method(problems["hybrid"], method, config, seed=3000 + i, num_chains=wiener_chains)
        hybrid_metrics = sample_metrics(chains, truth, sel)
        wiener_metrics = point_metrics(base.wiener, truth, sel)
        per_map.append({
            "map": i, "rmse_hybrid_mean": hybrid_metrics["rmse"],
            "rmse_hybrid_mean_mc_corrected": hybrid_metrics["rmse_mc_corrected"],
            "rmse_wiener": wiener_metrics["rmse"],
            "pearson_hybrid_mean": hybrid_metrics["pearson"], "pearson_wiener": wiener_metrics["pearson"],
            "mean_posterior_std": hybrid_metrics["mean_posterior_std"],
            "seconds": cost["seconds"]})
        logger.info("hybrid vs Wiener map %d/%d: %s", i + 1, wiener_maps, per_map[-1])
    column = {key: [m[key] for m in per_map] for key in per_map[0] if key != "map"}
    out["hybrid_vs_wiener"] = {
        "num_maps": wiener_maps, "num_samples": wiener_chains, "per_map": per_map,
        "maps_reused": sorted(i for i in reuse if i < wiener_maps),
        "rmse_hybrid_mean": float(np.mean(column["rmse_hybrid_mean"])),
        "rmse_wiener": float(np.mean(column["rmse_wiener"])),
        # RMSE(hybrid mean) − RMSE(Wiener), mean ± s.e. over maps (+ "n"): benchmarks._tables.paired_difference
        "paired_difference": paired_difference(column["rmse_hybrid_mean"], column["rmse_wiener"]),
        # the same for the sampler's infinite-sample mean (calibration.monte_carlo_corrected_rmse): the Monte-Carlo
        # excess of a finite-sample mean removed, without bias
        "paired_difference_mc_corrected": paired_difference(column["rmse_hybrid_mean_mc_corrected"],
                                                            column["rmse_wiener"]),
        "paired_difference_pearson": paired_difference(column["pearson_hybrid_mean"], column["pearson_wiener"]),
    }
    out["load_average_end"] = os.getloadavg()
    return out


# ------------------------------------------------------------------------------------------- report
def markdown_table(result: dict[str, Any]) -> str:
    lines = []
    for pname, table in result["results"].items():
        if pname.endswith("_per_map"):
            continue
        lines += [f"**{pname}** ({int(table[next(iter(table))]['num_maps']['mean'])} maps, "
                  f"{result['config']['num_chains']} chains, hybrid weights "
                  f"`{result['config'].get('weights') or 'preferred at 0.87′'}`)", "",
                  "| method | NFE/chain | wall s | RMSE | Pearson r | cov 68 | cov 95 | cov 68 top5% | cov 95 top5% "
                  "| cov 95 mean top5% | skewness (truth) | peaks >3σ (truth) |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for label, row in table.items():
            g = row.get
            lines.append(
                f"| {label} | {fmt(g('nfe'), 0)} | {fmt(g('seconds'), 1)} | {fmt(g('rmse'), 4)} | {fmt(g('pearson'))} "
                f"| {fmt(g('coverage_68'))} | {fmt(g('coverage_95'))} | {fmt(g('coverage_68_top5pct'))} "
                f"| {fmt(g('coverage_95_top5pct'))} | {fmt(g('coverage_95_mean_top5pct'))} | {fmt(g('skewness'), 2)} ({fmt(g('skewness_truth'), 2)}) "
                f"| {fmt(g('peaks_3sigma'), 1)} ({fmt(g('peaks_3sigma_truth'), 1)}) |")
        lines.append("")
    return "\n".join(lines)


def paired_markdown(result: dict[str, Any]) -> str:
    lines = []
    for pname, table in result["paired_against_hybrid_hmc"].items():
        lines += [f"**{pname}**, paired on the {table['num_maps']} maps where hybrid-hmc ran (value; difference to hybrid-hmc "
                  "± s.e.)", "", "| method | NFE/chain | cov 68 | cov 95 | cov 95 top5% | RMSE | skewness |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for label, row in table.items():
            if label == "num_maps":
                continue
            cell = lambda k, d=3: f"{row[k]['mean']:.{d}f} ({row[k]['diff']:+.{d}f} ± {row[k]['diff_se']:.{d}f})"  # noqa: E731
            lines.append(f"| {label} | {row['nfe']['mean']:.0f} | {cell('coverage_68')} | {cell('coverage_95')} "
                         f"| {cell('coverage_95_top5pct')} | {cell('rmse', 4)} | {cell('skewness', 2)} |")
        lines.append("")
    return "\n".join(lines)


def report_markdown(result: dict[str, Any]) -> str:
    """The written report: both tables and the recommendation."""
    rec = result["recommendation"]
    return "\n".join([markdown_table(result), "Paired on the same maps:", "", paired_markdown(result),
                      f"Recommendation ({rec['rule']}): `{rec.get('choice')}`; candidates: {rec.get('candidates', [])}.", ""])


QUICK = dict(num_maps=2, num_chains=8, hmc_levels=20, hmc_steps_per_level=2, diffusion_levels=20, problems=("dashboard",))


def parse_sampler(text: str) -> tuple[str, tuple[tuple[str, Any], ...]]:
    """``NAME[:KEY=VALUE,...]`` → (name, options validated by the sampler's registry spec), ``ValueError`` naming a
    bad entry."""
    from core.options import sampler_spec

    name, _, rest = text.partition(":")
    spec = sampler_spec(name.strip())
    options = []
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"sampler options must be KEY=VALUE, got {item!r} in {text!r}")
        options.append((key.strip(), spec.option(key.strip()).validate(value.strip())))
    return name.strip(), tuple(options)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.compare_samplers", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help=f"small run: {QUICK}")
    p.add_argument("--num-maps", type=int, default=None)
    p.add_argument("--chains", type=int, default=None)
    p.add_argument("--hmc-steps-per-level", type=int, default=None)
    p.add_argument("--diffusion-levels", type=int, default=None)
    p.add_argument("--subset-maps", type=int, default=None, help="run the costly methods (hybrid-hmc, -mmps, -dps) on "
                   "the first n maps of each problem only")
    p.add_argument("--hmc-levels", type=int, default=None)
    p.add_argument("--methods", default=None, help="comma-separated labels (default: all)")
    p.add_argument("--problems", default=None, help="comma-separated: dashboard,cosmos")
    p.add_argument("--must-reach", default=None, metavar="SAMPLER", help="also run the must-reach measurements with SAMPLER")
    p.add_argument("--must-reach-only", action="store_true")
    p.add_argument("--wiener-maps", type=int, default=4)
    p.add_argument("--must-reach-items", default="1,2,3", help="which must-reach measurements: 1,2,3")
    p.add_argument("--wiener-chains", type=int, default=64)
    p.add_argument("--wiener-previous", type=Path, default=None, metavar="OLD_must_reach.json",
                   help="reuse the must-reach 3 maps of an earlier run with the same settings; sample only the others")
    p.add_argument("--tag", default=None)
    p.add_argument("--weights", default=None, help="shipped weights of the hybrid prior, in the main table and the "
                   "must-reach runs (default: the preferred ones at the pixel scale), e.g. hybrid_0.87arcmin "
                   "(lognormal-trained, matching the lognormal truths)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    config = Config(**QUICK) if args.quick else Config()
    for name, value in (("num_maps", args.num_maps), ("num_chains", args.chains), ("hmc_steps_per_level", args.hmc_steps_per_level),
                        ("diffusion_levels", args.diffusion_levels), ("subset_maps", args.subset_maps),
                        ("hmc_levels", args.hmc_levels), ("weights", args.weights)):
        if value is not None:
            setattr(config, name, value)
    if args.methods:
        config.methods = tuple(args.methods.split(","))
    if args.problems:
        config.problems = tuple(args.problems.split(","))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    tag = args.tag or ("compare_samplers_quick" if args.quick else "compare_samplers")
    if not args.must_reach_only:
        result = run_benchmark(config)
        (RESULTS_DIR / f"{tag}.json").write_text(json.dumps(result, indent=1))
        report = report_markdown(result)
        (RESULTS_DIR / f"{tag}.md").write_text(report)
        print(report)
    if args.must_reach:
        name, parsed = parse_sampler(args.must_reach)  # e.g. pc:num_corrector_steps=1
        options = dict(parsed)
        items = tuple(int(i) for i in args.must_reach_items.split(","))
        reuse = None
        if args.wiener_previous is not None:  # checked before any sampling (items 1 and 2 take minutes)
            try:
                previous = json.loads(args.wiener_previous.read_text())
            except (OSError, ValueError) as err:
                p.error(f"--wiener-previous {args.wiener_previous}: cannot read it as JSON ({err})")
            try:
                reuse = previous_hybrid_vs_wiener(previous, config, name, options, args.wiener_chains)
            except ValueError as err:
                p.error(f"--wiener-previous {args.wiener_previous}: {err}")
        out = must_reach(config, name, options, args.wiener_maps, args.wiener_chains, items, weights=args.weights,
                         reuse=reuse)
        out["command"] = " ".join([p.prog, *map(shlex.quote, sys.argv[1:] if argv is None else argv)])
        (RESULTS_DIR / f"{tag}_must_reach.json").write_text(json.dumps(out, indent=1))
        print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
