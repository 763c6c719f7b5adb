"""kappascope dashboard: a Panel app for live posterior sampling of convergence maps.

Layers (imports flow one way, ``dashboard`` → ``core``; Panel's "data store + views" structure):

* :mod:`dashboard.settings` — run settings (``param``), generated from ``core.options`` and the sampler registry;
* :mod:`dashboard.uploads` — checked uploads (size, decompressed size, map side caps);
* :mod:`dashboard.problem` — settings → ``core.pipeline`` problem + what the views show;
* :mod:`dashboard.runner` — per-session worker thread with a latest-frame slot, pause/step/stop;
* :mod:`dashboard.model` — the run model: settings, inputs, runner, comparisons, messages (no widgets);
* :mod:`dashboard.status`, :mod:`dashboard.exports` — status text (escaped) and FITS/PNG downloads;
* :mod:`dashboard.plots`, :mod:`dashboard.views`, :mod:`dashboard.teaching` — Bokeh plots updated in place and the
  views that lay them out;
* :mod:`dashboard.app` (one app per session, :data:`~dashboard.app.ROUTES`) and :mod:`dashboard.server` (serving).

Importing this package does not import Panel; use ``dashboard.app.create_app()`` or ``python -m dashboard``.
"""
__all__ = ["settings", "uploads", "problem", "runner", "model", "status", "exports", "plots", "views", "teaching",
           "app", "server"]
