"""The physics of the forward model.

* :mod:`.geometry` — the flat-sky pixel grid, FFT conventions, wavenumbers ℓ = 2π|k|/Δθ.
* :mod:`.lensing` — the Kaiser–Squires operator P: γ̂(k) = D(k) κ̂(k), D = (k₁² − k₂² + 2i k₁k₂)/|k|², and its adjoint.
* :mod:`.cosmology` — theory convergence C_ℓ (pyccl) and the power map P_k = C_ℓ(2π|k|/Δθ)/Ω_pix.
* :mod:`.power_spectrum` — binned power spectra of maps.
* :mod:`.fields` — Gaussian and lognormal convergence fields with a given power map.
"""
