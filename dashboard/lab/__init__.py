"""The 2-D teaching lab page of the dashboard (``/lab``): see :mod:`dashboard.lab.app`."""
from dashboard.lab.app import LabApp, create_lab, lab_page

__all__ = ["LabApp", "create_lab", "lab_page"]
