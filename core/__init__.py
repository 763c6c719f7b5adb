"""kappascope core: the science — physics → data → priors → inference → analysis.

Nothing in this package imports a UI library (panel, holoviews, bokeh, param).
"""
import os as _os

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
