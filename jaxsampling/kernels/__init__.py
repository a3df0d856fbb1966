"""Sampling kernels: pure functions, key first, static sizes.

Each module is one kernel family and imports on its own, e.g.
``from jaxsampling.kernels import resampling``.
"""
