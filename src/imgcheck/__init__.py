"""imgcheck: decide whether container images are fit to release."""

__version__ = "0.1.0"
