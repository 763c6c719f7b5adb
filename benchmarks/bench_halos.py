r"""Halo-model maps beside lognormal and Gaussian maps of the same power spectrum; simulator speed.

For each geometry (default: 360² at 0.29′, the COSMOS native scale, and 64² at 104.4/120′, the training
scale) it draws ``--maps`` halo-model maps (:mod:`core.physics.halos`, default config, and the same with
``clustering="biased"``: haloes following the large-scale field), shifted-lognormal
maps and Gaussian maps with the same theory power map, and reports per set

* pixel standard deviation, skewness and excess kurtosis (mean ± standard error over maps),
* the one-point PDF: histogram of κ/σ_th in fixed bins (σ_th = √mean P_k, the theory pixel std),
* peak counts per map (local maxima over 3×3, periodic) with ν = κ/σ_th ≥ 3 and ≥ 4,
* the binned power spectrum divided by the theory power map (mean ± standard error per ℓ bin),

and the halo simulator's set-up time (pyccl tables, once per config) and seconds per map (painting +
large-scale field), measured here on a shared 2-core CPU (``nice``).  Output: JSON to ``--output``
(default ``benchmarks/results/halos.json``).

Usage::

    python benchmarks/bench_halos.py [--maps 24] [--output benchmarks/results/halos.json]
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

from core.analysis.summaries import peak_counts  # noqa: E402
from core.physics.fields import DEFAULT_SHIFT, gaussian_field, lognormal_field  # noqa: E402
from core.physics.geometry import MapGeometry  # noqa: E402
from core.physics.halos import HaloModelConfig, HaloModelSimulator  # noqa: E402
from core.physics.power_spectrum import binned_power_spectrum  # noqa: E402

PDF_EDGES = np.array([-4.0, -3.0, -2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 10.0, 1e9])


def _mean_sem(values: np.ndarray) -> dict[str, float]:
    values = np.asarray(values, float)
    return {"mean": float(values.mean()), "sem": float(values.std(ddof=1) / np.sqrt(len(values)))}


def statistics(maps: np.ndarray, geometry: MapGeometry, theory_power: np.ndarray) -> dict:
    sigma_th = float(np.sqrt(theory_power.mean()))
    flat = maps.reshape(len(maps), -1)
    nu = maps / sigma_th
    peaks = peak_counts(nu, np.array([3.0, 4.0, 1e9]))
    ell, power, _ = binned_power_spectrum(maps, geometry, num_bins=8)
    # theory per bin: mean of the power map over the modes of each bin (same binning as the maps)
    theory_bins = _bin_power_map(theory_power, geometry, ell)
    ratio = power / theory_bins[None]
    hist = np.stack([np.histogram(m, bins=PDF_EDGES)[0] / m.size for m in nu])
    return {
        "num_maps": int(len(maps)),
        "pixel_std": _mean_sem(flat.std(axis=1)),
        "skewness": _mean_sem(stats.skew(flat, axis=1)),
        "excess_kurtosis": _mean_sem(stats.kurtosis(flat, axis=1)),
        "pdf_edges_nu": [float(e) for e in PDF_EDGES[:-1]] + ["inf"],
        "pdf_fraction": [_mean_sem(hist[:, i]) for i in range(hist.shape[1])],
        "peaks_per_map": {"nu>=3": _mean_sem(peaks.sum(axis=1)), "nu>=4": _mean_sem(peaks[:, 1])},
        "ell_bin_centres": [float(v) for v in ell],
        "power_ratio_to_theory": [_mean_sem(ratio[:, i]) for i in range(ratio.shape[1])],
    }


def _bin_power_map(power_map: np.ndarray, geometry: MapGeometry, ell_centres: np.ndarray) -> np.ndarray:
    """Theory power averaged over the Fourier modes of each bin used by ``binned_power_spectrum``."""
    # binned_power_spectrum of a map whose |FFT|² equals N·P exactly gives the bin means of P
    npix = geometry.npix
    amp = np.sqrt(power_map * npix * npix)
    fake = np.fft.ifft2(amp).real  # P is symmetric, so this map is real and |FFT|² = N·P exactly
    _, p, _ = binned_power_spectrum(fake[None], geometry, num_bins=len(ell_centres))
    return p[0]


def run_geometry(npix: int, pixel: float, num_maps: int, seed: int) -> dict:
    geometry = MapGeometry(npix, pixel)
    t0 = time.perf_counter()
    sim = HaloModelSimulator(geometry, HaloModelConfig())
    setup_s = time.perf_counter() - t0
    sim.sample_maps(1, seed + 999)  # warm-up (TF kernels of the large-scale field)
    t0 = time.perf_counter()
    halo_maps = sim.sample_maps(num_maps, seed)
    per_map_s = (time.perf_counter() - t0) / num_maps
    power = sim.target_power
    lognormal = lognormal_field(power, num_maps, seed + 1, shift=DEFAULT_SHIFT).numpy()
    gaussian = gaussian_field(power, num_maps, seed + 2).numpy()
    t0 = time.perf_counter()
    biased = HaloModelSimulator(geometry, HaloModelConfig(clustering="biased"))
    biased_setup_s = time.perf_counter() - t0
    biased.sample_maps(1, seed + 998)
    t0 = time.perf_counter()
    biased_maps = biased.sample_maps(num_maps, seed + 3)
    biased_per_map_s = (time.perf_counter() - t0) / num_maps
    return {
        "geometry": repr(geometry),
        "halo_model": {
            **sim.describe(),
            "setup_s": round(setup_s, 3),
            "seconds_per_map": round(per_map_s, 4),
            "one_halo_power_fraction_of_target": float(sim.one_halo_power.sum() / power.sum()),
        },
        "halo_model_biased": {
            **biased.describe(),
            "setup_s": round(biased_setup_s, 3),
            "seconds_per_map": round(biased_per_map_s, 4),
            "halo_share_of_large_scale_variance": biased.halo_share,
            "cross_power_fraction_of_target": float(biased.cross_power.sum() / power.sum()),
        },
        "statistics": {
            "halo_model": statistics(halo_maps, geometry, power),
            "halo_model_biased": statistics(biased_maps, geometry, power),
            "lognormal": statistics(lognormal, geometry, power),
            "gaussian": statistics(gaussian, geometry, power),
        },
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--maps", type=int, default=24, help="maps per set and geometry")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--output", default=str(Path(__file__).resolve().parent / "results" / "halos.json"))
    args = p.parse_args(argv)
    report = {
        "description": "halo-model vs lognormal vs Gaussian maps of the same theory power map (core.physics.halos)",
        "units": "nu = kappa / sigma_th, sigma_th = sqrt(mean P_k) of the theory power map; peaks = 3x3 local maxima",
        "machine": f"{platform.platform()}, shared 2-core CPU (other jobs running)",
        "results": [
            run_geometry(360, 0.29, args.maps, args.seed),
            run_geometry(64, 104.4 / 120, max(args.maps, 64), args.seed + 10),
        ],
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2))
    for r in report["results"]:
        st = r["statistics"]
        print(r["geometry"], f"{r['halo_model']['seconds_per_map']:.3f} s/map, setup {r['halo_model']['setup_s']:.2f} s")
        for name, s in st.items():
            print(f"  {name:10s} std {s['pixel_std']['mean']:.4f} skew {s['skewness']['mean']:.2f}±{s['skewness']['sem']:.2f} "
                  f"peaks>=3 {s['peaks_per_map']['nu>=3']['mean']:.1f} >=4 {s['peaks_per_map']['nu>=4']['mean']:.1f} "
                  f"power ratio {[round(x['mean'], 2) for x in s['power_ratio_to_theory']]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
