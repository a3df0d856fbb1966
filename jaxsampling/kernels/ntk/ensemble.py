"""Finite ensembles: ``M`` two-layer networks trained on the basis vectors, evaluated on every input.

:class:`TwoLayer` is the flax module of :mod:`.closed_form` (no biases, both
layers trained). :func:`train` runs ``M`` independent networks, one key each,
through full-batch gradient descent (any optax transformation; plain
``optax.sgd`` by default) on ``L = (1/2k) sum_i |f(e_i) - e_pi(i)|^2``: one
jitted ``lax.scan`` of vmapped steps. With the keys sharded over an explicit
mesh axis each device trains its own networks (``jax.shard_map``, no
collective) and the parameters stay sharded.

:func:`evaluate` streams the ``2^k - 1`` inputs through the ensemble in
chunks of ``chunk_size`` (one ``lax.scan``; memory ``M * chunk_size * width``
floats, so ``k = 20`` fits) and keeps, per chunk, only

* for each group size ``g``: the members split into ``M // g`` groups of ``g``
  consecutive networks; the number of inputs each group's average recovers,
  per rounding rule and Hamming weight;
* per network, the sum and sum of squares of its outputs per Hamming weight
  and target bit: the moments that the Gaussian-process law predicts
  (:func:`class_moments`).

The group averages need all members: on a sharded ensemble each chunk's
outputs (``M * chunk_size * k`` floats) are all-gathered.

Example:
  >>> import jax, jax.numpy as jnp
  >>> from jaxsampling.kernels import ntk
  >>> perm = jnp.array([2, 0, 3, 1])
  >>> keys = jax.random.split(jax.random.key(0), 8)
  >>> trained = ntk.train(keys, perm, width=64, steps=200, learning_rate=4.0)
  >>> bool(trained.final_loss.max() < 1e-10)
  True
  >>> stats = ntk.evaluate(trained.params, perm, group_sizes=(8,))
  >>> stats.recovered[0].shape  # [groups, rules, k]
  (1, 3, 4)
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxsampling import sharding
from jaxsampling.kernels import _args
from jaxsampling.kernels.ntk import closed_form
from jaxsampling.kernels.ntk.permutation import (
    binary_inputs,
    check_permutation,
    permutation_posterior,
    targets,
    training_set,
)
from jaxsampling.kernels.ntk.rounding import RULES, midpoint_thresholds, round_outputs
from jaxsampling.types import Array, ArrayLike

#: Default budget of hidden activations per evaluation chunk (floats).
CHUNK_FLOATS = 2**24
#: Default dead zone of the sign rule on trained networks (see :func:`evaluate`).
SIGN_TOLERANCE = 1e-4


class TwoLayer(nn.Module):
    """``f(x) = m^-1/2 W2 phi(d^-1/2 W1 x)`` (NTK) or ``W2 phi(W1 x)`` (standard), no biases.

    Attributes:
        width: Hidden units ``m``.
        outputs: Output dimension.
        activation: ``"relu"`` or ``"erf"``.
        parameterization: ``"ntk"`` (weights ``N(0, 1)``, scaled in the forward
            pass) or ``"standard"`` (weights ``N(0, 1/fan_in)``).
    """

    width: int
    outputs: int
    activation: str = "relu"
    parameterization: str = "ntk"

    @nn.compact
    def __call__(self, x: Array) -> Array:
        closed_form.check_options(self.activation, self.parameterization, self.width)
        d = x.shape[-1]
        ntk = self.parameterization == "ntk"
        std1, std2 = (1.0, 1.0) if ntk else (d**-0.5, self.width**-0.5)
        w1 = self.param("w1", nn.initializers.normal(std1), (d, self.width))
        w2 = self.param("w2", nn.initializers.normal(std2), (self.width, self.outputs))
        phi = jax.nn.relu if self.activation == "relu" else jax.lax.erf
        pre = x @ w1
        if ntk:
            pre = pre * d**-0.5
        out = phi(pre) @ w2
        return out * self.width**-0.5 if ntk else out


class Trained(NamedTuple):
    """The trained ensemble.

    Attributes:
        params: flax parameters with a leading ``[M]`` axis.
        losses: ``[M, steps]`` training loss before each step.
        final_loss: ``[M]`` loss after the last step.
    """

    params: Any
    losses: Array
    final_loss: Array


class EnsembleStats(NamedTuple):
    """What :func:`evaluate` keeps of the ensemble's outputs on all inputs.

    Attributes:
        recovered: One ``int32[M // g, len(RULES), k]`` per group size ``g``: inputs of
            Hamming weight ``h`` (index ``h - 1``) that each group's average recovers.
        output_sum: ``[M, k, 2]`` per network, sum of its outputs over inputs of
            weight ``h`` whose target bit is 1 (``[..., 0]``) or 0 (``[..., 1]``).
        output_sq_sum: ``[M, k, 2]`` the same for squared outputs.
        counts: ``int32[k, 2]`` number of (input, output) pairs in each class.
    """

    recovered: tuple[Array, ...]
    output_sum: Array
    output_sq_sum: Array
    counts: Array


def _check_options(width, activation, parameterization) -> None:
    _args.check_int(width, "width")
    closed_form.check_options(activation, parameterization, width)


def train(
    keys: Array,
    permutation: ArrayLike,
    *,
    width: int,
    steps: int,
    optimizer: optax.GradientTransformation | None = None,
    learning_rate: float = 1.0,
    activation: str = "relu",
    parameterization: str = "ntk",
) -> Trained:
    """Trains one network per key on the ``k`` basis vectors.

    Args:
        keys: ``key[M]``, e.g. ``jax.random.split(key, M)``; shard them to shard
            the ensemble.
        permutation: The permutation ``pi`` (concrete; ``k >= 2``).
        width: Hidden units per network (``>= 1``).
        steps: Full-batch steps.
        optimizer: Any optax transformation; default ``optax.sgd(learning_rate)``
            (gradient descent, whose ``steps -> infinity`` limit is
            :func:`.permutation_posterior` at ``t = None``).
        learning_rate: Used only by the default optimizer.
        activation, parameterization: The network (:class:`TwoLayer`).

    Returns:
        :class:`Trained`.
    """
    perm = check_permutation(permutation)
    _check_options(width, activation, parameterization)
    _args.check_int(steps, "steps", minimum=0)
    keys = jnp.asarray(keys)
    if keys.ndim != (1 if jnp.issubdtype(keys.dtype, jax.dtypes.prng_key) else 2):
        raise ValueError(f"keys must be a batch of keys key[M], got {keys.dtype}{list(keys.shape)}")
    k = perm.shape[0]
    net = TwoLayer(width, k, activation, parameterization)
    optimizer = optimizer or optax.sgd(learning_rate)
    x, y = training_set(perm)

    def loss_fn(params, x, y):
        residual = net.apply(params, x) - y
        return 0.5 * jnp.mean(jnp.sum(residual * residual, axis=-1))

    def one(key, x, y):
        params = net.init(key, x)

        def step(carry, _):
            params, state = carry
            loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
            updates, state = optimizer.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), loss

        (params, _), losses = jax.lax.scan(step, (params, optimizer.init(params)), length=steps)
        return Trained(params, losses, loss_fn(params, x, y))

    return sharding.map_batch(jax.vmap(one, in_axes=(0, None, None)), keys, x, y)


def default_chunk_size(num_models: int, width: int, k: int) -> int:
    """The largest power of two ``<= 2^k`` with ``M * chunk * width <= CHUNK_FLOATS``."""
    fit = max(1, CHUNK_FLOATS // (num_models * width))
    return min(2 ** int(math.log2(fit)), 2**k)


def evaluate(
    params: Any,
    permutation: ArrayLike,
    *,
    group_sizes: tuple[int, ...] = (),
    thresholds: ArrayLike | None = None,
    chunk_size: int | None = None,
    sign_tolerance: float = SIGN_TOLERANCE,
    activation: str = "relu",
    parameterization: str = "ntk",
) -> EnsembleStats:
    """Streams all ``2^k - 1`` inputs through the ensemble (see the module docstring).

    Args:
        params: Trained parameters with a leading ``[M]`` axis (:func:`train`).
        permutation: The permutation the ensemble learned.
        group_sizes: Ensemble sizes ``g`` to score (each ``1 <= g <= M``).
        thresholds: ``[k]`` thresholds of the ``"threshold"`` rule; default the
            infinite-width midpoints (:func:`.midpoint_thresholds`).
        chunk_size: Inputs per chunk (default :func:`default_chunk_size`).
        sign_tolerance: On the training inputs (weight 1) the ``"sign"`` rule's bit
            is ``output > sign_tolerance`` (:func:`.round_outputs`): a trained
            network reproduces a training input's zero bit only up to its
            training residual (``~1e-7`` in float32, of either sign), which the
            paper's strict ``> 0`` misrounds half of the time. Every other input
            is rounded at exactly ``0``, as the predictions assume.
        activation, parameterization: The network the parameters belong to.

    Returns:
        :class:`EnsembleStats`.
    """
    perm = check_permutation(permutation)
    k = perm.shape[0]
    w1 = params["params"]["w1"]
    num_models, width = w1.shape[0], w1.shape[-1]
    _check_options(width, activation, parameterization)
    if w1.shape != (num_models, k, width):
        raise ValueError(f"params hold [{num_models}, {w1.shape[1]}, .] first layers; the permutation has k = {k}")
    for g in group_sizes:
        _args.check_int(g, "group size")
        if g > num_models:
            raise ValueError(f"group size {g} exceeds the ensemble size {num_models}")
    chunk = chunk_size or default_chunk_size(num_models, width, k)
    _args.check_int(chunk, "chunk_size")
    if thresholds is None:
        thresholds = midpoint_thresholds(
            permutation_posterior(k, activation=activation, parameterization=parameterization, width=width)
        )
    thresholds = jnp.asarray(thresholds)
    if thresholds.shape != (k,):
        raise ValueError(f"thresholds must be [{k}] (one per Hamming weight), got {thresholds.shape}")
    net = TwoLayer(width, k, activation, parameterization)
    num_chunks = -(-(2**k - 1) // chunk)
    dtype = w1.dtype

    def outputs(params, x):
        return jax.vmap(net.apply, in_axes=(0, None))(params, x)

    def body(carry, index):
        codes = 1 + index * chunk + jnp.arange(chunk, dtype=jnp.int32)
        valid = codes < 2**k
        x = binary_inputs(jnp.where(valid, codes, 1), k, dtype)
        target = targets(x, perm)
        weight = jnp.sum(x, axis=-1).astype(jnp.int32)
        tolerance = jnp.where(weight == 1, sign_tolerance, 0.0).astype(dtype)
        preds = sharding.map_batch(outputs, params, x)  # [M, chunk, k]
        by_weight = jax.nn.one_hot(weight - 1, k, dtype=dtype) * valid[:, None]
        by_class = jnp.stack([target, 1 - target], axis=-1)  # [chunk, k, 2]
        out_sum = jnp.einsum("mcj,cjb,ch->mhb", preds, by_class, by_weight)
        out_sq = jnp.einsum("mcj,cjb,ch->mhb", preds * preds, by_class, by_weight)
        everyone = sharding.unshard(preds)
        recovered = []
        for g in group_sizes:
            groups = num_models // g
            means = everyone[: groups * g].reshape(groups, g, chunk, k).mean(axis=1)
            hits = []
            for rule in RULES:
                bits = round_outputs(
                    means, rule, weights=weight, thresholds=thresholds, tolerance=tolerance
                )
                ok = jnp.all(bits == target.astype(jnp.int32), axis=-1) & valid
                hits.append(ok.astype(jnp.int32) @ by_weight.astype(jnp.int32))
            recovered.append(jnp.stack(hits, axis=1))
        sums, squares, counts = carry[:3]
        new = [sums + out_sum, squares + out_sq]
        counted = jnp.einsum("cjb,ch->hb", by_class.astype(jnp.int32), by_weight.astype(jnp.int32))
        return (*new, counts + counted, *[
            r + d for r, d in zip(carry[3:], recovered)
        ]), None

    zeros = jnp.zeros((num_models, k, 2), dtype)
    init = (
        sharding.reshard_like(zeros, sharding.explicit_batch_axis(w1)),
        sharding.reshard_like(zeros, sharding.explicit_batch_axis(w1)),
        jnp.zeros((k, 2), jnp.int32),
        *[jnp.zeros((num_models // g, len(RULES), k), jnp.int32) for g in group_sizes],
    )
    final, _ = jax.lax.scan(body, init, jnp.arange(num_chunks))
    return EnsembleStats(tuple(final[3:]), final[0], final[1], final[2])


class ClassMoments(NamedTuple):
    """Per Hamming weight and target bit, ``[k, 2]`` each (bit 1 first; NaN for no such output).

    Attributes:
        mean: Average output over networks and inputs.
        mean_se: Its standard error, from the spread between networks.
        variance: Average squared deviation of one network's outputs from ``mean``.
        variance_se: Its standard error, from the spread between networks.
    """

    mean: Array
    mean_se: Array
    variance: Array
    variance_se: Array


def class_moments(stats: EnsembleStats) -> ClassMoments:
    """Mean and variance of one network's output per class, with errors over networks.

    Networks are independent, inputs within a network are not: each
    network's per-class averages are one sample, and the standard errors
    come from their spread over the ``M`` networks.
    """
    counts = jnp.maximum(stats.counts, 1).astype(stats.output_sum.dtype)
    first = stats.output_sum / counts  # [M, k, 2]
    second = stats.output_sq_sum / counts
    m = first.shape[0]
    mean = jnp.mean(first, axis=0)
    per_network = second - 2 * first * mean + mean * mean  # mean squared deviation from `mean`
    variance = jnp.mean(per_network, axis=0)
    moments = ClassMoments(
        mean,
        jnp.std(first, axis=0, ddof=1) / jnp.sqrt(m),
        variance,
        jnp.std(per_network, axis=0, ddof=1) / jnp.sqrt(m),
    )
    return jax.tree.map(lambda v: jnp.where(stats.counts > 0, v, jnp.nan), moments)
