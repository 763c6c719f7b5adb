r"""COSMOS posterior mass map: sample κ given the real HST/ACS shear, compare with KS and Wiener, test X-ray groups.

Pipeline (all from :mod:`core`):

1. ``core.pipeline.cosmos_problem(npix)`` (``load_cosmos``) — the shipped COSMOS shear binned to ``npix`` pixels over 104.4′ (120 → 0.87′ pixels, the
   CPU default; ``--native`` = 360 → 0.29′, for a GPU), with mask, per-pixel noise ``σ_e/√n`` and WCS.
2. Posterior samples under the Gaussian prior (Planck18, z_s = 1) and, when shipped weights exist for the pixel
   scale, the hybrid prior — one :func:`core.pipeline.cosmos_problem` per prior run by :func:`core.pipeline.run`
   (``--sampler``, any registered name), ``--chains`` samples.
3. Baselines: Kaiser–Squires (smoothed, FWHM ``--ks-fwhm``) and the Wiener filter.
4. X-ray groups (Finoguenov et al. 2007) placed on the grid with the map WCS (RA grows with the column index:
   mirrored sky; the figure flips the RA axis back to the usual east-left view); for the groups inside the mask:
   the fraction of samples with a peak of ``sample/std`` above ``--threshold`` within ``--radius`` arcmin, and the
   posterior significance ``mean/std`` at the groups vs at ``--num-random`` random positions in the mask
   (:mod:`core.analysis.cosmos_groups`: means, one-sided Mann–Whitney and KS p-values).

Writes ``cosmos_<prior>.fits`` (MEAN, STD, SIGNIFICANCE, KS, WIENER, MASK, SAMPLES with WCS and provenance),
``cosmos_posterior.png`` and ``cosmos_summary.json`` into ``--out``, and prints the JSON summary.

    python scripts/cosmos_map.py --out /tmp/cosmos            # CPU: 120 px, a few minutes
    python scripts/cosmos_map.py --out /tmp/cosmos --native   # GPU: 360 px
"""
from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a source checkout without installing

from core.options import DENOISERS, sampler_names  # noqa: E402 - after the path line; TensorFlow-free

logger = logging.getLogger("cosmos_map")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="output folder (created if needed)")
    p.add_argument("--npix", type=int, default=120, help="map side in pixels (a divisor of 360)")
    p.add_argument("--native", action="store_true", help="use the native 360 x 360 grid of 0.29' pixels (GPU)")
    p.add_argument("--priors", default="gaussian,hybrid", help="comma-separated priors; hybrid needs shipped weights")
    p.add_argument("--chains", type=int, default=16, help="posterior samples (chains)")
    p.add_argument("--levels", type=int, default=60, help="annealing levels")
    p.add_argument("--steps-per-level", type=int, default=10, help="transitions per level")
    p.add_argument("--sigma-max", type=float, default=0.5, help="first annealing noise level")
    p.add_argument("--sigma-min", type=float, default=1e-3, help="last annealing noise level")
    p.add_argument("--sampler", default="hmc", choices=sampler_names(), help="posterior sampler (the registry)")
    p.add_argument("--hybrid-sampler", default=None, choices=sampler_names(),
                   help="transition kernel for the hybrid prior (default: --sampler); 'ula' needs one network "
                        "evaluation per transition instead of ~6")
    p.add_argument("--hybrid-sigma-min", type=float, default=None,
                   help="last annealing level for the hybrid prior (default: --sigma-min)")
    p.add_argument("--hybrid-levels", type=int, default=None, help="annealing levels for the hybrid prior (default: --levels)")
    p.add_argument("--hybrid-steps-per-level", type=int, default=None,
                   help="transitions per level for the hybrid prior (default: --steps-per-level)")
    p.add_argument("--hybrid-weights", default=None,
                   help="weights of the hybrid prior: a shipped model name (e.g. hybrid_halo_0.87arcmin) or a path "
                        "(default: the shipped weights for the pixel scale)")
    p.add_argument("--hybrid-sampler-option", action="append", default=[], metavar="NAME=VALUE",
                   help="an option of the hybrid prior's sampler, e.g. num_corrector_steps=0 for pc (repeatable)")
    p.add_argument("--hybrid-denoise", choices=DENOISERS, default="tweedie",
                   help="final denoising for the hybrid prior (the Gaussian prior always uses tweedie)")
    p.add_argument("--seed", type=int, default=0, help="seed of the chains and of the random positions")
    p.add_argument("--radius", type=float, default=2.0, help="peak-matching radius around a group, arcmin")
    p.add_argument("--threshold", type=float, default=2.0, help="peak threshold on sample / posterior std")
    p.add_argument("--num-random", type=int, default=2000, help="random positions in the mask for the null")
    p.add_argument("--ks-fwhm", type=float, default=2.0, help="FWHM of the KS smoothing, arcmin")
    p.add_argument("--xla", action="store_true", help="XLA-compile the sampling chunks (GPU)")
    p.add_argument("--docs-png", type=Path, default=None, help="also save a small copy of the figure here")
    return p


