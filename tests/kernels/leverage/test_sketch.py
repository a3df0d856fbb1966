"""Tests for jaxsampling.kernels.leverage.sketch (sketched leverage scores).

Deliberately independent of the sketch-size constants (which are tuned):
on an incoherent Gaussian matrix every sketch's scores are within a factor
2 of the exact ones (maximum relative error < 1) at ``eps = 0.5``, and the
error falls clearly when ``eps`` shrinks to ``0.125``. Four fixed keys.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsampling.kernels import leverage

SKETCHES = ("sparse", "srht", "gaussian", "countsketch")
# Compiling dominates; the default run checks the decrease for the default sketch.
FALL_SKETCHES = [
    "sparse",
    pytest.param("countsketch", marks=pytest.mark.slow),
    pytest.param("srht", marks=pytest.mark.slow),
    pytest.param("gaussian", marks=pytest.mark.slow),
]
N, D = 4096, 8
NUM_KEYS = 4


@functools.lru_cache(maxsize=None)
def _matrix_and_scores():
    A = jnp.asarray(np.random.default_rng(0).standard_normal((N, D)), jnp.float32)
    return A, jax.jit(leverage.leverage_scores)(A)


@functools.lru_cache(maxsize=None)
def _max_relative_errors(sketch, eps):
    """Maximum relative error over the rows, one per key."""
    A, exact = _matrix_and_scores()

    def error(key):
        approx = leverage.approximate_leverage_scores(key, A, sketch=sketch, eps=eps)
        return jnp.max(jnp.abs(approx / exact - 1.0))

    keys = jax.random.split(jax.random.key(1), NUM_KEYS)
    return np.asarray(jax.jit(jax.vmap(error))(keys))


@pytest.mark.parametrize("sketch", SKETCHES)
def test_within_factor_two_at_half(sketch):
    errors = _max_relative_errors(sketch, 0.5)
    assert np.all(errors < 1.0), errors


@pytest.mark.parametrize("sketch", FALL_SKETCHES)
def test_error_falls_with_eps(sketch):
    # The sizes scale as eps^-2, so the error should fall about 4x; ask for 2x.
    coarse = _max_relative_errors(sketch, 0.5).mean()
    fine = _max_relative_errors(sketch, 0.125).mean()
    assert fine < 0.5 * coarse, (fine, coarse)
    assert fine < 0.3, fine
