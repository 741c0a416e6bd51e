"""flowbench-zuko: zuko's normalizing flows (https://github.com/probabilists/zuko) as flowbench
flows, in flowbench's direction (data -> latent) and with flowbench's bases.

The plugin module flowbench loads is :mod:`flowbench_zuko.plugin`; the adapter
(:class:`ZukoTransform`, :func:`from_zuko`) wraps any zuko flow's transform.
"""

from .adapter import ZukoTransform, from_zuko
from .families import FAMILIES, LEFT_OUT

__version__ = "0.1.0"
__all__ = ["FAMILIES", "LEFT_OUT", "ZukoTransform", "from_zuko", "__version__"]
