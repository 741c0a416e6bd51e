"""flowbench-nsf: Neural Spline Flows (Durkan et al. 2019, arXiv:1906.04068) for flowbench.

The plugin module flowbench loads is :mod:`flowbench_nsf.plugin`; the spline and the coupling layer
are importable for use in other flows.
"""

from .coupling import RationalQuadraticCoupling
from .spline import rational_quadratic_spline

__version__ = "0.1.0"
__all__ = ["RationalQuadraticCoupling", "rational_quadratic_spline", "__version__"]
