"""kappascope core: the science — physics → data → priors → inference → analysis.

Nothing in this package imports a UI library (panel, holoviews, bokeh, param), and importing it changes no
environment variable (the entry points — :mod:`core.cli`, the dashboard — set TensorFlow's logging there).
"""
__version__ = "0.1.0"
