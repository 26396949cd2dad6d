"""cdfv: compressed-domain face verification pipeline."""

__version__ = "0.1.0"
