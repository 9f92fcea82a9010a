"""carbonshift: run compute where and when the grid is cleanest, and prove it afterwards."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("carbonshift")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
