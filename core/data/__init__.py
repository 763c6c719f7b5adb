"""Observations: what the telescope gives and how it is read.

* :mod:`.observation` — masks, per-pixel shape noise σ_pix = σ_e/√n_gal, mock shear γ = M(Pκ + n).
* :mod:`.fits_io` — FITS maps and cubes with WCS and provenance, galaxy catalogues binned to a grid, COSMOS loader.
* :mod:`.assets` — where the shipped files (weights, COSMOS data, C_ℓ tables) are found.
"""
