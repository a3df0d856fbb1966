"""Shared test matrices and jitted kernels for the leverage tests.

Compiling dominates the run time, so the tests share one jitted wrapper per
kernel (jit caches per wrapper) and a few fixed matrices (one program per
shape, dtype and static argument).
"""

import functools

import jax
import numpy as np

from jaxsampling.kernels import leverage

leverage_scores = jax.jit(leverage.leverage_scores, static_argnames="method")
lewis_weights = jax.jit(leverage.lewis_weights, static_argnames=("p", "method"))
exact_sensitivities = jax.jit(
    leverage.exact_sensitivities, static_argnames=("p", "max_iterations")
)
upper_bounds = jax.jit(leverage.sensitivity_upper_bounds, static_argnames="p")


@functools.lru_cache(maxsize=None)
def small_matrix() -> np.ndarray:
    """float64[40, 3]: Gaussian rows with log-normal scales; row 11 is zero.

    Coherent (row leverages from about 1e-3 to near 1) and small enough for a
    linear program per row.
    """
    rng = np.random.default_rng(0)
    A = rng.standard_normal((40, 3)) * np.exp(rng.standard_normal((40, 1)))
    A[11] = 0.0
    A.setflags(write=False)
    return A


ZERO_ROW = 11
