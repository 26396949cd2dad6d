"""Prefect flows: *how and where* the cdfv stages run (the logic lives in the ``cdfv`` package)."""
