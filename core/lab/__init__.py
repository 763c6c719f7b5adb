"""The 2-D teaching lab's numerical core (TensorFlow, no UI imports).

* :mod:`.targets` — 2-D targets (Gaussian mixtures at every σ) with exact smoothed log densities, scores,
  samples, marginals and moments;
* :mod:`.sampling` — kappascope's own kernels (``event_ndims=1``) driven over a σ schedule, one frame at a time;
* :mod:`.learned` — a small MLP score trained by denoising score matching on samples of a target;
* :mod:`.metrics` — energy distance between sample sets.
"""