def _sampler_options(sampler: str, items: Sequence[str]) -> dict[str, Any]:
    """``NAME=VALUE`` items checked against the sampler's registered options (``ValueError`` naming a bad one)."""
    from core.options import sampler_spec

    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--hybrid-sampler-option must be NAME=VALUE, got {item!r}")
        out[name.strip()] = sampler_spec(sampler).option(name.strip()).validate(value.strip())
    return out


def _sample(problem: Any, sampler: str, schedule: Any, denoise: str, args: argparse.Namespace,
            options: dict[str, Any] | None = None) -> tuple[np.ndarray, float, float]:
    """Final chains, mean acceptance and seconds of one :func:`core.pipeline.run` on ``problem``."""
    from tqdm.auto import tqdm

    from core import pipeline

    start = time.perf_counter()
    last = None
    with tqdm(total=schedule.total_steps, unit="step", desc=type(problem.prior).__name__, file=sys.stderr) as bar:
        for snap in pipeline.run(problem, sampler=sampler, schedule=schedule, num_chains=args.chains, seed=args.seed,
                                 final_denoise=denoise, jit_compile=args.xla, **(options or {})):
            bar.set_postfix(sigma=f"{snap.sigma:.3g}", acc=f"{snap.acceptance:.2f}", refresh=False)
            bar.update(snap.step - bar.n)
            last = snap
    assert last is not None and last.done
    return last.chains.astype(np.float32), float(np.mean(last.traces["acceptance"])), time.perf_counter() - start


def _smoothed_ks(problem: Any, fwhm_arcmin: float) -> np.ndarray:
    """The Kaiser–Squires map of the problem's shear with Gaussian smoothing of FWHM ``fwhm_arcmin``."""
    from core.analysis.baselines import kaiser_squires_map

    return kaiser_squires_map(problem.shear, problem.geometry, mask=problem.mask,
                              smoothing_fwhm_arcmin=fwhm_arcmin)[0].numpy()


def _sky_extent(wcs: Any, npix: int) -> list[float]:
    ra_lo, dec_lo = wcs.pixel_to_world_values(-0.5, -0.5)
    ra_hi, dec_hi = wcs.pixel_to_world_values(npix - 0.5, npix - 0.5)
    return [float(ra_lo), float(ra_hi), float(dec_lo), float(dec_hi)]


