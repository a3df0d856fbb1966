"""Volume sampling and volume-rescaled sampling of the rows of a tall matrix.

For ``X`` of shape ``(N, d)`` with full column rank and ``Q`` an orthonormal
basis of its column space (``Q R = X``):

* **Volume sampling** of size ``k >= d`` (Derezinski & Warmuth 2017): a set
  ``S`` of ``k`` distinct rows with ``P(S) propto det(X_S^T X_S)``. By
  Cauchy-Binet ``det(X_S^T X_S) = sum_{T subset S, |T| = d} det(X_T)^2``, so
  ``S`` is ``d`` rows from the projection DPP ``Q Q^T`` plus ``k - d`` rows
  uniformly without replacement from the rest:

      P(S) = det(X_S^T X_S) / (C(N - d, k - d) det(X^T X)).

* **Volume-rescaled sampling** of size ``k >= d`` (Derezinski, Warmuth & Hsu
  2018; Nouy & Michel 2023, generalised volume sampling): an ordered
  ``k``-tuple, repetitions allowed, with density ``propto det(G)`` against
  ``q^{otimes k}``, where ``q_i = ||Q_i||^2 / d`` are the normalised
  leverage scores and ``G = sum_j Q_{i_j}^T Q_{i_j} / q_{i_j}``:

      P(i_1..i_k) = (k - d)! / k! * det(G) * prod_j q_{i_j}.

  It is ``d`` rows from the projection DPP plus ``k - d`` i.i.d. rows from
  ``q``, shuffled. Weighted least squares with weights ``1 / (k q_i)`` is
  then unbiased (the seed paper's method).

Both come out in uniformly random order.

Example:
  >>> import jax, jax.numpy as jnp
  >>> from jaxsampling.kernels import dpp
  >>> X = jax.random.normal(jax.random.key(0), (50, 3))
  >>> dpp.volume_sample(jax.random.key(1), X, 6).shape
  (6,)
  >>> dpp.volume_rescaled_sample(jax.random.key(2), X, 6, num_draws=2).shape
  (2, 6)
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxsampling.kernels._args import raise_if_rank_deficient
from jaxsampling.kernels.dpp import _checks
from jaxsampling.kernels.dpp.chain_rule import chain_rule
from jaxsampling.types import Array, ArrayLike

__all__ = ["column_basis", "volume_rescaled_sample", "volume_sample"]


def column_basis(X: ArrayLike, name: str = "X") -> Array:
    """Orthonormal basis ``Q`` (``N x d``) of the column space of a full-rank tall ``X``.

    Raises:
      ValueError: ``X`` not 2-D floating, ``N < d``, or (concrete) rank-deficient
        or non-finite.
    """
    X = _checks.check_floating(X, name, 2, "(N, d)")
    if X.shape[0] < X.shape[1]:
        raise ValueError(f"{name} must be tall (N >= d), got shape {X.shape}")
    raise_if_rank_deficient(X, name)
    Q, _ = jnp.linalg.qr(X)
    return Q


def _check_k(k: Any, n: int, d: int, *, distinct: bool) -> int:
    k = _checks.check_int(k, "k")
    if k < d:
        raise ValueError(f"k must be >= d = {d} (the number of columns), got {k}")
    if distinct and k > n:
        raise ValueError(f"k must be <= N = {n} for a set of distinct rows, got {k}")
    return k


def _shuffle(keys: Array, items: Array) -> Array:
    def one(key, row):
        return row[jax.random.permutation(key, row.shape[0])]

    return jax.vmap(one)(keys, items)


def _projection_part(keys: Array, Q: Array) -> Array:
    b, d = keys.shape[0], Q.shape[1]
    sets = jnp.broadcast_to(jnp.arange(d, dtype=jnp.int32), (b, d))
    return chain_rule(keys, Q, sets, jnp.full(b, d, jnp.int32), d)


def _split3(keys: Array) -> tuple[Array, Array, Array]:
    parts = jax.vmap(lambda k: jax.random.split(k, 3))(keys)
    return parts[:, 0], parts[:, 1], parts[:, 2]


def volume_sample(key: Any, X: ArrayLike, k: int, *, num_draws: int | None = None) -> Array:
    """``k`` distinct rows with ``P(S) propto det(X_S^T X_S)``, exactly.

    Args:
      key: a PRNG key, or a batch of keys ``(B,)``.
      X: ``(N, d)`` full column rank.
      k: static set size, ``d <= k <= N``.
      num_draws: static number of draws from one key.

    Returns:
      ``int32[k]`` or ``int32[B, k]`` distinct row indices in random order.
    """
    Q = column_basis(X)
    n, d = Q.shape
    k = _check_k(k, n, d, distinct=True)
    keys, single = _checks.as_keys(key, num_draws)

    def draws(keys, Q):
        dpp_keys, rest_keys, order_keys = _split3(keys)
        core = _projection_part(dpp_keys, Q)
        if k > d:

            def uniform_rest(key, chosen):
                score = jax.random.gumbel(key, (n,), Q.dtype).at[chosen].set(-jnp.inf)
                return jax.lax.top_k(score, k - d)[1].astype(jnp.int32)

            core = jnp.concatenate([core, jax.vmap(uniform_rest)(rest_keys, core)], axis=1)
        return _checks.poison(_shuffle(order_keys, core), Q)

    return _checks.unbatch(_checks.map_draws(draws, keys, Q), single)


def volume_rescaled_sample(
    key: Any, X: ArrayLike, k: int, *, num_draws: int | None = None
) -> Array:
    """An ordered ``k``-tuple of rows (repeats allowed) from volume-rescaled sampling.

    ``d`` rows from the projection DPP of ``X``'s column space, ``k - d`` i.i.d.
    rows from the leverage distribution ``q_i = ||Q_i||^2 / d``, shuffled.

    Args:
      key: a PRNG key, or a batch of keys ``(B,)``.
      X: ``(N, d)`` full column rank.
      k: static tuple length, ``k >= d``.
      num_draws: static number of draws from one key.

    Returns:
      ``int32[k]`` or ``int32[B, k]`` row indices.
    """
    Q = column_basis(X)
    n, d = Q.shape
    k = _check_k(k, n, d, distinct=False)
    keys, single = _checks.as_keys(key, num_draws)

    def draws(keys, Q):
        dpp_keys, rest_keys, order_keys = _split3(keys)
        core = _projection_part(dpp_keys, Q)
        if k > d:
            log_q = jnp.log(jnp.sum(Q * Q, axis=1))
            extra = jax.vmap(lambda kk: jax.random.categorical(kk, log_q, shape=(k - d,)))(
                rest_keys
            )
            core = jnp.concatenate([core, extra.astype(jnp.int32)], axis=1)
        return _checks.poison(_shuffle(order_keys, core), Q)

    return _checks.unbatch(_checks.map_draws(draws, keys, Q), single)
