r"""Which training examples each epoch sees: repeated random subsets and static selectors.

**Repeated random subsets (RS2, without replacement).** Okanovic et al.,
"Repeated Random Sampling for Minimizing the Time-to-Accuracy of Learning"
(2023): each epoch trains on ``size`` examples drawn uniformly, without
replacement *across* epochs: a round of ``n // size`` epochs walks through
consecutive blocks of one random permutation of the ``n`` examples, so no
example is seen twice within a round (:func:`rs2_epoch`). When ``size`` does
not divide ``n``, the last ``n mod size`` examples of each round's
permutation wait for a later round (a fresh permutation each round).

**Static selectors** choose one subset of ``size`` examples before training
(:func:`select`), which is then reshuffled every epoch (:func:`static_epoch`):

* ``uniform``: a uniform subset.
* ``kmeans``: diversity by clustering ("Diversify and Conquer", Yu et al.
  2024): k-means (:mod:`jaxsampling.kernels.kmeans`) on the features, the
  budget split over clusters in proportion to ``cluster size x cluster
  weight`` (largest remainders, capped at each cluster's size), uniform within
  each cluster. The weights start at 1; their iterative refinement re-weights
  the clusters by the current model's loss (:func:`cluster_budget`, used by
  :mod:`jaxsampling.train.rs2`).
* ``leverage``: a sensitivity coreset: ``size`` distinct rows drawn by
  successive sampling with probabilities :math:`\propto \ell_i + d / n`,
  where :math:`\ell` are the leverage scores of ``[features, 1]``
  (:mod:`jaxsampling.kernels.leverage`) and :math:`d / n` their mean: the
  standard upper bound on the sensitivity of a row for logistic-type losses.
* ``dpp``: a k-DPP (:mod:`jaxsampling.kernels.dpp`) of size ``size`` with the
  Gaussian kernel :math:`\exp(-|x_i - x_j|^2 / h)`, ``h`` the median squared
  distance: subsets of mutually distant examples are favoured.

Every function is a pure function of its key / seed, so the batches of any
step can be rebuilt on restart.

Example:
    >>> import numpy as np
    >>> order = [rs2_epoch(0, e, n=10, size=5) for e in range(2)]
    >>> sorted(np.concatenate(order).tolist()) == list(range(10))
    True
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxsampling.kernels import dpp, kmeans, leverage

__all__ = [
    "SELECTORS",
    "cluster_budget",
    "cluster_labels",
    "diversity",
    "epoch_batches",
    "rs2_epoch",
    "select",
    "static_epoch",
]

SELECTORS = ("uniform", "kmeans", "leverage", "dpp")


def rs2_epoch(seed: int, epoch: int, n: int, size: int) -> np.ndarray:
    """The ``size`` examples of ``epoch`` under RS2 without replacement, in training order.

    Args:
        seed: the run's data seed.
        epoch: the epoch number (0-based).
        n: the number of training examples.
        size: examples per epoch, ``1 <= size <= n``.

    Returns:
        int64[size] distinct indices.
    """
    if not 1 <= size <= n:
        raise ValueError(f"size must be in [1, n = {n}], got {size}")
    per_round = n // size
    round_, slot = divmod(int(epoch), per_round)
    order = np.random.default_rng([seed, 0, round_]).permutation(n)
    return order[slot * size : (slot + 1) * size]


def static_epoch(seed: int, epoch: int, subset: np.ndarray) -> np.ndarray:
    """``subset`` reshuffled for ``epoch`` (a fresh permutation per epoch)."""
    subset = np.asarray(subset)
    return subset[np.random.default_rng([seed, 1, int(epoch)]).permutation(len(subset))]


def epoch_batches(
    epoch_order: Any, first_step: int, num_steps: int, batch_size: int, steps_per_epoch: int
) -> np.ndarray:
    """The example indices ``int[num_steps, batch_size]`` of steps ``first_step ..``.

    Args:
        epoch_order: ``epoch -> int[>= steps_per_epoch * batch_size]``, the
            epoch's examples in order (the tail past whole batches is dropped).
        first_step: the first step.
        num_steps: how many steps.
        batch_size: rows per step.
        steps_per_epoch: steps in one epoch.
    """
    rows = []
    cache: dict[int, np.ndarray] = {}
    for step in range(first_step, first_step + num_steps):
        epoch, within = divmod(step, steps_per_epoch)
        if epoch not in cache:
            cache[epoch] = np.asarray(epoch_order(epoch))
        rows.append(cache[epoch][within * batch_size : (within + 1) * batch_size])
    return np.stack(rows)


def cluster_budget(
    labels: np.ndarray, weights: np.ndarray, budget: int, available: np.ndarray | None = None
) -> np.ndarray:
    """How many examples to take from each cluster.

    ``budget`` is split in proportion to ``available count x weight`` by
    largest remainders, never more than a cluster has; what a full cluster
    cannot take goes to the others.

    Args:
        labels: int[n] cluster of each example.
        weights: float[k] cluster weights, ``>= 0``.
        budget: the number of examples to take.
        available: bool[n], examples that may be taken (default all).

    Returns:
        int64[k] counts summing to ``budget``.
    """
    labels = np.asarray(labels)
    weights = np.asarray(weights, np.float64)
    k = weights.shape[0]
    if available is None:
        available = np.ones(labels.shape[0], bool)
    counts = np.bincount(labels[available], minlength=k)
    if budget > counts.sum():
        raise ValueError(f"budget {budget} exceeds the {counts.sum()} available examples")
    take = np.zeros(k, np.int64)
    while take.sum() < budget:
        room = counts - take
        share = np.where(room > 0, counts * weights, 0.0)
        if share.sum() <= 0:
            share = (room > 0).astype(np.float64)
        left = budget - take.sum()
        exact = left * share / share.sum()
        extra = np.minimum(np.floor(exact).astype(np.int64), room)
        remainder = left - extra.sum()
        if remainder > 0:
            order = np.argsort(-(exact - np.floor(exact)), kind="stable")
            for c in order:
                if remainder == 0:
                    break
                if extra[c] < room[c]:
                    extra[c] += 1
                    remainder -= 1
        take += extra
    return take


def cluster_labels(seed: int, features: Any, num_clusters: int) -> np.ndarray:
    """k-means cluster of every example (greedy k-means++ seeds from ``seed``)."""
    result = kmeans.kmeans(
        jax.random.key(seed),
        jnp.asarray(features, jnp.float32),
        num_clusters,
        num_candidates=2 + int(np.log(num_clusters)),
    )
    return np.asarray(result.assignments)


def diversity(
    seed: int,
    labels: np.ndarray,
    weights: np.ndarray,
    budget: int,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """``budget`` examples spread over clusters by :func:`cluster_budget`, uniform within.

    Args:
        seed: the draw's seed.
        labels: int[n] clusters.
        weights: float[k] cluster weights (1: in proportion to cluster sizes).
        budget: how many to take.
        exclude: indices already taken (not drawn again).

    Returns:
        int64[budget] sorted indices.
    """
    labels = np.asarray(labels)
    available = np.ones(labels.shape[0], bool)
    if exclude is not None:
        available[np.asarray(exclude)] = False
    take = cluster_budget(labels, weights, budget, available)
    rng = np.random.default_rng([seed, 3])
    chosen = []
    for c, count in enumerate(take):
        members = np.flatnonzero((labels == c) & available)
        chosen.append(rng.choice(members, size=int(count), replace=False))
    return np.sort(np.concatenate(chosen))


def _successive(key: Any, probabilities: np.ndarray, size: int) -> np.ndarray:
    """``size`` distinct indices by successive sampling (Gumbel top-k of log p)."""
    gumbel = jax.random.gumbel(key, probabilities.shape, jnp.float32)
    scores = np.log(probabilities) + np.asarray(gumbel, np.float64)
    return np.sort(np.argsort(-scores, kind="stable")[:size])


def _pca(features: np.ndarray, dims: int) -> np.ndarray:
    x = np.asarray(features, np.float64)
    x = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    keep = min(dims, int(np.sum(s > s[0] * 1e-6)))
    return x @ vt[:keep].T


def select(
    method: str,
    seed: int,
    features: Any,
    size: int,
    *,
    num_clusters: int = 10,
    pca_dims: int = 32,
) -> np.ndarray:
    """A static subset of ``size`` distinct example indices (sorted).

    Args:
        method: one of :data:`SELECTORS`.
        seed: the selection seed.
        features: float[n, d] the examples' features.
        size: the subset size, ``1 <= size <= n``.
        num_clusters: clusters of ``kmeans``.
        pca_dims: ``leverage`` and ``dpp`` work on this many principal
            components (the full-rank part of the features).

    Returns:
        int64[size] sorted indices.
    """
    features = np.asarray(features, np.float32)
    n = features.shape[0]
    if not 1 <= size <= n:
        raise ValueError(f"size must be in [1, n = {n}], got {size}")
    key = jax.random.key(seed)
    if method == "uniform":
        return np.sort(np.random.default_rng([seed, 2]).choice(n, size, replace=False))
    if method == "kmeans":
        labels = cluster_labels(seed, features, num_clusters)
        return diversity(seed, labels, np.ones(num_clusters), size)
    if method == "leverage":
        z = _pca(features, pca_dims)
        design = jnp.asarray(np.c_[z, np.ones(n)], jnp.float32)
        scores = np.asarray(leverage.leverage_scores(design), np.float64)
        probabilities = scores + scores.mean()
        return _successive(key, probabilities / probabilities.sum(), size)
    if method == "dpp":
        z = _pca(features, pca_dims)
        norms = np.sum(z * z, axis=1)
        sq = np.maximum(norms[:, None] + norms[None, :] - 2.0 * z @ z.T, 0.0)
        kernel = np.exp(-sq / np.median(sq))
        spectrum = dpp.spectrum_from_likelihood(jnp.asarray(kernel, jnp.float32))
        draw = dpp.sample_k(key, spectrum, size, method="rejection")
        return np.sort(np.asarray(draw))
    raise ValueError(f"unknown selector {method!r}; known: {SELECTORS}")
