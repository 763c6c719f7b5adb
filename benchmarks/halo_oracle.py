r"""What knowing the haloes is worth: oracle estimators on the held-out halo-model mocks (issue #12).

Issue #12 asks the hybrid posterior mean for a Pearson r at least 0.05 above the Wiener filter's on the halo-model
mocks of :mod:`benchmarks.halo_posterior`. This script measures how much any prior could gain there by giving an
estimator the answer to the prior's hardest question: where the haloes are and how heavy they are.

A mock is ``κ = (H − H̄) + G`` (:mod:`core.physics.halos`): ``H`` the painted haloes of a Poisson catalogue, ``H̄``
their expected mean (the mass sheet), ``G`` a Gaussian field of power ``P_G`` (the simulator's
``large_scale_power``). Split the catalogue at a mass ``M_c``: ``H = H_{≥M_c} + H_{<M_c}``. The **oracle at M_c**
is told ``H_{≥M_c}`` exactly and treats the rest ``R = κ − (H_{≥M_c} − μ_c)`` as Gaussian of power
``P_R = P_G + P_{<M_c}``:

.. math::  \hat κ_{M_c} = (H_{≥M_c} − μ_c) + W_{P_R}\bigl(γ − M\,P (H_{≥M_c} − μ_c)\bigr),

``W_{P_R}`` the Wiener filter of prior power ``P_R`` on the mock's own mask and per-pixel noise
(:func:`core.analysis.baselines.wiener_filter` with the shear replaced), ``μ_c`` the mean of ``H_{≥M_c}`` and
``P_{<M_c}`` the ring-averaged power of ``H_{<M_c}``, both measured on ``num_power_maps`` other simulated maps.

* At ``M_c`` = the simulator's ``mass_min`` (every halo known) ``R = G`` is exactly Gaussian with the known power
  ``P_G`` and ``μ_c = H̄`` exactly, so ``\hat κ`` is the exact posterior mean given ``(γ, H)``: the MMSE of any
  estimator that sees only ``γ`` is at least its MSE — a rigorous bound (loose: it knows thousands of haloes per map).
* At larger ``M_c`` the rest is not Gaussian (its small haloes), so ``\hat κ_{M_c}`` is not the Bayes estimator
  given ``(γ, H_{≥M_c})`` and not a bound; its gain is the part that knowing the haloes above ``M_c`` brings with a
  Gaussian treatment of the rest. It says which haloes a prior would have to find, and how precisely.

The same truths, mask, noise and observation seeds as :mod:`benchmarks.halo_posterior` (its Wiener-filter RMSE is
reproduced), so the hybrid's measured gains there line up with these rows. The direct-denoising rows (``κ + σn``, no
mask, no lensing, σ the patch's median pixel noise) are the same estimators on the problem of
``benchmarks/compare_weights.py``.

Run ``python -m benchmarks.halo_oracle`` (about a minute); writes ``benchmarks/results/halo_oracle.{json,md}``.
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
from benchmarks.halo_posterior import HELDOUT_SEED, SCALES, check_scales, cosmos_patch, heldout_truths

logger = logging.getLogger("benchmarks.halo_oracle")

RESULTS_DIR = Path(__file__).resolve().parent / "results"
#: the mass cuts (M⊙) of the default run; the simulator's own mass_min (every halo known) is always added
DEFAULT_CUTS: tuple[float, ...] = (10**12.5, 1e13, 10**13.5, 1e14, 10**14.5, 1e15)
#: seed of the maps the rest power and the sub-catalogue means are measured on (not the truths' seed)
POWER_SEED = 7310


@dataclass(frozen=True)
class OracleConfig:
    """Settings of one run (see the module docstring)."""

    scales: tuple[str, ...] = ("0.87", "0.29")
    npix: int = 64
    num_maps: int = 8
    cuts: tuple[float, ...] = DEFAULT_CUTS
    num_power_maps: int = 256
    seed: int = HELDOUT_SEED

    def validate(self) -> None:
        check_scales(self.scales)
        for name in ("num_maps", "num_power_maps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                raise ValueError(f"{name} must be an integer ≥ 2, got {value!r}")
        if self.npix < 16 or self.npix % 2:
            raise ValueError(f"npix must be an even integer ≥ 16, got {self.npix!r}")
        bad = [c for c in self.cuts if not (np.isfinite(c) and c > 0)]
        if bad:
            raise ValueError(f"mass cuts must be positive and finite (M_sun), got {bad!r}")


def ring_average(power: np.ndarray) -> np.ndarray:
    """A 2-D power map averaged over rings of equal integer ``|k|`` (in units of the fundamental), isotropic."""
    n = power.shape[0]
    k = np.fft.fftfreq(n) * n
    ring = np.rint(np.hypot(k[:, None], k[None, :])).astype(int)
    sums = np.bincount(ring.ravel(), weights=power.ravel())
    counts = np.bincount(ring.ravel())
    return (sums / np.maximum(counts, 1))[ring]


def light_halo_statistics(simulator: Any, cuts: Sequence[float], num: int, seed: int) -> dict[float, dict[str, Any]]:
    """Per cut: the mean ``μ_c`` of ``H_{≥M_c}`` and the ring-averaged power of ``H_{<M_c}`` over ``num`` maps."""
    _, cats = simulator.sample_maps(num, [int(seed), 0], with_catalogues=True)
    npix2 = simulator.geometry.num_pixels
    out: dict[float, dict[str, Any]] = {c: {"mean": 0.0, "power": np.zeros(simulator.geometry.shape)} for c in cuts}
    for cat in cats:
        full = simulator.halo_map(cat)
        for c in cuts:
            heavy = simulator.halo_map(cat.select(c))
            light = full - heavy
            out[c]["mean"] += heavy.mean() / num
            out[c]["power"] += np.abs(np.fft.fft2(light - light.mean())) ** 2 / npix2 / num
    for c in cuts:
        out[c]["power"] = ring_average(out[c]["power"])
        out[c]["power"][0, 0] = 0.0
    return out


def direct_wiener(x: np.ndarray, power: np.ndarray, noise_var: float) -> np.ndarray:
    """Wiener filter of ``x = s + n`` (white noise of variance ``noise_var``, periodic, no mask)."""
    return np.real(np.fft.ifft2(np.fft.fft2(x) * power / (power + noise_var)))


def run_scale(config: OracleConfig, scale: str) -> dict[str, Any]:
    from core import pipeline
    from core.analysis.baselines import wiener_filter
    from core.data.observation import NoiseModel, Observation
    from core.physics.cosmology import SourceRedshifts
    from core.physics.halos import HaloModelConfig, halo_model_simulator
    from core.physics.lensing import LensingOperator

    start = time.perf_counter()
    setup = cosmos_patch(scale, config.npix)
    geometry, mask = setup.geometry, setup.mask
    sel = mask > 0
    power = pipeline.theory_power_map(geometry)
    truths, catalogues, description = heldout_truths(setup, config.num_maps, config.seed)
    simulator = halo_model_simulator(geometry, HaloModelConfig(sources=SourceRedshifts.single_plane(1.0)))
    all_cut = float(simulator.config.mass_min)
    cuts = [all_cut] + sorted(c for c in config.cuts if c > all_cut)
    stats = light_halo_statistics(simulator, cuts[1:], config.num_power_maps, POWER_SEED + SCALES[scale][1])
    stats[all_cut] = {"mean": simulator.expected_mean, "power": np.zeros(geometry.shape)}
    rest_power = {c: simulator.large_scale_power + stats[c]["power"] for c in cuts}
    lensing = LensingOperator(geometry)
    noise = NoiseModel(setup.noise_std)
    sigma_direct = float(np.median(setup.noise_std[:, sel]))
    rng = np.random.default_rng([config.seed, 99, SCALES[scale][1]])

    rows: dict[str, list[dict[str, float]]] = {"lensing Wiener": [], "direct Wiener": []}
    for c in cuts:
        rows[f"lensing {c:.3g}"], rows[f"direct {c:.3g}"] = [], []
    haloes_known: dict[float, list[int]] = {c: [] for c in cuts}
    for i in range(config.num_maps):
        truth = truths[i]
        obs = Observation.simulated(geometry, truth, noise, mask, seed=[config.seed + 1, 1000 * SCALES[scale][1] + i])
        wiener = wiener_filter(obs, power).kappa.numpy().astype(np.float64)
        rows["lensing Wiener"].append(point_metrics(wiener, truth, sel))
        x = truth + sigma_direct * rng.standard_normal(truth.shape)
        rows["direct Wiener"].append(point_metrics(direct_wiener(x, power, sigma_direct**2), truth, np.ones_like(sel)))
        for c in cuts:
            heavy_cat = catalogues[i].select(c)
            haloes_known[c].append(len(heavy_cat))
            known = simulator.halo_map(heavy_cat) - stats[c]["mean"]
            rest_shear = obs.shear - mask * lensing.forward(known).numpy()
            est = known + wiener_filter(obs, rest_power[c], shear=rest_shear).kappa.numpy().astype(np.float64)
            rows[f"lensing {c:.3g}"].append(point_metrics(est, truth, sel))
            direct = known + direct_wiener(x - known, rest_power[c], sigma_direct**2)
            rows[f"direct {c:.3g}"].append(point_metrics(direct, truth, np.ones_like(sel)))
        logger.info("%s′ map %d: Wiener r %.3f, every-halo oracle r %.3f", scale, i, rows["lensing Wiener"][-1]["pearson"],
                    rows[f"lensing {all_cut:.3g}"][-1]["pearson"])

    def summary(problem: str, c: float) -> dict[str, Any]:
        est, ref = rows[f"{problem} {c:.3g}"], rows[f"{problem} Wiener"]
        return {
            "rmse": mean_se([m["rmse"] for m in est]),
            "pearson": mean_se([m["pearson"] for m in est]),
            "d_rmse_relative": paired_difference([m["rmse"] / w["rmse"] - 1 for m, w in zip(est, ref)],
                                                 [0.0] * len(est)),
            "d_pearson": paired_difference([m["pearson"] for m in est], [w["pearson"] for w in ref]),
        }

    total_var = float(simulator.expected_power.mean())
    result = {
        "npix": config.npix, "layout": setup.layout, "observed_fraction": float(sel.mean()),
        "median_pixel_noise": sigma_direct, "simulator": description,
        "wiener": {p: {"rmse": mean_se([m["rmse"] for m in rows[f"{p} Wiener"]]),
                       "pearson": mean_se([m["pearson"] for m in rows[f"{p} Wiener"]])} for p in ("lensing", "direct")},
        "oracles": [{
            "mass_cut": c, "every_halo": c == all_cut, "exact_bound": c == all_cut,
            "haloes_known_per_map": float(np.mean(haloes_known[c])),
            "rest_variance_fraction": float(rest_power[c].mean() / total_var),
            "lensing": summary("lensing", c), "direct": summary("direct", c),
        } for c in cuts],
        "per_map": {k: v for k, v in rows.items()},
        "seconds": time.perf_counter() - start,
    }
    return result


def run(config: OracleConfig) -> dict[str, Any]:
    config.validate()
    return {"config": {**asdict(config), "command": "python -m benchmarks.halo_oracle " + " ".join(sys.argv[1:])},
            "scales": {s: run_scale(config, s) for s in config.scales}}


def markdown(result: dict[str, Any]) -> str:
    cfg = result["config"]
    lines = ["# What knowing the haloes is worth: oracle estimators on the halo-model mocks (issue #12)", "",
             f"`{cfg['command'].strip()}`. {cfg['num_maps']} held-out truths per scale (the maps, mask, noise and "
             f"observation seeds of `benchmarks.halo_posterior`), rest power and sub-catalogue means from "
             f"{cfg['num_power_maps']} other maps. Mean ± s.e. over maps; differences paired with the Wiener filter.",
             "The every-halo row is the exact posterior mean given the shear and every halo (a rigorous bound on any "
             "prior); the others treat the haloes below the cut as Gaussian (not bounds: see the module docstring).",
             ""]
    for scale, res in result["scales"].items():
        w = res["wiener"]
        lines += [f"## {scale}′ ({res['npix']}², {res['layout']}, {100 * res['observed_fraction']:.0f} % observed, "
                  f"median pixel noise {res['median_pixel_noise']:.3f})", "",
                  f"Wiener filter: lensing RMSE {fmt(w['lensing']['rmse'], 4)}, r {fmt(w['lensing']['pearson'])}; "
                  f"direct denoising RMSE {fmt(w['direct']['rmse'], 4)}, r {fmt(w['direct']['pearson'])}.", "",
                  "| oracle told every halo ≥ | haloes per map | rest share of the variance | lensing Δ RMSE | lensing Δ r "
                  "| direct Δ RMSE | direct Δ r |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for o in res["oracles"]:
            name = f"{o['mass_cut']:.2g} M⊙" + (" (every halo: exact bound)" if o["every_halo"] else "")
            lo, di = o["lensing"], o["direct"]
            pct = lambda e: f"{100 * e['mean']:+.1f} ± {100 * e['se']:.1f} %"  # noqa: E731
            lines.append(f"| {name} | {o['haloes_known_per_map']:.4g} | {o['rest_variance_fraction']:.2f} | "
                         f"{pct(lo['d_rmse_relative'])} | {fmt(lo['d_pearson'], 3, signed=True)} | "
                         f"{pct(di['d_rmse_relative'])} | {fmt(di['d_pearson'], 3, signed=True)} |")
        lines += ["", f"({res['seconds']:.0f} s)", ""]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.halo_oracle", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--scales", default="0.87,0.29", help="comma-separated pixel scales")
    p.add_argument("--num-maps", type=int, default=8, help="held-out truths per scale")
    p.add_argument("--cuts", default=",".join(f"{c:.4g}" for c in DEFAULT_CUTS), help="comma-separated mass cuts (M_sun)")
    p.add_argument("--num-power-maps", type=int, default=256, help="maps the rest power is measured on")
    p.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    p.add_argument("--tag", default="halo_oracle", help="stem of the output files")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")

    def go() -> int:
        try:
            cuts = tuple(float(c) for c in args.cuts.split(",") if c.strip())
        except ValueError as err:
            raise ValueError(f"--cuts must be comma-separated numbers, got {args.cuts!r}") from err
        config = OracleConfig(scales=tuple(s.strip() for s in args.scales.split(",") if s.strip()),
                              num_maps=args.num_maps, cuts=cuts, num_power_maps=args.num_power_maps)
        result = run(config)
        write_report(args.output_dir, args.tag, result, markdown(result))
        print(markdown(result))
        return 0

    code = run_or_report("python -m benchmarks.halo_oracle", go)
    return 1 if code is None else code


if __name__ == "__main__":
    sys.exit(main())
