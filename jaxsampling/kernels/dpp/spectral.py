"""Eigendecompositions of DPP kernels, computed once and reused by every draw.

A DPP on ``N`` items is given by a correlation kernel ``K``
(``P(A subset of S) = det(K_A)``, ``0 <= K <= I``) or by an L-ensemble ``L``
(``P(S = A) = det(L_A) / det(I + L)``, ``L >= 0``); the two are related by
``K = L (I + L)^{-1}``. Both share the eigenvectors ``V``; the spectral
sampler (Hough et al. 2006; Kulesza & Taskar 2012, Alg. 1) keeps
eigenvector ``j`` with probability

    p_j = lambda_j / (1 + lambda_j)    (eigenvalue mu_j = p_j of K)

and then draws the projection DPP of the kept eigenvectors, so the size of
a draw is a sum of independent Bernoulli(``p_j``) variables.

:class:`Spectrum` holds the eigenvectors sorted by decreasing ``p_j``, the
``p_j`` and ``log lambda_j``. With a concrete kernel, eigenvectors whose
``p_j`` is zero to round-off (``lambda_j <= eps lambda_max``) are dropped:
they are never kept, and the ``r`` that remain set the cost of a draw.

Example:
  >>> import jax.numpy as jnp
  >>> from jaxsampling.kernels import dpp
  >>> x = jnp.linspace(0.0, 1.0, 50)
  >>> L = jnp.exp(-((x[:, None] - x[None, :]) ** 2) / 0.02)
  >>> spectrum = dpp.spectrum_from_likelihood(L)
  >>> print(f"{float(spectrum.marginals.sum()):.3f}")   # expected size E|S| = tr K
  7.233
  >>> dpp.max_size_for(spectrum, tail=1e-9) > 5
  True
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxsampling.kernels.dpp import _checks
from jaxsampling.types import Array, ArrayLike

__all__ = [
    "Spectrum",
    "max_size_for",
    "size_distribution",
    "spectrum_from_correlation",
    "spectrum_from_eigh",
    "spectrum_from_likelihood",
]


class Spectrum(NamedTuple):
    """Eigendecomposition of a DPP kernel, sorted by decreasing ``marginals``.

    Attributes:
      eigenvectors: ``(N, r)`` orthonormal columns shared by ``K`` and ``L``.
      marginals: ``(r,)`` ``p_j = lambda_j / (1 + lambda_j)``, the eigenvalues of ``K``.
      log_eigenvalues: ``(r,)`` ``log lambda_j`` of ``L`` (``+inf`` where ``p_j = 1``).
    """

    eigenvectors: Array
    marginals: Array
    log_eigenvalues: Array

    @property
    def num_items(self) -> int:
        return self.eigenvectors.shape[0]

    @property
    def rank(self) -> int:
        return self.eigenvectors.shape[1]


def _sorted(eigenvectors: Array, marginals: Array, log_eigenvalues: Array) -> Spectrum:
    order = jnp.argsort(-marginals, stable=True)
    spectrum = Spectrum(eigenvectors[:, order], marginals[order], log_eigenvalues[order])
    if _checks.is_tracer(marginals):
        return spectrum
    keep = int(np.count_nonzero(np.asarray(spectrum.marginals) > 0))
    if keep == 0:
        raise ValueError("the kernel is zero: every draw would be empty")
    return Spectrum(*(x[..., :keep] for x in spectrum))


def _check_eigh(eigenvalues: ArrayLike, eigenvectors: ArrayLike) -> tuple[Array, Array]:
    V = _checks.check_floating(eigenvectors, "eigenvectors", 2, "(N, r)")
    lam = _checks.check_floating(eigenvalues, "eigenvalues", 1, "(r,)")
    if lam.shape[0] != V.shape[1]:
        raise ValueError(
            f"eigenvalues must have shape ({V.shape[1]},) to match eigenvectors {V.shape}, "
            f"got {lam.shape}"
        )
    return lam.astype(V.dtype), V


def spectrum_from_eigh(
    eigenvalues: ArrayLike,
    eigenvectors: ArrayLike,
    *,
    kernel: str = "likelihood",
    name: str = "eigenvalues",
) -> Spectrum:
    """A :class:`Spectrum` from an eigendecomposition the caller computed.

    Args:
      eigenvalues: ``(r,)`` eigenvalues of ``L`` (``kernel="likelihood"``, ``>= 0``)
        or of ``K`` (``kernel="correlation"``, in ``[0, 1]``).
      eigenvectors: ``(N, r)`` matching orthonormal eigenvectors.
      kernel: ``"likelihood"`` or ``"correlation"``.
      name: the argument named in error messages.

    Returns:
      The sorted :class:`Spectrum`; round-off negatives are clipped to zero
      and, with concrete values, zero eigenvalues dropped.

    Raises:
      ValueError: on shapes, or with concrete values on eigenvalues out of
        range beyond round-off (a kernel that is not PSD, or ``K`` not ``<= I``).
    """
    lam, V = _check_eigh(eigenvalues, eigenvectors)
    n = V.shape[0]
    if not _checks.is_tracer(lam):
        values = np.asarray(lam, dtype=np.float64)
        scale = max(float(np.abs(values).max()), 1.0 if kernel == "correlation" else 0.0)
        tol = _checks.tolerance(V.dtype, n) * scale
        if values.min() < -tol:
            raise ValueError(
                f"{name}: the {kernel} kernel is not positive semi-definite: smallest eigenvalue "
                f"{values.min():.3g}"
            )
        if kernel == "correlation" and values.max() > 1 + tol:
            raise ValueError(
                f"{name}: a correlation kernel needs eigenvalues <= 1, got {values.max():.6g}; "
                "pass an L-ensemble to spectrum_from_likelihood instead"
            )
    if kernel == "likelihood":
        lam = jnp.maximum(lam, 0)
        floor = jnp.finfo(V.dtype).eps * jnp.max(lam)
        lam = jnp.where(lam > floor, lam, 0)
        marginals = lam / (1 + lam)
        log_lam = jnp.log(lam)
    elif kernel == "correlation":
        mu = jnp.clip(lam, 0, 1)
        mu = jnp.where(mu > jnp.finfo(V.dtype).eps, mu, 0)
        marginals = mu
        log_lam = jnp.log(mu) - jnp.log1p(-mu)
    else:
        raise ValueError(f"kernel must be 'likelihood' or 'correlation', got {kernel!r}")
    return _sorted(V, marginals, log_lam)


def spectrum_from_likelihood(L: ArrayLike) -> Spectrum:
    """Eigendecomposes an L-ensemble kernel (``jnp.linalg.eigh``, ``O(N^3)``) once.

    Raises:
      ValueError: ``L`` not square, or (concrete) not symmetric, not PSD, non-finite.
    """
    L = _checks.check_square_kernel(L, "L")
    lam, V = jnp.linalg.eigh(L)
    return spectrum_from_eigh(lam, V, kernel="likelihood", name="L")


def spectrum_from_correlation(K: ArrayLike) -> Spectrum:
    """Eigendecomposes a correlation kernel ``0 <= K <= I`` once.

    Raises:
      ValueError: ``K`` not square, or (concrete) not symmetric, eigenvalues
        outside ``[0, 1]``, non-finite.
    """
    K = _checks.check_square_kernel(K, "K")
    mu, V = jnp.linalg.eigh(K)
    return spectrum_from_eigh(mu, V, kernel="correlation", name="K")


def size_distribution(marginals: ArrayLike) -> Array:
    """Law of ``|S|``: ``P(|S| = m)``, ``m = 0..r``, a sum of Bernoulli(``p_j``).

    The Poisson-binomial recursion, ``O(r^2)``, in the dtype of ``marginals``.
    """
    p = jnp.asarray(marginals)
    r = p.shape[0]
    pmf = jnp.zeros(r + 1, p.dtype).at[0].set(1)

    def add(pmf, pj):
        return pmf * (1 - pj) + jnp.roll(pmf, 1).at[0].set(0) * pj, None

    pmf, _ = lax.scan(add, pmf, p)
    return pmf


def max_size_for(spectrum: Spectrum, tail: float = 1e-9) -> int:
    """Smallest ``m`` with ``P(|S| > m) <= tail``: a static ``max_size`` from the law.

    Needs a concrete spectrum (the result fixes a shape). The sum of
    Bernoullis concentrates: the bound is about ``E|S| + 6 sd`` at the default,
    far below the rank for a smooth kernel.
    """
    if _checks.is_tracer(spectrum.marginals):
        raise ValueError("max_size_for needs a concrete spectrum; pass max_size explicitly")
    if not 0 < tail < 1:
        raise ValueError(f"tail must be in (0, 1), got {tail}")
    p = np.asarray(spectrum.marginals, dtype=np.float64)
    pmf = np.zeros(p.size + 1)
    pmf[0] = 1.0
    for j, pj in enumerate(p):
        pmf[1 : j + 2] = pmf[1 : j + 2] * (1 - pj) + pmf[: j + 1] * pj
        pmf[0] *= 1 - pj
    survival = np.append(np.cumsum(pmf[::-1])[::-1][1:], 0.0)  # P(|S| > m)
    m = int(np.argmax(survival <= tail))
    return int(min(max(m, 1), p.size))

