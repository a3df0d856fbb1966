"""Isotropic Gaussian mixtures with closed-form scores, noising and products.

The test targets of the SMC samplers: every quantity the samplers estimate
(mode weights, moments, normalising constants) is known exactly for them.

A mixture ``p(x) = sum_k w_k N(x; mu_k, s_k^2 I)`` on ``R^d`` is a pytree
(:class:`GaussianMixture`); ``w`` need not sum to one (the mixture is then
unnormalised, with total mass ``sum_k w_k``).

* Noising by ``N(0, sigma^2 I)`` (the variance-exploding diffusion's
  marginal) gives ``sum_k w_k N(mu_k, (s_k^2 + sigma^2) I)``
  (:meth:`GaussianMixture.noised`).
* The product of two mixtures is a mixture of ``K_1 K_2`` components
  (:func:`product`): ``N(x; a, u I) N(x; b, v I) = N(a; b, (u + v) I)
  N(x; (v a + u b) / (u + v), u v / (u + v) I)``.

Example:
  >>> import jax.numpy as jnp
  >>> from jaxsampling.kernels.smc import mixtures
  >>> p = mixtures.GaussianMixture(
  ...     jnp.array([0.5, 0.5]), jnp.array([[-1.0], [1.0]]), jnp.array([0.3, 0.3]))
  >>> p.score(jnp.zeros((1, 1))).tolist()
  [[0.0]]
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxsampling.types import Array, ArrayLike

__all__ = ["GaussianMixture", "grid", "product"]


class GaussianMixture(NamedTuple):
    """``sum_k w_k N(mu_k, s_k^2 I)``.

    Attributes:
      weights: float[K] non-negative component masses.
      means: float[K, d].
      sds: float[K] component standard deviations.
    """

    weights: Array  # float[K]
    means: Array  # float[K, d]
    sds: Array  # float[K]

    @property
    def dim(self) -> int:
        return self.means.shape[-1]

    def _component_log_densities(self, x: Array) -> Array:
        """``log w_k + log N(x; mu_k, s_k^2 I)`` for x of shape [..., d] -> [..., K]."""
        x = jnp.asarray(x)
        d = self.dim
        var = self.sds**2
        sq = jnp.sum((x[..., None, :] - self.means) ** 2, axis=-1)
        return (
            jnp.log(self.weights)
            - 0.5 * sq / var
            - 0.5 * d * jnp.log(2 * math.pi * var)
        )

    def log_density(self, x: ArrayLike) -> Array:
        """``log p(x)`` for x of shape [..., d]."""
        return jax.nn.logsumexp(self._component_log_densities(x), axis=-1)

    def responsibilities(self, x: ArrayLike) -> Array:
        """Posterior component probabilities, shape [..., K]."""
        return jax.nn.softmax(self._component_log_densities(x), axis=-1)

    def score(self, x: ArrayLike) -> Array:
        """``grad_x log p(x) = sum_k r_k(x) (mu_k - x) / s_k^2``, shape [..., d]."""
        x = jnp.asarray(x)
        r = self.responsibilities(x)
        pull = (self.means - x[..., None, :]) / (self.sds**2)[:, None]
        return jnp.sum(r[..., None] * pull, axis=-2)

    def laplacian_log_density(self, x: ArrayLike) -> Array:
        """``Laplacian_x log p(x)``, shape [...].

        With ``g_k = (mu_k - x) / s_k^2`` and responsibilities ``r_k``:
        ``sum_k r_k (|g_k|^2 - d / s_k^2) - |sum_k r_k g_k|^2``.
        """
        x = jnp.asarray(x)
        r = self.responsibilities(x)
        var = self.sds**2
        pull = (self.means - x[..., None, :]) / var[:, None]
        mean_pull = jnp.sum(r[..., None] * pull, axis=-2)
        per_component = jnp.sum(pull**2, axis=-1) - self.dim / var
        return jnp.sum(r * per_component, axis=-1) - jnp.sum(mean_pull**2, axis=-1)

    def noised(self, sigma: ArrayLike) -> GaussianMixture:
        """The mixture convolved with ``N(0, sigma^2 I)``."""
        return self._replace(sds=jnp.sqrt(self.sds**2 + jnp.asarray(sigma) ** 2))

    @property
    def mass(self) -> Array:
        """Total mass ``sum_k w_k`` (the normalising constant)."""
        return jnp.sum(self.weights)

    def mean(self) -> Array:
        """``E[x]`` under the normalised mixture, shape [d]."""
        w = self.weights / self.mass
        return w @ self.means

    def second_moment(self) -> Array:
        """``E[x x^T]`` under the normalised mixture, shape [d, d]."""
        w = self.weights / self.mass
        outer = jnp.einsum("ki,kj->kij", self.means, self.means)
        eye = jnp.eye(self.dim)
        return jnp.einsum("k,kij->ij", w, outer + (self.sds**2)[:, None, None] * eye)

    def sample(self, key: Array, num_samples: int) -> Array:
        """``num_samples`` exact draws from the normalised mixture, [n, d]."""
        ck, nk = jax.random.split(key)
        k = jax.random.categorical(ck, jnp.log(self.weights), shape=(num_samples,))
        z = jax.random.normal(nk, (num_samples, self.dim))
        return self.means[k] + self.sds[k][:, None] * z


def product(p: GaussianMixture, q: GaussianMixture) -> GaussianMixture:
    """The (unnormalised) product density ``p(x) q(x)``, exactly, as a mixture.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxsampling.kernels.smc import mixtures
      >>> g = mixtures.GaussianMixture(jnp.ones(1), jnp.zeros((1, 1)), jnp.ones(1))
      >>> pq = mixtures.product(g, g)
      >>> pq.means.tolist(), round(float(pq.sds[0] ** 2), 4)
      ([[0.0]], 0.5)
    """
    u = (p.sds**2)[:, None]
    v = (q.sds**2)[None, :]
    total = u + v
    a = p.means[:, None, :]
    b = q.means[None, :, :]
    d = p.dim
    sq = jnp.sum((a - b) ** 2, axis=-1)
    log_overlap = -0.5 * sq / total - 0.5 * d * jnp.log(2 * math.pi * total)
    weights = p.weights[:, None] * q.weights[None, :] * jnp.exp(log_overlap)
    means = (v[..., None] * a + u[..., None] * b) / total[..., None]
    sds = jnp.sqrt(u * v / total)
    return GaussianMixture(weights.reshape(-1), means.reshape(-1, d), sds.reshape(-1))


def grid(low: float, high: float, size: int, dim: int = 2) -> tuple[Array, float]:
    """A regular grid over ``[low, high]^dim`` and its cell volume (for quadrature)."""
    axis = jnp.linspace(low, high, size)
    mesh = jnp.stack(jnp.meshgrid(*([axis] * dim), indexing="ij"), axis=-1)
    return mesh.reshape(-1, dim), float((axis[1] - axis[0]) ** dim)
