"""What is done with samples: baselines, summaries and diagnostics.

* :mod:`.baselines` — Kaiser–Squires inversion and the Wiener filter (the Gaussian posterior mean).
* :mod:`.summaries` — posterior mean, std, significance, peaks, coverage, R-hat/ESS.
* :mod:`.cosmos_groups` — COSMOS X-ray group statistics on a posterior map.
"""
