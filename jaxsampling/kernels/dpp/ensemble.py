"""L-ensemble, correlation-kernel and k-DPP draws from a reused eigendecomposition.

Spectral sampler (Hough et al. 2006; Kulesza & Taskar 2012, Algs. 1 and 8),
given a :class:`~jaxsampling.kernels.dpp.spectral.Spectrum` ``(V, p, log lambda)``:

1. keep eigenvector ``j`` independently with probability ``p_j`` (DPP), or
   keep exactly ``k`` of them with probability ``prod_{j in J} lambda_j / e_k(lambda)``
   (k-DPP; ``e_k`` the elementary symmetric polynomial, in log space);
2. draw the projection DPP of the kept eigenvectors (:mod:`.chain_rule`).

A DPP draw has a random size ``|S| = sum_j Bernoulli(p_j)``, so it comes
back padded to a static ``max_size`` (:class:`DPPDraw`). The default
``max_size`` comes from the law of ``|S|`` (:func:`~.spectral.max_size_for`,
tail ``1e-9``), not from the rank. A draw larger than ``max_size`` is never
truncated: called eagerly, :func:`sample` redraws the whole batch with the
same keys and ``max_size = rank`` (same sets, wider output); under ``jit``
the draw is flagged in ``overflow`` with ``size`` its true size and no items.

Example:
  >>> import jax, jax.numpy as jnp
  >>> from jaxsampling.kernels import dpp
  >>> x = jax.random.uniform(jax.random.key(0), (200, 2))
  >>> L = 10.0 * jnp.exp(-jnp.sum((x[:, None] - x[None]) ** 2, -1) / 0.02)
  >>> spectrum = dpp.spectrum_from_likelihood(L)
  >>> draw = dpp.sample(jax.random.key(1), spectrum, num_draws=4)
  >>> draw.indices.shape[0], bool((draw.size == draw.mask.sum(1)).all())
  (4, True)
  >>> dpp.sample_k(jax.random.key(2), spectrum, 5).shape
  (5,)
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxsampling.kernels.dpp import _checks, rejection
from jaxsampling.kernels.dpp.chain_rule import PAD, chain_rule_bucketed, selected_columns
from jaxsampling.kernels.dpp.spectral import Spectrum, max_size_for
from jaxsampling.types import Array, ArrayLike

__all__ = ["DPPDraw", "log_elementary_symmetric", "sample", "sample_k", "select_k"]


class DPPDraw(NamedTuple):
    """A variable-size draw in a fixed-size array.

    Attributes:
      indices: ``int32[..., max_size]`` the items in random order, then ``-1``.
      size: ``int32[...]`` number of items; ``-1`` when the spectrum had a
        non-finite entry (possible only under ``jit``: eager calls raise).
      overflow: ``bool[...]`` the draw had more than ``max_size`` items (only
        under ``jit``; its ``indices`` are all ``-1`` and ``size`` is the true size).
    """

    indices: Array
    size: Array
    overflow: Array

    @property
    def mask(self) -> Array:
        """``bool[..., max_size]``: which entries of ``indices`` are items."""
        return self.indices != PAD


def _check_spectrum(spectrum: Any) -> Spectrum:
    if not isinstance(spectrum, Spectrum):
        raise ValueError(
            "spectrum must be a dpp.Spectrum (from spectrum_from_likelihood, "
            f"spectrum_from_correlation or spectrum_from_eigh), got {type(spectrum).__name__}"
        )
    return spectrum


def _phase_one_keys(keys: Array) -> tuple[Array, Array]:
    pairs = jax.vmap(lambda k: jax.random.split(k))(keys)
    return pairs[:, 0], pairs[:, 1]


def _projection_phase(
    keys: Array, V: Array, select: Array, sizes: Array, max_size: int, method: str
) -> Array:
    n, r = V.shape
    sets = selected_columns(select, max_size)
    if method == "rejection" or (
        method == "auto" and rejection.prefers_rejection(n, r, max_size)
    ):
        return rejection.chain_rule_rejection(keys, V, sets, sizes, max_size)
    return chain_rule_bucketed(keys, V, sets, sizes, max_size)


def _draw(keys: Array, spectrum: Spectrum, max_size: int, method: str) -> DPPDraw:
    select_keys, chain_keys = _phase_one_keys(keys)
    p = spectrum.marginals
    select = jax.vmap(lambda k: jax.random.uniform(k, p.shape, p.dtype) < p)(select_keys)
    size = jnp.sum(select, axis=1, dtype=jnp.int32)
    overflow = size > max_size
    fitted = jnp.where(overflow, 0, size)
    select = select & ~overflow[:, None]
    indices = _projection_phase(
        chain_keys, spectrum.eigenvectors, select, fitted, max_size, method
    )
    finite = _checks.all_finite(spectrum.eigenvectors, p)
    indices = jnp.where(finite, indices, PAD)
    return DPPDraw(indices, jnp.where(finite, size, -1), overflow & finite)


def sample(
    key: Any,
    spectrum: Spectrum,
    *,
    max_size: int | None = None,
    num_draws: int | None = None,
    method: str = "auto",
) -> DPPDraw:
    """Draws from the DPP with the given spectrum (an L-ensemble or a kernel ``K``).

    ``P(S = A) = det(L_A) / det(I + L)``; ``E|S| = sum_j p_j``.

    Args:
      key: a PRNG key, or a batch of keys ``(B,)`` (one draw each, sharding kept).
      spectrum: from :func:`~.spectral.spectrum_from_likelihood` and friends.
      max_size: static output length; default :func:`~.spectral.max_size_for`
        (needs a concrete spectrum; ``rank`` when traced).
      num_draws: static number of draws from one key.
      method: projection phase, as in :func:`~.projection.sample_projection`.

    Returns:
      A :class:`DPPDraw`; leading axis ``(B,)`` unless one key was given.
    """
    spectrum = _check_spectrum(spectrum)
    method = rejection.check_method(method)
    keys, single = _checks.as_keys(key, num_draws)
    rank = spectrum.rank
    if max_size is None:
        traced = _checks.is_tracer(spectrum.marginals)
        max_size = rank if traced else max_size_for(spectrum)
    max_size = min(_checks.check_int(max_size, "max_size"), rank)
    draw = _checks.map_draws(lambda k, s: _draw(k, s, max_size, method), keys, spectrum)
    if not _checks.is_tracer(draw.overflow) and max_size < rank and bool(draw.overflow.any()):
        draw = _checks.map_draws(lambda k, s: _draw(k, s, rank, method), keys, spectrum)
    return _checks.unbatch(draw, single)


def log_elementary_symmetric(log_values: ArrayLike, k: int) -> Array:
    """``log e_l(lambda_1..lambda_n)`` for every prefix ``n = 0..r`` and ``l = 0..k``.

    ``e_l^n = e_l^{n-1} + lambda_n e_{l-1}^{n-1}`` (Kulesza & Taskar 2012, Alg. 7),
    carried in log space with ``logaddexp`` so that large ``N`` and tiny
    eigenvalues neither overflow nor underflow.

    Returns:
      ``(r + 1, k + 1)`` table; ``[-1, k]`` is ``log e_k`` of all the values.
    """
    log_values = jnp.asarray(log_values)
    row0 = jnp.full(k + 1, -jnp.inf, log_values.dtype).at[0].set(0)

    def add(prev, log_lam):
        shifted = jnp.concatenate([jnp.full(1, -jnp.inf, prev.dtype), prev[:-1] + log_lam])
        # logaddexp(-inf, -inf) = -inf has a NaN gradient: keep those entries out of it.
        empty = jnp.isneginf(prev) & jnp.isneginf(shifted)
        new = jnp.logaddexp(jnp.where(empty, 0, prev), jnp.where(empty, 0, shifted))
        new = jnp.where(empty, -jnp.inf, new)
        return new, new

    _, rows = lax.scan(add, row0, log_values)
    return jnp.concatenate([row0[None], rows])


def select_k(key: Any, log_values: Array, table: Array, k: int) -> Array:
    """Phase one of a k-DPP: ``k`` of the ``r`` eigenvectors, ``P(J) propto prod lambda_J``.

    Goes ``n = r..1`` keeping eigenvector ``n`` with probability
    ``lambda_n e_{l-1}^{n-1} / e_l^n`` (``l`` still to choose).

    Returns:
      ``bool[r]`` with exactly ``k`` entries set.
    """
    r = log_values.shape[0]
    u = jax.random.uniform(key, (r,), table.dtype)

    def step(left, n):
        log_p = log_values[n - 1] + table[n - 1, left - 1] - table[n, left]
        keep = (left > 0) & (jnp.log(u[n - 1]) < log_p)
        return left - keep, keep

    _, keep = lax.scan(step, jnp.int32(k), jnp.arange(r, 0, -1))
    return keep[::-1]


def sample_k(
    key: Any,
    spectrum: Spectrum,
    k: int,
    *,
    num_draws: int | None = None,
    method: str = "auto",
) -> Array:
    """Draws from the k-DPP ``P(S = A) propto det(L_A)``, ``|A| = k``.

    Args:
      key: a PRNG key, or a batch of keys ``(B,)``.
      spectrum: an L-ensemble spectrum (a ``K`` with eigenvalue 1 has no k-DPP
        other than its projection part: use :func:`sample_projection`).
      k: static set size, at most the number of positive eigenvalues.
      num_draws: static number of draws from one key.
      method: projection phase, as in :func:`~.projection.sample_projection`.

    Returns:
      ``int32[k]`` or ``int32[B, k]``: distinct items in random order.

    Raises:
      ValueError: ``k`` not an int, ``k < 1``, ``k > rank``, or (concrete) a
        spectrum with infinite eigenvalues.
    """
    spectrum = _check_spectrum(spectrum)
    method = rejection.check_method(method)
    k = _checks.check_int(k, "k")
    if k > spectrum.rank:
        raise ValueError(f"k = {k} exceeds the rank {spectrum.rank} of the kernel")
    log_lam = spectrum.log_eigenvalues
    if not _checks.is_tracer(log_lam):
        values = np.asarray(log_lam)
        if np.isposinf(values).any():
            raise ValueError("a k-DPP needs finite L eigenvalues (a correlation kernel had 1)")
        if int(np.isfinite(values).sum()) < k:
            raise ValueError(f"k = {k} exceeds the number of positive eigenvalues")
    keys, single = _checks.as_keys(key, num_draws)

    def draws(keys, spectrum):
        select_keys, chain_keys = _phase_one_keys(keys)
        log_lam = spectrum.log_eigenvalues
        table = log_elementary_symmetric(log_lam, k)
        select = jax.vmap(lambda kk: select_k(kk, log_lam, table, k))(select_keys)
        sizes = jnp.full(keys.shape[0], k, jnp.int32)
        items = _projection_phase(chain_keys, spectrum.eigenvectors, select, sizes, k, method)
        return _checks.poison(items, spectrum.eigenvectors, spectrum.marginals)

    items = _checks.map_draws(draws, keys, spectrum)
    return _checks.unbatch(items, single)
