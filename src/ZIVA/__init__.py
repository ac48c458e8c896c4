"""The import path the scZiva authors document: ``from ZIVA import ZIVAimpute``."""

from scziva.core import ZIVAimpute

__all__ = ["ZIVAimpute"]
