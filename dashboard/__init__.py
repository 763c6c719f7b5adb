"""kappascope dashboard: a Panel app for live posterior sampling of convergence maps.

Layers (imports flow one way, ``dashboard`` → ``core``): :mod:`dashboard.settings` (run settings, no UI),
:mod:`dashboard.problem` (settings → core objects), :mod:`dashboard.runner` (per-session worker thread),
:mod:`dashboard.views` and :mod:`dashboard.teaching` (display), :mod:`dashboard.app` (one app per session).
Importing this package does not import Panel; use ``dashboard.app.create_app()`` or ``python -m dashboard``.
"""
__all__ = ["settings", "runner", "problem", "views", "teaching", "app"]
