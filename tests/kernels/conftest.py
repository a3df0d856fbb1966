"""Fixtures for the kernel tests."""

import jax
import pytest


@pytest.fixture(autouse=True)
def _fast_compiles():
    """Compiles with ``jax_disable_most_optimizations`` under tests/kernels.

    The tests run small problems whose cost is almost all XLA compilation
    (a Lewis-weight while-loop: about 3 s optimised, 1.2 s not); the math is
    the same. Restored after each test, so other folders compile as usual.
    """
    previous = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", previous)


@pytest.fixture
def optimized_compiles(_fast_compiles):
    """Undoes ``_fast_compiles`` for a test whose cost is running, not compiling."""
    jax.config.update("jax_disable_most_optimizations", False)


@pytest.fixture
def x64():
    """Runs the test with ``jax_enable_x64`` (float64 arrays), restored afterwards."""
    with jax.enable_x64(True):
        yield
