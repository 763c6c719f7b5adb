"""Downloads of a run: the posterior as FITS (mean, std, samples + provenance) and a PNG of the maps. No UI.

The FITS file is written by ``core.data.fits_io.write_maps_fits`` (the same layout as ``kappascope sample``):
``MEAN``, ``STD`` and the ``SAMPLES`` cube ``(C, N, N)``, with the run's settings, the sampler's resolved options,
its network-evaluation count ``nfe`` per chain and the snapshot's step and σ as provenance.
"""
from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from dashboard.settings import DISPLAY_ONLY

__all__ = ["fits_bytes", "png_bytes"]


def fits_bytes(problem: Any, snapshot: Any) -> io.BytesIO:
    """The posterior FITS file of ``snapshot`` (from the run on ``problem``) in memory."""
    from core.data.fits_io import write_maps_fits

    maps = {"MEAN": np.asarray(snapshot.mean, np.float32), "STD": np.asarray(snapshot.std, np.float32),
            "SAMPLES": np.asarray(snapshot.chains, np.float32)}
    provenance = {k: v for k, v in problem.settings.items() if k not in DISPLAY_ONLY and v is not None}
    provenance.update(step=int(snapshot.step), sigma=float(snapshot.sigma), done=bool(snapshot.done),
                      sampler=str(getattr(snapshot, "sampler", problem.settings.get("sampler", ""))))
    nfe = getattr(snapshot, "nfe", None)
    if nfe is not None:
        provenance["nfe_per_chain"] = float(nfe)
    with tempfile.TemporaryDirectory(prefix="kappascope-download-") as tmp:
        path = Path(tmp) / "posterior.fits"
        write_maps_fits(path, maps, problem.wcs, provenance)
        return io.BytesIO(path.read_bytes())


def png_bytes(problem: Any, snapshot: Any, dpi: int = 110) -> io.BytesIO:
    """A matplotlib rendering (no pyplot state) of the truth, data, baselines and posterior maps."""
    from matplotlib.figure import Figure

    mask = np.asarray(problem.mask)
    clim = problem.kappa_range
    panels = [("Truth κ", problem.truth, "RdBu_r", clim),
              ("Observed γ₁", np.where(mask > 0, problem.shear[0], np.nan), "RdBu_r", None),
              ("Kaiser–Squires", problem.kaiser_squires, "RdBu_r", clim),
              ("Wiener filter", problem.wiener, "RdBu_r", clim),
              ("Posterior mean", snapshot.mean, "RdBu_r", clim),
              ("Posterior std", snapshot.std, "viridis", None)]
    panels = [p for p in panels if p[1] is not None]
    fig = Figure(figsize=(3.2 * len(panels), 3.4), dpi=dpi)
    for i, (title, data, cmap, limits) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        kwargs = {"vmin": limits[0], "vmax": limits[1]} if limits else {}
        im = ax.imshow(np.asarray(data, np.float32), origin="lower", cmap=cmap, **kwargs)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle(f"kappascope · {problem.label} prior · {problem.settings.get('sampler', '')} · "
                 f"step {snapshot.step}/{snapshot.total_steps} · σ={float(snapshot.sigma):.3g}", fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    buffer.seek(0)
    return buffer
