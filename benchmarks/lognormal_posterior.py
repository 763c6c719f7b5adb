r"""The exact lognormal-prior posterior on the lognormal calibration maps: the ceiling of any prior there (issue #11).

The truths of the COSMOS-like calibration problem (``compare_samplers``' ``cosmos`` maps: COSMOS footprint,
σ_e = 0.3, n_gal = 65 arcmin⁻², 64² pixels of 0.87′) are shifted-lognormal fields
(:func:`core.physics.fields.lognormal_field`)

.. math::  κ(w) = λ\,\big(\exp(g(w) − σ_G^2/2) − 1\big),\qquad g(w) = F^{-1}\big[\sqrt{P_G}\,F w\big],\quad w ∼ N(0, I),

so their prior is known exactly, and so is the posterior in the white latent ``w``:

.. math::  \log p(w \mid γ) = −\tfrac12 \lVert w\rVert^2 + \log p(γ \mid κ(w)) + \text{const},

with the masked, inhomogeneous shear likelihood of :class:`core.inference.likelihood.ShearLikelihood`. It is sampled
here by Hamiltonian Monte Carlo with the no-U-turn rule (``tfp.mcmc.NoUTurnSampler`` inside
``tfp.mcmc.DualAveragingStepSizeAdaptation``; whitening makes the prior part an identity), many chains started near
the latent of the Wiener map. Its posterior mean is the best any prior can do on these maps (the Bayes estimator under
the true prior, in mean squared error): a learned prior of lognormal maps can at most reach it. Comparing it with the
Wiener filter says whether "the hybrid posterior mean beats the Wiener filter's RMSE by more than the error bar"
(issue #11, must-reach 3) is reachable at this noise at all.

**Kernel.** ``tfp.mcmc.NoUTurnSampler`` by default: a fixed trajectory length (``kernel="hmc"``) mixed badly here
— in the Gaussian limit its chain means scattered 2.5× more than their spread predicts (near-resonant modes of the
whitened posterior), NUTS's did not (z² 0.94–0.98 against the Wiener filter; ``tests/test_lognormal_posterior.py``).

**Monte-Carlo error.** The posterior mean is the average of all retained draws (all chains); its Monte-Carlo
variance per pixel is the variance of the independent chains' means over the number of chains, removed from the MSE
as in :func:`benchmarks.calibration.monte_carlo_corrected_rmse`. ``tfp.mcmc.effective_sample_size`` is reported. ``tfp.mcmc.potential_scale_reduction`` (split R̂) over
the chains is reported per map (median and max over observed pixels). Coverage uses the chains' final states
(independent draws, as for the other samplers).

    python -m benchmarks.lognormal_posterior --maps 16 --output benchmarks/results/lognormal_posterior.json

writes the JSON and a markdown table beside it. **Resuming.** A map costs minutes; ``--previous OLD.json`` reuses
the per-map rows of an earlier result whose settings (everything in :class:`Config` but ``num_maps``) are the same —
map ``i`` always uses seed ``seed + i``, so a reused row is what this run would compute — and samples only the maps
it lacks. A file with other settings is refused, naming the settings that differ.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from benchmarks._tables import mean_se, paired_difference, reusable_rows, run_or_report

logger = logging.getLogger("benchmarks.lognormal_posterior")


@dataclass
class Config:
    num_maps: int = 8
    num_chains: int = 32
    num_burnin: int = 300
    num_results: int = 100
    thin: int = 1
    num_leapfrog_steps: int = 12
    target_accept: float = 0.75
    seed: int = 5
    kernel: str = "nuts"  # "nuts" (tfp.mcmc.NoUTurnSampler) or "hmc" (fixed trajectory length)
    max_tree_depth: int = 6

    def check(self) -> "Config":
        for name in ("num_maps", "num_chains", "num_burnin", "num_results", "thin", "num_leapfrog_steps",
                     "max_tree_depth"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.num_chains < 2:
            raise ValueError(f"num_chains must be at least 2 (R-hat and coverage need several), got {self.num_chains}")
        if self.kernel not in ("nuts", "hmc"):
            raise ValueError(f"kernel must be 'nuts' or 'hmc', got {self.kernel!r}")
        if not 0.0 < self.target_accept < 1.0:
            raise ValueError(f"target_accept must be in (0, 1), got {self.target_accept!r}")
        return self


class LognormalLatent:
    """The map ``w ↦ κ(w)`` of the module docstring for a power map and shift (the generator's own transform)."""

    def __init__(self, power_map: np.ndarray, shift: float | None = None) -> None:
        import tensorflow as tf

        from core.physics.fields import DEFAULT_SHIFT, lognormal_gaussian_power

        self.shift = float(DEFAULT_SHIFT if shift is None else shift)
        power_gauss = lognormal_gaussian_power(power_map, self.shift)
        self.npix = power_gauss.shape[0]
        self.variance_gauss = float(power_gauss.mean())
        half = np.sqrt(power_gauss[:, : self.npix // 2 + 1])
        self._amplitude = tf.constant(half.astype(np.float32))
        self._inverse = tf.constant(np.where(half > 0, 1.0 / np.where(half > 0, half, 1.0), 0.0).astype(np.float32))

    def _filter(self, x: Any, half: Any) -> Any:
        import tensorflow as tf

        from core.physics.geometry import to_complex64

        return tf.signal.irfft2d(tf.signal.rfft2d(x) * to_complex64(half), fft_length=[self.npix, self.npix])

    def kappa(self, w: Any) -> Any:
        import tensorflow as tf

        return self.shift * tf.math.expm1(self._filter(w, self._amplitude) - 0.5 * self.variance_gauss)

    def latent(self, kappa: np.ndarray, floor: float = 0.9) -> Any:
        """A latent whose κ is ``kappa`` (values below ``−floor·λ`` raised to it: κ > −λ always)."""
        import tensorflow as tf

        k = np.maximum(np.asarray(kappa, np.float64), -floor * self.shift)
        g = np.log1p(k / self.shift) + 0.5 * self.variance_gauss
        return self._filter(tf.constant(g.astype(np.float32)), self._inverse)


def sample_posterior(likelihood: Any, latent: LognormalLatent, init_kappa: np.ndarray, config: Config,
                     seed: int) -> dict[str, Any]:
    """MCMC draws of κ from the exact lognormal-prior posterior: ``{"draws": (R, C, N, N), "final": (C, N, N),
    "step_size", "accept_rate"}`` (draws after burn-in, thinned)."""
    import tensorflow as tf
    import tensorflow_probability as tfp

    def target_log_prob(w: tf.Tensor) -> tf.Tensor:
        return -0.5 * tf.reduce_sum(tf.square(w), axis=[-2, -1]) + likelihood.log_prob(latent.kappa(w))

    w0 = latent.latent(init_kappa)
    jitter = tf.random.stateless_normal((config.num_chains, latent.npix, latent.npix), seed=[seed, 1])
    start = w0[None] + 0.1 * jitter
    if config.kernel == "nuts":
        inner = tfp.mcmc.NoUTurnSampler(target_log_prob, step_size=0.05, max_tree_depth=config.max_tree_depth)
    else:
        inner = tfp.mcmc.HamiltonianMonteCarlo(target_log_prob, step_size=0.05,
                                               num_leapfrog_steps=config.num_leapfrog_steps)
    kernel = tfp.mcmc.DualAveragingStepSizeAdaptation(inner, num_adaptation_steps=int(0.8 * config.num_burnin),
                                                      target_accept_prob=config.target_accept)

    @tf.function
    def chain(state: tf.Tensor) -> Any:
        return tfp.mcmc.sample_chain(
            num_results=config.num_results, current_state=state, kernel=kernel, num_burnin_steps=config.num_burnin,
            num_steps_between_results=config.thin - 1, seed=tf.constant([seed, 2], tf.int32),
            trace_fn=lambda _, pkr: (tf.exp(tf.minimum(pkr.inner_results.log_accept_ratio, 0.0)), pkr.new_step_size))

    draws, (accepted, step) = chain(start)
    kappa = tf.map_fn(latent.kappa, draws)
    return {"draws": kappa.numpy().astype(np.float64), "accept_rate": float(tf.reduce_mean(accepted)),
            "step_size": float(step[-1])}


def map_metrics(draws: np.ndarray, truth: np.ndarray, wiener: np.ndarray, sel: np.ndarray) -> dict[str, float]:
    """Metrics of one map from the draws ``(R, C, N, N)``: see the module docstring."""
    import tensorflow_probability as tfp

    from benchmarks.calibration import point_metrics, sample_metrics, monte_carlo_corrected_rmse

    flat = draws.reshape(-1, *draws.shape[2:])
    ess = np.asarray(tfp.mcmc.effective_sample_size(draws.astype(np.float32), cross_chain_dims=1))
    ess = np.clip(ess, 1.0, flat.shape[0])
    rhat = np.asarray(tfp.mcmc.potential_scale_reduction(draws.astype(np.float32), independent_chain_ndims=1))
    # Monte-Carlo variance of the grand mean from the spread of the independent chains' means (batch means)
    chain_means = draws.mean(axis=0)
    mc_var = chain_means.var(axis=0, ddof=1) / chain_means.shape[0]
    posterior = point_metrics(flat.mean(axis=0), truth, sel)
    reference = point_metrics(wiener, truth, sel)
    finals = sample_metrics(draws[-1], truth, sel)
    return {
        "rmse_lognormal_mean": posterior["rmse"],
        "rmse_lognormal_mean_mc_corrected": monte_carlo_corrected_rmse(flat, truth, sel, mean_variance=mc_var),
        "rmse_wiener": reference["rmse"],
        "pearson_lognormal_mean": posterior["pearson"], "pearson_wiener": reference["pearson"],
        "mean_posterior_std": float(flat.std(axis=0, ddof=1)[sel].mean()),
        "ess_median": float(np.median(ess[sel])), "ess_min": float(ess[sel].min()),
        "rhat_median": float(np.median(rhat[sel])), "rhat_max": float(rhat[sel].max()),
        "coverage_68": finals["coverage_68"], "coverage_95": finals["coverage_95"],
        "coverage_95_top5pct": finals["coverage_95_top5pct"],
        "coverage_95_mean_top5pct": finals["coverage_95_mean_top5pct"],
    }


def previous_rows(previous: dict[str, Any], config: Config) -> dict[int, dict[str, Any]]:
    """The per-map rows of an earlier result ``previous`` (a JSON written by this script) keyed by map index, if its
    settings match ``config`` in everything but ``num_maps``; a ``ValueError`` naming the differing settings if not.
    Rows of files written before rows carried their ``map`` index are in map order."""
    if not isinstance(previous, dict) or not isinstance(previous.get("per_map"), list):
        raise ValueError("previous result: not a lognormal_posterior JSON (no 'per_map' list)")
    new = asdict(config)
    return reusable_rows(previous["per_map"], {**asdict(Config()), **(previous.get("config") or {})}, new,
                         sorted(k for k in new if k != "num_maps"))


def run_benchmark(config: Config, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    from benchmarks import compare_samplers as cs

    config.check()
    reuse = previous_rows(previous, config) if previous is not None else {}
    map_config = cs.Config()
    per_map = []
    start = time.perf_counter()
    for i in range(config.num_maps):
        if i in reuse:
            per_map.append({**reuse[i], "map": i})
            logger.info("lognormal posterior map %d/%d: reused from the previous result", i + 1, config.num_maps)
            continue
        base = cs._problems(map_config, "cosmos", i, None)["gaussian"]
        latent = LognormalLatent(base.power_map)
        t0 = time.perf_counter()
        out = sample_posterior(base.likelihood, latent, base.wiener, config, seed=config.seed + i)
        row = map_metrics(out["draws"], base.truth.astype(np.float64), base.wiener.astype(np.float64), base.mask > 0)
        row.update(accept_rate=out["accept_rate"], step_size=out["step_size"], seconds=time.perf_counter() - t0)
        per_map.append({"map": i, **row})
        logger.info("lognormal posterior map %d/%d: %s", i + 1, config.num_maps, row)
    column = {k: [m[k] for m in per_map] for k in per_map[0] if k != "map"}
    return {
        "config": asdict(config), "problem": {"maps": "compare_samplers cosmos", "base_seed": map_config.base_seed,
                                              **cs.PROBLEMS["cosmos"], "npix": map_config.npix},
        "per_map": per_map,
        "summary": {k: mean_se(v) for k, v in column.items()},
        "paired_difference": paired_difference(column["rmse_lognormal_mean"], column["rmse_wiener"]),
        "paired_difference_mc_corrected": paired_difference(column["rmse_lognormal_mean_mc_corrected"],
                                                            column["rmse_wiener"]),
        "paired_difference_pearson": paired_difference(column["pearson_lognormal_mean"], column["pearson_wiener"]),
        "total_seconds": round(time.perf_counter() - start, 1),
        "maps_reused": sorted(i for i in reuse if i < config.num_maps),
    }


def markdown(result: dict[str, Any]) -> str:
    c, s = result["config"], result["summary"]
    n = len(result["per_map"])
    d, dc, dr = (result[k] for k in ("paired_difference", "paired_difference_mc_corrected", "paired_difference_pearson"))
    draws = c["num_chains"] * c["num_results"]
    from benchmarks.calibration import expected_coverage

    ideal = expected_coverage(c["num_chains"], 0.95)
    kernel = (f"NUTS, tree depth ≤ {c.get('max_tree_depth', 6)}" if c.get("kernel", "nuts") == "nuts"
              else f"HMC, {c['num_leapfrog_steps']} leapfrog steps")
    return "\n".join([
        f"Exact lognormal-prior posterior ({kernel} in the white latent, {c['num_chains']} chains × "
        f"{c['num_results']} draws after {c['num_burnin']} burn-in, thinned by {c['thin']}) on "
        f"{n} lognormal COSMOS-like maps (compare_samplers `cosmos`, base seed {result['problem']['base_seed']}); "
        "mean ± s.e. over maps, differences paired.", "",
        "| quantity | value |", "| --- | --- |",
        f"| RMSE, Wiener filter | {s['rmse_wiener']['mean']:.5f} ± {s['rmse_wiener']['se']:.5f} |",
        f"| RMSE, lognormal posterior mean ({draws} draws) | {s['rmse_lognormal_mean']['mean']:.5f} ± "
        f"{s['rmse_lognormal_mean']['se']:.5f} |",
        f"| Δ RMSE vs Wiener | {d['mean']:+.5f} ± {d['se']:.5f} |",
        f"| Δ RMSE vs Wiener, Monte-Carlo corrected | {dc['mean']:+.5f} ± {dc['se']:.5f} "
        f"({100 * dc['mean'] / s['rmse_wiener']['mean']:+.2f} %) |",
        f"| Δ Pearson r vs Wiener | {dr['mean']:+.4f} ± {dr['se']:.4f} |",
        f"| 95 % coverage (final states; ideal with {c['num_chains']} draws {ideal:.3f}) | "
        f"{s['coverage_95']['mean']:.3f} ± "
        f"{s['coverage_95']['se']:.3f} |",
        f"| 95 % coverage at the posterior mean's top 5 % | {s['coverage_95_mean_top5pct']['mean']:.3f} ± "
        f"{s['coverage_95_mean_top5pct']['se']:.3f} |",
        f"| ESS per pixel, median (min) | {s['ess_median']['mean']:.0f} ({min(m['ess_min'] for m in result['per_map']):.0f}) |",
        f"| split R̂, median (max over maps) | {s['rhat_median']['mean']:.3f} "
        f"({max(m['rhat_max'] for m in result['per_map']):.3f}) |",
        f"| acceptance rate | {s['accept_rate']['mean']:.2f} |",
        f"| seconds per map | {s['seconds']['mean']:.0f} |", ""])


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.lognormal_posterior", description=__doc__.split("\n\n")[0])
    defaults = Config()
    p.add_argument("--maps", type=int, default=defaults.num_maps)
    p.add_argument("--chains", type=int, default=defaults.num_chains)
    p.add_argument("--burnin", type=int, default=defaults.num_burnin)
    p.add_argument("--results", type=int, default=defaults.num_results)
    p.add_argument("--thin", type=int, default=defaults.thin)
    p.add_argument("--leapfrog", type=int, default=defaults.num_leapfrog_steps,
                   help="leapfrog steps per transition of --kernel hmc")
    p.add_argument("--kernel", choices=("nuts", "hmc"), default=defaults.kernel)
    p.add_argument("--max-tree-depth", type=int, default=defaults.max_tree_depth, help="of --kernel nuts")
    p.add_argument("--target-accept", type=float, default=defaults.target_accept)
    p.add_argument("--seed", type=int, default=defaults.seed, help="map i uses seed + i")
    p.add_argument("--previous", type=Path, default=None,
                   help="an earlier result JSON with the same settings: its maps are reused, only the others sampled")
    p.add_argument("--output", type=Path, default=None, help="write the JSON here (and the markdown beside it)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    def work() -> int:
        config = Config(num_maps=args.maps, num_chains=args.chains, num_burnin=args.burnin, num_results=args.results,
                        thin=args.thin, num_leapfrog_steps=args.leapfrog, kernel=args.kernel,
                        max_tree_depth=args.max_tree_depth, target_accept=args.target_accept, seed=args.seed).check()
        previous = None
        if args.previous is not None:
            try:
                previous = json.loads(args.previous.read_text())
            except (OSError, ValueError) as err:
                raise ValueError(f"--previous {args.previous}: cannot read it as JSON ({err})") from None
        result = run_benchmark(config, previous)
        text = markdown(result)
        if args.output is not None:
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(json.dumps(result, indent=1))
            args.output.with_suffix(".md").write_text(text)
        sys.stdout.write(text + "\n")
        return 0

    status = run_or_report(p.prog, work)
    return 2 if status is None else status


if __name__ == "__main__":
    sys.exit(main())