def make_figure(panels: list[tuple[str, np.ndarray, str]], mask: np.ndarray, extent: list[float], groups: Any,
                inside: np.ndarray, radius_arcmin: float, histograms: dict[str, tuple[np.ndarray, np.ndarray]],
                path: Path, dpi: int = 110) -> None:
    """Rows of maps (KS, Wiener, posterior mean, significance, …) with the groups circled, and the histogram of the
    significance at the groups vs at random positions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle

    ncols = 4
    nrows = int(np.ceil((len(panels) + 1) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.0 * ncols, 3.7 * nrows), constrained_layout=True)
    axes = np.atleast_2d(axes).ravel()
    kappa_maps = [m for _, m, kind in panels if kind == "kappa"]
    vmax = float(np.percentile(np.abs(np.concatenate([m[mask > 0] for m in kappa_maps])), 99.5)) if kappa_maps else 1.0
    for ax, (title, image, kind) in zip(axes, panels):
        shown = np.where(mask > 0, image, np.nan)
        if kind == "kappa":
            im = ax.imshow(shown, origin="lower", extent=extent, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        elif kind == "significance":
            im = ax.imshow(shown, origin="lower", extent=extent, cmap="magma", vmin=-1, vmax=4)
        else:
            im = ax.imshow(shown, origin="lower", extent=extent, cmap="viridis")
        ax.set_facecolor("0.85")
        ax.invert_xaxis()  # east to the left: the usual sky orientation (pixel columns grow with RA)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("RA [deg]")
        ax.set_ylabel("DEC [deg]")
        for ra, dec, ok in zip(groups["ra"], groups["dec"], inside):
            if ok:
                ax.add_patch(Circle((ra, dec), radius_arcmin / 60.0, fill=False, lw=0.7, color="k" if kind != "significance" else "c"))
        fig.colorbar(im, ax=ax, shrink=0.8)
    ax = axes[len(panels)]
    for (label, (at_groups, at_random)), colour in zip(histograms.items(), ("C0", "C1", "C2")):
        bins = np.linspace(-3, 6, 37)
        ax.hist(at_random[np.isfinite(at_random)], bins=bins, density=True, histtype="step", color=colour, ls="--",
                label=f"{label}: random")
        ax.hist(at_groups[np.isfinite(at_groups)], bins=bins, density=True, histtype="stepfilled", alpha=0.35,
                color=colour, label=f"{label}: X-ray groups")
    ax.set_xlabel("posterior significance mean/std")
    ax.set_ylabel("density")
    ax.legend(fontsize=7)
    ax.set_title("significance at groups vs random", fontsize=10)
    for extra in axes[len(panels) + 1:]:
        extra.set_visible(False)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def run(args: argparse.Namespace, argv: Sequence[str]) -> dict[str, Any]:
    import core
    from core import pipeline
    from core.analysis.cosmos_groups import (
        compare_to_random,
        group_pixel_positions,
        group_statistics,
        positions_in_mask,
        random_positions_in_mask,
        significance_at,
    )
    from core.analysis.summaries import posterior_summary
    from core.data.fits_io import read_xray_groups, write_maps_fits

    npix = 360 if args.native else args.npix
    problems: dict[str, Any] = {}
    notes: list[str] = []
    wanted = [p.strip() for p in args.priors.split(",") if p.strip()]
    for name in wanted:
        try:
            problems[name] = pipeline.cosmos_problem(npix=npix, prior=name,
                                                     weights=args.hybrid_weights if name == "hybrid" else None)
        except (ValueError, FileNotFoundError) as err:
            if name == "gaussian":
                raise
            notes.append(f"{name} prior skipped: {err}")
            logger.warning("%s prior skipped: %s", name, err)
    if not problems:
        raise ValueError(f"no usable prior among {wanted}")
    first = next(iter(problems.values()))
    geometry, mask, wcs = first.geometry, first.mask, first.wcs
    observed_fraction = float(mask.mean())
    ks = _smoothed_ks(first, args.ks_fwhm)
    wiener = first.wiener  # the posterior mean of the Gaussian model; cached, also the chains' initial centre
    groups = read_xray_groups()
    positions = group_pixel_positions(groups, wcs=wcs)
    inside = positions_in_mask(positions, mask)
    random_pos = random_positions_in_mask(mask, args.num_random, args.seed)
    summary: dict[str, Any] = {
        "npix": npix, "pixel_size_arcmin": geometry.pixel_size_arcmin, "observed_fraction": observed_fraction,
        "num_groups": len(groups), "num_groups_in_mask": int(inside.sum()), "chains": args.chains,
        "transitions": args.levels * args.steps_per_level, "radius_arcmin": args.radius,
        "threshold_snr": args.threshold, "priors": {}, "notes": notes,
        "command": shlex.join(["python", "scripts/cosmos_map.py", *argv]),
    }
    # A significance for the baselines too: each map in units of its own rms over the mask (a common, crude scale).
    for name, kmap in (("ks", ks), ("wiener", wiener)):
        scaled = kmap / np.std(kmap[mask > 0])
        summary[f"{name}_scaled_at_groups_vs_random"] = compare_to_random(significance_at(scaled, positions[inside]),
                                                                          significance_at(scaled, random_pos))
    panels: list[tuple[str, np.ndarray, str]] = [(f"Kaiser–Squires ({args.ks_fwhm:g}′ FWHM)", ks, "kappa"),
                                                 ("Wiener filter", wiener, "kappa")]
    histograms: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    args.out.mkdir(parents=True, exist_ok=True)
    for name, problem in problems.items():
        hybrid = name == "hybrid"
        sampler = (args.hybrid_sampler or args.sampler) if hybrid else args.sampler
        schedule = pipeline.make_schedule(
            "geometric", args.sigma_max,
            (args.hybrid_sigma_min or args.sigma_min) if hybrid else args.sigma_min,
            (args.hybrid_levels or args.levels) if hybrid else args.levels,
            (args.hybrid_steps_per_level or args.steps_per_level) if hybrid else args.steps_per_level,
        )
        denoise = args.hybrid_denoise if hybrid else "tweedie"
        options = _sampler_options(sampler, args.hybrid_sampler_option) if hybrid else {}
        chains, acceptance, seconds = _sample(problem, sampler, schedule, denoise, args, options)
        post = posterior_summary(chains)
        stats = group_statistics(chains, mask, positions, geometry.pixel_size_arcmin, radius_arcmin=args.radius,
                                 threshold=args.threshold, num_random=args.num_random, seed=args.seed)
        sel = mask > 0
        # For the Gaussian prior the exact posterior mean is the Wiener filter: their difference measures the
        # Monte-Carlo error of the mean of `chains` samples (≈ posterior std / √chains) plus any sampler bias.
        stats.update({"sampler": sampler, "sampler_options": options, "sigma_min": schedule.sigma_min, "transitions": schedule.total_steps,
                      "final_denoise": denoise, "mean_acceptance": acceptance, "sampling_seconds": round(seconds, 1),
                      "rms_mean_minus_wiener": float(np.sqrt(np.mean((post.mean - wiener)[sel] ** 2))),
                      "rms_wiener": float(np.sqrt(np.mean(wiener[sel] ** 2))),
                      "mean_posterior_std": float(post.std[sel].mean())})
        summary["priors"][name] = stats
        histograms[name] = (significance_at(post.significance, positions[inside]),
                            significance_at(post.significance, random_pos))
        panels += [(f"posterior mean ({name})", post.mean, "kappa"), (f"one sample ({name})", chains[0], "kappa"),
                   (f"significance mean/std ({name})", post.significance, "significance")]
        provenance = {"command": summary["command"], "software": f"kappascope {core.__version__}", "prior": name,
                      "chains": args.chains, "levels": schedule.num_levels, "steps_per_level": int(schedule.steps_array[0]),
                      "sigma_max": args.sigma_max, "sigma_min": schedule.sigma_min, "sampler": sampler,
                      "transitions": schedule.total_steps, "final_denoise": denoise,
                      "seed": args.seed, "mean_acceptance": acceptance,
                      "source": problem.metadata.get("source", "COSMOS")}
        if hybrid:
            provenance["weights"] = args.hybrid_weights or "shipped default"
        write_maps_fits(args.out / f"cosmos_{name}.fits",
                        {"MEAN": post.mean, "STD": post.std, "SIGNIFICANCE": post.significance, "KS": ks,
                         "WIENER": wiener, "MASK": mask}, wcs=wcs, provenance=provenance, samples=chains)
    extent = _sky_extent(wcs, npix)
    figure = args.out / "cosmos_posterior.png"
    make_figure(panels, mask, extent, groups, inside, args.radius, histograms, figure)
    if args.docs_png is not None:
        make_figure(panels, mask, extent, groups, inside, args.radius, histograms, args.docs_png, dpi=60)
    summary["figure"] = str(figure)
    (args.out / "cosmos_summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.npix % 2 or 360 % args.npix:
        sys.stderr.write(f"cosmos_map: error: --npix must be an even divisor of 360, got {args.npix}\n")
        return 2
    summary = run(args, argv)
    compact = {k: v for k, v in summary.items() if k != "priors"}
    compact["priors"] = {name: {k: v for k, v in s.items() if k not in ("peak_fraction_groups", "significance_groups",
                                                                         "inside_mask")}
                         for name, s in summary["priors"].items()}
    print(json.dumps(compact, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
