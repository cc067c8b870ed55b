"""The mscmt version (its own module, so that library modules need not import the package root)."""

__version__ = "0.1.0"
