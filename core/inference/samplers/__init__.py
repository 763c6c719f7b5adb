"""Posterior samplers: one object per method, each a :class:`~core.inference.samplers.base.PosteriorSampler`.

* :mod:`.registry` — TensorFlow-free: sampler name → :class:`~core.inference.samplers.registry.SamplerSpec`
  (import path of the class, one-line summary, its options with defaults and bounds). The CLI and the
  dashboard read their sampler menus from it; adding a sampler = one new file + one registry entry.
* :mod:`.base` — :class:`~core.inference.samplers.base.PosteriorSampler`: ``(posterior, schedule, **options)`` →
  a TFP transition kernel over chains ``(C, N, N)`` whose results expose ``step``, ``level``, ``sigma``, ``nfe``.
* :mod:`.annealed` — annealed score MCMC: ``"hmc"`` (the reference), ``"mala"``, ``"ula"``.
* further files (predictor–corrector, DPS, MMPS) register themselves in :mod:`.registry`.

This ``__init__`` imports nothing, so ``kappascope --help`` stays free of TensorFlow.
"""
