"""The permutation task in closed form: every kernel value and prediction per Hamming weight.

The task (Giapitzakis, Back de Luca & Fountoulakis, 2025): learn a fixed
permutation ``pi`` of ``k`` bits from the ``k`` standard basis vectors only,
``e_i -> e_pi(i)``, then predict all ``2^k - 1`` nonzero binary inputs: the
target of ``x`` has ``x_i`` at output ``pi(i)``.

**Kernels depend on Hamming weights.** Against a training input ``e_i``, a test
input ``x`` of weight ``h`` has inner products ``(h, 1, x_i)``, so only
``2k - 1`` test-train values exist (:func:`hamming_kernels`; ``x_i = 1`` needs
``h >= 1``, ``x_i = 0`` needs ``h <= k - 1``). For the ReLU NTK
(:mod:`.closed_form`), with ``phi = arccos(1 / sqrt(h))``:

.. math::

   k\\,\\Theta(e_i, e_j) = (1 - \\tfrac{1}{2\\pi}) \\delta_{ij} + \\tfrac{1}{2\\pi},\\qquad
   k\\,\\Theta(x, e_i) = \\begin{cases}
     (\\sqrt{h - 1} + 2 (\\pi - \\phi)) / (2\\pi) & x_i = 1\\\\
     \\sqrt{h} / (2\\pi) & x_i = 0. \\end{cases}

**Predictions per Hamming weight.** The training kernels are ``a I + b 1 1^T``:
every function of them (inverse, ``exp(-eta t Theta / n)``, products) is of the
same form, with eigenvalue ``a`` on ``1^perp`` and ``a + k b`` on ``1``. The
infinite-width ensemble after gradient flow on ``L = (1/2n) sum_i |f(x_i) - y_i|^2``
for time ``t`` (``n = k``; :func:`.infinite.predict` has the general form) has, for an
output whose target bit is ``1`` or ``0`` and ``A = Theta^{-1}(I - e^{-eta t Theta / n})``,

.. math::

   \\mu_b(h) = [A\\, \\theta(x)]_{i:\\, x_i = b}, \\qquad
   \\sigma^2(h) = K(x, x) + \\theta^T A K A\\, \\theta - 2\\, \\theta^T A\\, \\kappa,

with ``theta = Theta(X, x)`` and ``kappa = K(X, x)``: ``O(1)`` per weight,
``O(k)`` for all ``2^k - 1`` inputs. At ``t = infinity`` a training input
(``h = 1``) is reproduced exactly: ``mu_1(1) = 1``, ``mu_0(1) = 0``,
``sigma^2(1) = 0`` (set exactly, so float32 round-off cannot flip a zero bit).

Example (k = 12; Giapitzakis et al.'s figures):
  >>> from jaxsampling.kernels import ntk
  >>> post = ntk.permutation_posterior(12)
  >>> [round(float(v[1]), 4) for v in post]  # h = 2
  [0.8012, -0.0123, 0.0108]
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxsampling.kernels.ntk import closed_form
from jaxsampling.kernels.ntk.infinite import fitted_fraction
from jaxsampling.types import Array, ArrayLike


class HammingKernels(NamedTuple):
    """The distinct kernel values of the permutation task (``[k]`` arrays index ``h - 1``).

    Attributes:
        train_diagonal: ``Kernels`` at ``(e_i, e_i)`` (scalars).
        train_off_diagonal: ``Kernels`` at ``(e_i, e_j)``, ``i != j`` (scalars).
        test_one: ``Kernels`` at ``(x, e_i)`` with ``|x| = h``, ``x_i = 1``.
        test_zero: ``Kernels`` at ``(x, e_i)`` with ``|x| = h``, ``x_i = 0`` (the
            ``h = k`` entry is the formula's value; no such input exists).
        test_diagonal: ``Kernels`` at ``(x, x)``.
    """

    train_diagonal: closed_form.Kernels
    train_off_diagonal: closed_form.Kernels
    test_one: closed_form.Kernels
    test_zero: closed_form.Kernels
    test_diagonal: closed_form.Kernels


class HammingPosterior(NamedTuple):
    """Infinite-width ensemble prediction per Hamming weight (``[k]`` arrays index ``h - 1``).

    Attributes:
        mean_one: Mean of an output whose target bit is 1.
        mean_zero: Mean of an output whose target bit is 0 (``h = k``: formula value).
        variance: Marginal variance of every output of a weight-``h`` input.
    """

    mean_one: Array
    mean_zero: Array
    variance: Array


def check_num_bits(k: int) -> int:
    """``k`` as an int ``>= 2``, or ``ValueError``."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
        raise ValueError(f"k (the number of bits) must be an int >= 2, got {k!r}")
    return int(k)


def check_permutation(permutation: ArrayLike) -> np.ndarray:
    """A concrete permutation of ``0 .. k-1`` as an int32 numpy array, or ``ValueError``."""
    p = np.asarray(permutation)
    if p.ndim != 1 or not np.issubdtype(p.dtype, np.integer):
        raise ValueError(f"permutation must be a 1-D int array, got {p.dtype}{list(p.shape)}")
    check_num_bits(p.shape[0])
    if not np.array_equal(np.sort(p), np.arange(p.shape[0])):
        raise ValueError(f"permutation must hold each of 0 .. {p.shape[0] - 1} once, got {p.tolist()}")
    return p.astype(np.int32)


def training_set(permutation: ArrayLike, dtype=None) -> tuple[Array, Array]:
    """``(X, Y)``: the basis vectors ``e_i`` and their targets ``e_pi(i)``, ``[k, k]`` each."""
    p = check_permutation(permutation)
    dtype = dtype or jnp.result_type(float)
    k = p.shape[0]
    return jnp.eye(k, dtype=dtype), jax.nn.one_hot(p, k, dtype=dtype)


def binary_inputs(codes: ArrayLike, k: int, dtype=None) -> Array:
    """The binary vectors of the integers ``codes``: bit ``i`` of ``c`` is ``(c >> i) & 1``."""
    codes = jnp.asarray(codes)
    bits = (codes[..., None] >> jnp.arange(k, dtype=codes.dtype)) & 1
    return bits.astype(dtype or jnp.result_type(float))


def all_inputs(k: int, dtype=None) -> Array:
    """All ``2^k - 1`` nonzero binary inputs, row ``c - 1`` the bits of ``c``."""
    k = check_num_bits(k)
    return binary_inputs(jnp.arange(1, 2**k, dtype=jnp.int32), k, dtype)


def targets(inputs: Array, permutation: ArrayLike) -> Array:
    """The permuted inputs: output ``pi(i)`` of row ``x`` is ``x_i``."""
    p = jnp.asarray(permutation if isinstance(permutation, jax.core.Tracer) else check_permutation(permutation))
    if inputs.shape[-1] != p.shape[0]:
        raise ValueError(f"inputs have {inputs.shape[-1]} bits, the permutation {p.shape[0]}")
    inverse = jnp.zeros_like(p).at[p].set(jnp.arange(p.shape[0], dtype=p.dtype))
    return inputs[..., inverse]


def hamming_kernels(
    k: int, *, activation: str = "relu", parameterization: str = "ntk", width: int | None = None
) -> HammingKernels:
    """Every distinct kernel value of the task: ``O(k)`` work for ``2^k - 1`` inputs."""
    k = check_num_bits(k)
    h = jnp.arange(1, k + 1, dtype=jnp.result_type(float))
    one, zero = jnp.ones_like(h), jnp.zeros_like(h)

    def kernels(q11, q22, q12):
        return closed_form.from_inner_products(
            q11, q22, q12, k,
            activation=activation, parameterization=parameterization, width=width,
        )

    return HammingKernels(
        train_diagonal=kernels(1.0, 1.0, 1.0),
        train_off_diagonal=kernels(1.0, 1.0, 0.0),
        test_one=kernels(h, one, one),
        test_zero=kernels(h, one, zero),
        test_diagonal=kernels(h, h, h),
    )


def permutation_posterior(
    k: int,
    *,
    t: float | None = None,
    steps: int | None = None,
    learning_rate: float = 1.0,
    activation: str = "relu",
    parameterization: str = "ntk",
    width: int | None = None,
) -> HammingPosterior:
    """Mean and variance of the infinite ensemble on every input, per Hamming weight.

    Args:
        k: Number of bits (``>= 2``).
        t: Gradient-flow time on ``L = (1/2k) sum |f - y|^2`` with learning rate
            ``learning_rate``; ``None`` (with ``steps=None``) is convergence.
        steps: Alternatively, the number of full-batch gradient-descent steps.
        learning_rate: ``eta``.
        activation, parameterization, width: As in :func:`.closed_form.two_layer`.

    Returns:
        :class:`HammingPosterior`. The permutation does not matter: the
        prediction of output ``pi(i)`` depends only on ``x_i`` and ``|x|``.
    """
    kern = hamming_kernels(k, activation=activation, parameterization=parameterization, width=width)

    def eigen(diag, off):  # eigenvalues of diag I + off (1 1^T - I) on 1^perp and on 1
        return jnp.stack([diag - off, diag + (k - 1) * off])

    lam = eigen(kern.train_diagonal.ntk, kern.train_off_diagonal.ntk)
    nngp_lam = eigen(kern.train_diagonal.nngp, kern.train_off_diagonal.nngp)
    a = fitted_fraction(lam, k, learning_rate, t, steps) / lam  # A = Theta^-1 (I - E)
    b = a * a * nngp_lam  # A K A

    h = jnp.arange(1, k + 1, dtype=lam.dtype)

    def total(u1, u0):
        return h * u1 + (k - h) * u0

    def apply(m, u1, u0):  # [M u]_i at x_i = 1 and at x_i = 0
        shift = (m[1] - m[0]) * total(u1, u0) / k
        return m[0] * u1 + shift, m[0] * u0 + shift

    def quad(m, u1, u0, v1, v0):  # u^T M v
        return m[0] * (h * u1 * v1 + (k - h) * u0 * v0) + (m[1] - m[0]) * total(u1, u0) * total(
            v1, v0
        ) / k

    th1, th0 = kern.test_one.ntk, kern.test_zero.ntk
    ka1, ka0 = kern.test_one.nngp, kern.test_zero.nngp
    mean_one, mean_zero = apply(a, th1, th0)
    variance = (
        kern.test_diagonal.nngp
        + quad(b, th1, th0, th1, th0)
        - 2 * quad(a, th1, th0, ka1, ka0)
    )
    variance = jnp.maximum(variance, 0.0)
    if t is None and steps is None:  # h = 1 inputs are the training inputs: interpolated
        mean_one = mean_one.at[0].set(1.0)
        mean_zero = mean_zero.at[0].set(0.0)
        variance = variance.at[0].set(0.0)
    return HammingPosterior(mean_one, mean_zero, variance)


def select_by_bit(bits: Array, one: Array, zero: Array) -> Array:
    """``[n, k]``: ``one[h - 1]`` where a bit is set, ``zero[h - 1]`` where not, ``h`` the row's weight.

    Every per-(Hamming weight, bit) quantity of the task (the test-train kernels
    against ``e_i``, the mean of output ``pi(i)``) expands to all inputs this way.
    """
    weight = jnp.sum(bits, axis=-1).astype(jnp.int32)
    index = jnp.clip(weight - 1, 0, bits.shape[-1] - 1)
    return jnp.where(bits > 0, one[index][..., None], zero[index][..., None])


def expand(posterior: HammingPosterior, inputs: Array, permutation: ArrayLike) -> tuple[Array, Array]:
    """Per-input ``(mean [n, k], variance [n])`` from the per-weight posterior.

    ``inputs`` must be nonzero binary rows (the task's inputs; the zero input
    has no Hamming weight in the posterior).
    """
    if posterior.mean_one.shape[-1] != inputs.shape[-1]:
        raise ValueError(
            f"the posterior is for k = {posterior.mean_one.shape[-1]} bits, the inputs have {inputs.shape[-1]}"
        )
    weight = jnp.sum(inputs, axis=-1).astype(jnp.int32)
    index = jnp.clip(weight - 1, 0, inputs.shape[-1] - 1)
    mean = select_by_bit(targets(inputs, permutation), posterior.mean_one, posterior.mean_zero)
    return mean, posterior.variance[index]


def num_inputs_of_weight(k: int) -> np.ndarray:
    """``C(k, h)`` for ``h = 1 .. k`` as float64 numbers."""
    return np.array([math.comb(k, h) for h in range(1, k + 1)], dtype=np.float64)
