r"""The ideal value of the *conditional* coverage metric ``coverage_95_top5pct`` (issue #12's "95 % coverage at the
top-5 % κ pixels ≥ 0.8"), measured where the exact answer is known: Gaussian truths, exact Gaussian posterior.

**Question.** :mod:`benchmarks.halo_posterior` reports, besides the coverage over all observed pixels, the coverage
over the pixels whose *true* κ is above its 95th percentile in the mask (``coverage_{68,95}_top5pct`` of
:func:`benchmarks.calibration.sample_metrics`). What should a perfect posterior score there?

**Argument.** Calibration of a Bayesian posterior is a statement *marginal over the prior*: if ``κ* ~ π`` and
``d | κ* ~ p(d | κ*)``, then ``κ*`` and draws ``x_1 … x_C`` of ``p(κ | d)`` are exchangeable given ``d``, so the
empirical central ``q`` interval of the draws contains ``κ*_j`` with probability ``c_C(q)``
(:func:`benchmarks.calibration.expected_coverage`; ``c_64(0.95) ≈ 0.923``) — for every pixel and, because the
indicator's law given ``d`` does not depend on ``d`` for a Gaussian posterior, also conditionally on any selection
made from the data (e.g. the pixels where the posterior mean is high). Selecting on the *truth* breaks this: pixels
with extreme ``κ*`` are exactly those where any posterior, the exact one with the true prior included, is shrunk
towards the prior mean below the truth. For one pixel of a Gaussian problem, with prior variance ``V = ξ(0) =
mean(P)`` (the power map's mean, the circulant covariance's diagonal), posterior variance ``s²`` and the explained
fraction ``r = 1 − s²/V``, the posterior mean given the truth is ``m | κ* ~ N(r κ*, r(1 − r) V)``, so with
``u = κ*/√V``

.. math::  \frac{κ^* - m}{s}\,\Big|\,κ^* \sim N\!\left(\sqrt{1-r}\,u,\; r\right),\qquad
           c(q \mid u) = Φ\!\left(\frac{z_q - \sqrt{1-r}\,u}{\sqrt r}\right) - Φ\!\left(\frac{-z_q - \sqrt{1-r}\,u}{\sqrt r}\right)

(``z_q`` the normal quantile; with ``C`` draws ``±z_q`` become the empirical quantiles of ``C`` standard normals,
averaged over their law). It equals ``q`` on average over ``u ~ N(0, 1)`` but falls steeply for ``u ≳ 1.6`` (the
top 5 %) wherever the data leave ``r`` well below 1, as the COSMOS noise does at 0.87′.

**Protocol** (the :mod:`benchmarks.halo_posterior` set-up at 0.87′ with Gaussian instead of halo-model truths):
``--maps`` truths ``κ*`` drawn *from the prior itself*, Gaussian random fields with the theory power map
(:func:`core.pipeline.theory_power_map`, :func:`core.physics.fields.gaussian_field`, stateless seed ``[seed, 0]``);
the observation of :func:`benchmarks.halo_posterior.cosmos_patch` ``("0.87", npix)`` (COSMOS mask and per-pixel
COSMOS noise, 64² ``rebin`` layout), shear ``γ = M(Pκ* + n)`` (:meth:`core.data.observation.Observation.simulated`,
noise seed ``[seed + 1, i]``); ``--chains`` exact posterior samples (constrained realisations,
:func:`core.analysis.baselines.constrained_realisations`, seed ``[seed + 2, i]``) and the metrics of
:func:`benchmarks.calibration.sample_metrics`, plus the coverage over the top 1 % of the truth and over the top
5 % / 1 % of the posterior mean (the Wiener map: a selection made from the data, a control whose ideal is
``c_C(q)``). Per-map values, mean ± standard error over maps (sd/√M). The default seed ``20270301`` differs from
the halo-posterior held-out seed ``20261201`` (and its ``+1``, ``+2``, ``+3`` words).

**Built-in check.** The prior *is* the truths' distribution, so the posterior is exactly calibrated: its coverage
over all observed pixels must equal ``c_C(q)`` within its standard error; the JSON reports the difference in
standard errors. **Prediction.** The formula above with ``s²`` the per-pixel sample variance pooled over the maps (the
Gaussian posterior covariance does not depend on the data) and the truth values of the selected pixels, both for
``C`` draws and for ``C → ∞``: it treats the selection as a function of ``κ*_j`` alone (the map's own percentile
threshold is random, so this is an approximation).

**What it means for the 0.8 target.** The measured top-5 % coverage is the ideal of the conditional metric *for a
Gaussian truth* at the COSMOS 0.87′ noise: a posterior that scores it is perfect, one that scores more is
over-dispersed (or better informed than the truth's own prior allows). A halo-model truth is not a Gaussian truth:
its top 5 % are sharper, rarer peaks, and the exact posterior under the true (halo-model) prior, whose ideal this
is not, may shrink them more or less; the ideal for halo maps may therefore differ, and is not measured here. The
number says whether a threshold like 0.8 is attainable at all by conditioning on the truth's extremes; a selection
on the data (the control rows) is the one a calibrated posterior can be held to.

Run ``python -m benchmarks.conditional_coverage`` (a few minutes on a CPU: no network, no sampler); it writes
``benchmarks/results/conditional_coverage.{json,md}``.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from benchmarks._tables import aggregate, fmt, run_or_report, write_report
from benchmarks.calibration import COVERAGE_LEVELS, sample_metrics, expected_coverages

logger = logging.getLogger("benchmarks.conditional_coverage")

RESULTS_DIR = Path(__file__).resolve().parent / "results"
STEM = "conditional_coverage"
DEFAULT_SEED = 20270301
#: selections (name → (which map is ranked, upper quantile)): pixels of the mask whose truth / posterior mean is
#: above that quantile of its values in the mask
SELECTIONS: dict[str, tuple[str, float]] = {"top5pct": ("truth", 0.95), "top1pct": ("truth", 0.99),
                                            "top5pct_by_mean": ("mean", 0.95), "top1pct_by_mean": ("mean", 0.99)}
#: the selections on the truth, for which the shrinkage prediction is computed
TRUTH_SELECTIONS = tuple(k for k, (by, _) in SELECTIONS.items() if by == "truth")


@dataclass
class ConditionalCoverageConfig:
    """Settings of one run (see the module docstring). ``spread_scale`` multiplies the samples' deviations from their
    mean (1: the exact posterior; other values make a mis-scaled posterior, the tests' negative control)."""

    scale: str = "0.87"
    npix: int = 64
    num_maps: int = 64
    num_chains: int = 64
    seed: int = DEFAULT_SEED
    spread_scale: float = 1.0
    prediction_trials: int = 20_000

    def validate(self) -> None:
        from benchmarks.halo_posterior import SCALES

        if self.scale not in SCALES:
            raise ValueError(f"scale must be one of {tuple(SCALES)}, got {self.scale!r}")
        for name in ("num_maps", "prediction_trials"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(self.num_chains, bool) or not isinstance(self.num_chains, int) or self.num_chains < 2:
            raise ValueError(f"num_chains must be an integer ≥ 2 for intervals, got {self.num_chains!r}")
        if isinstance(self.npix, bool) or not isinstance(self.npix, int) or self.npix < 16 or self.npix % 2:
            raise ValueError(f"npix must be an even integer ≥ 16, got {self.npix!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if not (np.isfinite(self.spread_scale) and self.spread_scale > 0):
            raise ValueError(f"spread_scale must be a positive number, got {self.spread_scale!r}")


# ------------------------------------------------------------------------------------------- metrics
def selection(values: np.ndarray, sel: np.ndarray, quantile: float) -> np.ndarray:
    """Pixels of ``sel`` whose ``values`` exceed their ``quantile`` over ``sel`` (the rule of ``sample_metrics``)."""
    return sel & (values > np.quantile(values[sel], quantile))


def map_metrics(samples: np.ndarray, truth: np.ndarray, sel: np.ndarray, mean_map: np.ndarray) -> dict[str, float]:
    """:func:`benchmarks.calibration.sample_metrics` of ``samples`` ``(C, N, N)`` plus the coverage over each of
    :data:`SELECTIONS` (``mean_map``: the posterior mean that the ``*_by_mean`` selections rank) and the selected
    pixel counts ``num_pixels_<selection>``."""
    from core.analysis.summaries import interval_coverage

    out = sample_metrics(samples, truth, sel)
    for name, (by, quantile) in SELECTIONS.items():
        picked = selection(truth if by == "truth" else mean_map, sel, quantile)
        cov = interval_coverage(samples, truth, COVERAGE_LEVELS, mask=picked)
        for q in COVERAGE_LEVELS:
            key = f"coverage_{int(round(q * 100))}_{name}"
            if key in out and not np.isclose(out[key], cov[q]):  # pragma: no cover - the same rule as sample_metrics
                raise RuntimeError(f"{key}: selection differs from benchmarks.calibration.sample_metrics")
            out[key] = cov[q]
        out[f"num_pixels_{name}"] = int(picked.sum())
    return out


def interval_quantiles(num_samples: int | None, level: float, trials: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Standardised interval ends ``(lo, hi)``: the empirical central ``level`` quantiles of ``num_samples`` standard
    normals, ``trials`` draws (numpy ``default_rng(seed)``); ``num_samples=None``: the exact ``∓z`` (one value)."""
    from scipy.special import ndtri

    if num_samples is None:
        z = float(ndtri(0.5 + level / 2))
        return np.array([-z]), np.array([z])
    eta = np.random.default_rng(seed).standard_normal((trials, int(num_samples)))
    lo, hi = np.quantile(eta, [(1 - level) / 2, (1 + level) / 2], axis=1)
    return lo, hi


def predicted_coverage(u: np.ndarray, r: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Coverage given the standardised truth ``u = κ*/√V`` of a pixel with explained fraction ``r`` (module docstring):
    ``mean_k [Φ((hi_k − √(1−r)u)/√r) − Φ((lo_k − √(1−r)u)/√r)]`` over the interval ends ``(lo_k, hi_k)``."""
    from scipy.special import ndtr

    u = np.asarray(u, float)[:, None]
    r = np.clip(np.asarray(r, float), 1e-12, 1 - 1e-12)[:, None]
    mu, sd = np.sqrt(1 - r) * u, np.sqrt(r)
    out = np.zeros(u.shape[0])
    for start in range(0, lo.size, 2048):  # chunks keep the (pixels × trials) array small
        l, h = lo[None, start:start + 2048], hi[None, start:start + 2048]
        out += (ndtr((h - mu) / sd) - ndtr((l - mu) / sd)).sum(axis=1)
    return out / lo.size


def coverage_design_effect(covariance: np.ndarray, sel: np.ndarray) -> float:
    r"""``D = 1 + (1/n) Σ_{i≠j ∈ sel} ρ_ij²`` for the posterior correlation ``ρ`` (from the ``(N², N²)`` covariance) over
    the ``n`` pixels of ``sel``: ``Var(coverage over sel) ≤ D · p(1 − p)/n`` for an exact Gaussian posterior.

    Why: given the data, the truth and the ``C`` draws minus the posterior mean are ``C + 1`` independent
    ``N(0, Σ)`` fields whatever the data, so the coverage indicator at pixel ``i`` is a function of a Gaussian vector
    ``w_i``, with ``Corr(w_i, w_j) = ρ_ij · I``, that is even (flipping the sign of ``w_i`` swaps the interval's ends);
    the Hermite expansion of an even function has no linear term, so the indicators' correlation is at most
    ``ρ_ij²`` (not the ``|ρ_ij|`` of the maximal-correlation bound).
    """
    cov = np.asarray(covariance, float)
    idx = np.flatnonzero(np.asarray(sel).ravel())
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1] or cov.shape[0] != np.asarray(sel).size or idx.size == 0:
        raise ValueError(f"covariance must be (N², N²) for the mask of {np.asarray(sel).size} pixels and the mask must "
                         f"select a pixel; got {cov.shape}")
    sub = cov[np.ix_(idx, idx)]
    d = np.sqrt(np.diag(sub))
    rho2 = (sub / np.outer(d, d)) ** 2
    return float(1.0 + (rho2.sum() - idx.size) / idx.size)


# ------------------------------------------------------------------------------------------- run
def run_benchmark(config: ConditionalCoverageConfig, progress: bool = True) -> dict[str, Any]:
    """The protocol of the module docstring; a JSON-serialisable dict."""
    config.validate()
    from benchmarks.halo_posterior import cosmos_patch
    from core import pipeline
    from core.analysis.baselines import DENSE_MAX_NPIX, constrained_realisations, gaussian_posterior_dense
    from core.data.observation import NoiseModel, Observation
    from core.physics.fields import gaussian_field

    start = time.perf_counter()
    setup = cosmos_patch(config.scale, config.npix)
    geometry, mask = setup.geometry, setup.mask
    sel = mask > 0
    power = np.asarray(pipeline.theory_power_map(geometry), np.float64)
    prior_var = float(power.mean())  # ξ(0): the prior's pixel variance
    truths = np.asarray(gaussian_field(power, config.num_maps, [config.seed, 0]), np.float64)
    noise = NoiseModel(setup.noise_std)
    per_map: list[dict[str, float]] = []
    sample_var = np.zeros(geometry.shape)
    likelihood = None
    for i in range(config.num_maps):
        truth = truths[i]
        obs = Observation.simulated(geometry, truth, noise, mask, seed=[config.seed + 1, i])
        problem = pipeline.build_problem(obs.shear, obs.noise_std, mask, geometry, prior="gaussian", power_map=power,
                                         truth=truth)
        likelihood = problem.likelihood
        samples = constrained_realisations(problem.likelihood, power, config.num_chains,
                                           seed=[config.seed + 2, i]).numpy().astype(np.float64)
        if config.spread_scale != 1.0:
            centre = samples.mean(axis=0)
            samples = centre + config.spread_scale * (samples - centre)
        sample_var += samples.var(axis=0, ddof=1) / config.num_maps
        metrics = map_metrics(samples, truth, sel, np.asarray(problem.wiener, np.float64))
        metrics["truth_std_in_mask"] = float(truth[sel].std())
        per_map.append(metrics)
        if progress:
            logger.info("map %d/%d: cov95 %.3f top5 %.3f top1 %.3f (%.0f s)", i + 1, config.num_maps,
                        metrics["coverage_95"], metrics["coverage_95_top5pct"], metrics["coverage_95_top1pct"],
                        time.perf_counter() - start)
    explained = 1.0 - sample_var / prior_var  # r per pixel (the posterior covariance is the same for every map)
    ends = {q: {"C": interval_quantiles(config.num_chains, q, config.prediction_trials),
                "inf": interval_quantiles(None, q, 1)} for q in COVERAGE_LEVELS}
    predicted: list[dict[str, float]] = []
    for i in range(config.num_maps):
        truth, row = truths[i], {}
        for name in TRUTH_SELECTIONS:
            picked = selection(truth, sel, SELECTIONS[name][1])
            u, r = truth[picked] / np.sqrt(prior_var), explained[picked]
            for q in COVERAGE_LEVELS:
                for kind, (lo, hi) in ends[q].items():
                    suffix = "" if kind == "C" else "_infinite_samples"
                    row[f"coverage_{int(round(q * 100))}_{name}{suffix}"] = float(predicted_coverage(u, r, lo, hi).mean())
        predicted.append(row)
    expected = expected_coverages(config.num_chains)
    methods = aggregate(per_map)
    check = {}
    for key, ideal in expected.items():
        m = methods[key]
        check[key] = {"measured": m, "ideal": ideal, "difference_in_se": (m["mean"] - ideal) / m["se"]
                      if np.isfinite(m["se"]) and m["se"] > 0 else float("nan")}
    design = None
    if config.npix <= DENSE_MAX_NPIX and likelihood is not None:
        _, cov = gaussian_posterior_dense(likelihood, power)  # the covariance does not depend on the data
        d = coverage_design_effect(cov, sel)
        n = int(sel.sum())
        design = {"design_effect": d, "num_pixels_per_map": n,
                  "bound_se": {k: float(np.sqrt(d * p * (1 - p) / (n * config.num_maps))) for k, p in expected.items()}}
    return {
        "config": dataclasses.asdict(config),
        "patch": {"layout": setup.layout, "cosmos_grid_npix": setup.cosmos_npix, "npix": geometry.npix,
                  "pixel_size_arcmin": geometry.pixel_size_arcmin, "observed_fraction": float(sel.mean()),
                  "num_observed_pixels": int(sel.sum()),
                  "noise_std_median": float(np.median(setup.noise_std[:, sel]))},
        "truth": {"kind": "gaussian_field (the prior)", "seed": [config.seed, 0], "prior_pixel_std": float(np.sqrt(prior_var)),
                  "pixel_std": float(truths.std())},
        "posterior": {"std_mean_in_mask": float(np.sqrt(sample_var[sel]).mean()),
                      "explained_fraction_mean_in_mask": float(explained[sel].mean()),
                      "explained_fraction_quartiles_in_mask": [float(v) for v in np.quantile(explained[sel], [0.25, 0.5, 0.75])]},
        "expected_coverage_with_num_chains": expected,
        "calibration_check": check,
        "design_effect_bound": design,
        "metrics": methods,
        "predicted": aggregate(predicted),
        "per_map": per_map,
        "predicted_per_map": predicted,
        "load_average_end": list(os.getloadavg()),
        "total_seconds": round(time.perf_counter() - start, 1),
    }


# ------------------------------------------------------------------------------------------- report
_ROWS = (("all observed pixels", "", None), ("top 5 % of the truth", "_top5pct", "top5pct"),
         ("top 1 % of the truth", "_top1pct", "top1pct"),
         ("top 5 % of the posterior mean (control)", "_top5pct_by_mean", None),
         ("top 1 % of the posterior mean (control)", "_top1pct_by_mean", None))


def markdown_table(result: Mapping[str, Any]) -> str:
    """The markdown report of :func:`run_benchmark`."""
    cfg, p, t = result["config"], result["patch"], result["truth"]
    m, pred, exp = result["metrics"], result["predicted"], result["expected_coverage_with_num_chains"]
    lines = [
        f"Conditional coverage of the exact Gaussian posterior on {cfg['num_maps']} Gaussian truths drawn from the "
        f"prior (seed {t['seed']}), COSMOS {p['layout']} layout {p['npix']}² at {p['pixel_size_arcmin']:.3g}′ "
        f"({p['observed_fraction']:.0%} observed, median σ_n = {p['noise_std_median']:.3f}; prior pixel std "
        f"{t['prior_pixel_std']:.4f}, posterior std {result['posterior']['std_mean_in_mask']:.4f}, explained "
        f"fraction r = {result['posterior']['explained_fraction_mean_in_mask']:.2f} on average), {cfg['num_chains']} "
        "samples per map. Mean ± standard error over maps.",
        "",
        "| pixels | per map | cov 68 | cov 95 | predicted 68 | predicted 95 | predicted 68, C→∞ | predicted 95, C→∞ |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, suffix, name in _ROWS:
        count = f"{m['num_pixels' + suffix]['mean']:.0f}" if suffix else str(p["num_observed_pixels"])
        if name:
            cells = [fmt(pred[f"coverage_68_{name}"]), fmt(pred[f"coverage_95_{name}"]),
                     fmt(pred[f"coverage_68_{name}_infinite_samples"]), fmt(pred[f"coverage_95_{name}_infinite_samples"])]
        else:
            ideal = [f"{exp['coverage_68']:.3f} (ideal)", f"{exp['coverage_95']:.3f} (ideal)", "0.680", "0.950"]
            cells = ideal
        lines.append(f"| {label} | {count} | {fmt(m['coverage_68' + suffix])} | {fmt(m['coverage_95' + suffix])} | "
                     + " | ".join(cells) + " |")
    chk = result["calibration_check"]
    lines += [
        "",
        f"Built-in check: the overall coverage is {chk['coverage_68']['difference_in_se']:+.1f} (68 %) and "
        f"{chk['coverage_95']['difference_in_se']:+.1f} (95 %) standard errors from the ideal "
        f"`expected_coverage({cfg['num_chains']}, q)`. Top x %: pixels whose true κ (or, control, posterior mean) is "
        "above its (100 − x)th percentile in the mask. Predicted: the pixel-marginal shrinkage formula of "
        "`benchmarks/conditional_coverage.py` with the pooled posterior variance and the selected truths. The "
        "truth-selected values are the ideal of the conditional metric for a Gaussian truth at this noise (a "
        "halo-model truth may have a different ideal).",
        f"Run time {result['total_seconds']:.0f} s (load average at the end {result['load_average_end'][0]:.1f}).",
    ]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    d = ConditionalCoverageConfig()
    p = argparse.ArgumentParser(prog="python -m benchmarks.conditional_coverage", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--maps", type=int, default=d.num_maps, help="Gaussian truth maps")
    p.add_argument("--chains", type=int, default=d.num_chains, help="exact posterior samples per map")
    p.add_argument("--seed", type=int, default=d.seed, help="seed word of truths, noise and samples")
    p.add_argument("--npix", type=int, default=d.npix, help="map side (the COSMOS footprint resampled to it)")
    p.add_argument("--output-dir", type=Path, default=RESULTS_DIR, help="where to write the JSON and markdown")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    config = ConditionalCoverageConfig(npix=args.npix, num_maps=args.maps, num_chains=args.chains, seed=args.seed)
    result = run_or_report("conditional_coverage", lambda: run_benchmark(config))
    if result is None:
        return 2
    result["command"] = "python -m benchmarks.conditional_coverage " + " ".join(sys.argv[1:] if argv is None else argv)
    table = markdown_table(result)
    write_report(args.output_dir, STEM, result, table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
