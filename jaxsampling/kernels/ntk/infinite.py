"""Infinite-width ensemble predictions after gradient descent on MSE, by dense linear algebra.

For any training set ``(X, Y)`` (``n`` rows) and test inputs ``x``: an
infinitely wide network trained by gradient flow on
``L = (1/2n) sum_i |f(x_i) - y_i|^2`` with learning rate ``eta`` for time ``t``
is, over random initialisations, a Gaussian process (Lee et al., 2019) with

.. math::

   A &= \\Theta_{XX}^{-1} (I - e^{-\\eta t \\Theta_{XX} / n}),\\qquad
   G = \\Theta_{xX} A, \\\\
   \\mu(x) &= G\\, Y, \\\\
   \\Sigma(x, x') &= K_{xx'} + G K_{XX} G'^T - G K_{Xx'} - K_{xX} G'^T,

the same for every output (outputs are independent). ``t = None`` is
convergence (``A = Theta^-1``, a pseudo-inverse on a singular ``Theta``);
``steps`` replaces the flow by ``steps`` gradient-descent steps,
``E = (I - eta Theta / n)^steps``. One ``eigh`` of the ``n x n`` training NTK;
the marginal variances cost ``O(n_test n^2)`` and the full covariance is formed
only when asked.

At convergence, test inputs equal to a training input get that input's target
and zero variance exactly (``snap_training_inputs``): in float32 the linear
algebra leaves ``~1e-7`` where the answer is ``0``, enough to flip a strict
``> 0`` rounding.

Example:
  >>> import jax.numpy as jnp
  >>> from jaxsampling.kernels import ntk
  >>> X, Y = ntk.training_set(jnp.array([1, 2, 0]))
  >>> pred = ntk.predict(X, Y, ntk.all_inputs(3))
  >>> bool((pred.mean[:1] == Y[:1]).all()), float(pred.variance[0])  # row 0 is e_1
  (True, 0.0)
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp

from jaxsampling.kernels.ntk import closed_form
from jaxsampling.types import Array, ArrayLike


def fitted_fraction(eigenvalues: Array, n: int, learning_rate, t, steps) -> Array:
    """``1 - exp(-eta t lambda / n)`` (gradient flow) or ``1 - (1 - eta lambda / n)^steps`` (GD).

    The part of the residual along an eigenvector of the training NTK (eigenvalue
    ``lambda``) that training has removed: 1 at convergence (``t = steps = None``).

    Raises:
        ValueError: both ``t`` and ``steps``; a negative ``t``; ``steps`` not an
            int ``>= 0``; ``learning_rate <= 0`` (when concrete).
    """
    if t is not None and steps is not None:
        raise ValueError("give at most one of t (gradient flow) and steps (gradient descent)")
    if isinstance(t, (int, float)) and t < 0:
        raise ValueError(f"t must be >= 0, got {t}")
    if steps is not None and (isinstance(steps, bool) or int(steps) != steps or steps < 0):
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")
    if isinstance(learning_rate, (int, float)) and learning_rate <= 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
    rate = learning_rate * eigenvalues / n
    if steps is not None:
        return 1 - (1 - rate) ** steps
    if t is None:
        return jnp.ones_like(eigenvalues)
    return -jnp.expm1(-rate * t)


class Prediction(NamedTuple):
    """The ensemble's law on the test inputs.

    Attributes:
        mean: ``[n_test, outputs]``.
        variance: ``[n_test]`` marginal variance of each output.
        covariance: ``[n_test, n_test]`` when asked for, else ``None``.
    """

    mean: Array
    variance: Array
    covariance: Array | None = None


def gradient_descent_mse(
    train: closed_form.Kernels,
    test_train: closed_form.Kernels,
    test_test: closed_form.Kernels,
    y_train: ArrayLike,
    *,
    t: float | None = None,
    steps: int | None = None,
    learning_rate: float = 1.0,
    full_covariance: bool = False,
) -> Prediction:
    """The ensemble's mean and (co)variance from precomputed kernels.

    Args:
        train: Kernels ``[n, n]`` between the training inputs.
        test_train: Kernels ``[n_test, n]``.
        test_test: Kernels at the test inputs: the diagonal ``[n_test]``, or the
            full ``[n_test, n_test]`` when ``full_covariance``.
        y_train: Targets ``[n, outputs]``.
        t, steps, learning_rate: Training time, as in the module docstring.
        full_covariance: Also return the test-by-test covariance.

    Returns:
        :class:`Prediction`.
    """
    y_train = jnp.asarray(y_train)
    n = train.ntk.shape[0]
    if train.ntk.shape != (n, n) or y_train.ndim != 2 or y_train.shape[0] != n:
        raise ValueError(
            f"train kernels must be [n, n] and y_train [n, outputs], got {train.ntk.shape}"
            f" and {y_train.shape}"
        )
    if test_train.ntk.ndim != 2 or test_train.ntk.shape[1] != n:
        raise ValueError(f"test_train kernels must be [n_test, {n}], got {test_train.ntk.shape}")
    expected = 2 if full_covariance else 1
    if test_test.nngp.ndim != expected:
        raise ValueError(
            f"test_test must be {'[n_test, n_test]' if full_covariance else 'the diagonal [n_test]'}"
            f" here, got shape {test_test.nngp.shape}"
        )
    lam, vecs = jnp.linalg.eigh(train.ntk)
    tiny = jnp.finfo(lam.dtype).eps * n * jnp.max(jnp.abs(lam))
    if t is None and steps is None:
        coef = jnp.where(lam > tiny, 1 / jnp.where(lam > tiny, lam, 1.0), 0.0)
    else:
        safe = jnp.where(jnp.abs(lam) > tiny, lam, 1.0)
        flat = (learning_rate / n) * (t if t is not None else steps)  # the lambda -> 0 limit
        coef = jnp.where(jnp.abs(lam) > tiny, fitted_fraction(safe, n, learning_rate, t, steps) / safe, flat)
    a = (vecs * coef) @ vecs.T
    g = test_train.ntk @ a  # [n_test, n]
    mean = g @ y_train.astype(g.dtype)
    gk = g @ train.nngp
    diag = test_test.nngp if not full_covariance else jnp.diagonal(test_test.nngp)
    variance = diag + jnp.sum(gk * g, axis=1) - 2 * jnp.sum(g * test_train.nngp, axis=1)
    covariance = None
    if full_covariance:
        cross = g @ test_train.nngp.T
        covariance = test_test.nngp + gk @ g.T - cross - cross.T
    return Prediction(mean, jnp.maximum(variance, 0.0), covariance)


def predict(
    x_train: ArrayLike,
    y_train: ArrayLike,
    x_test: ArrayLike,
    *,
    t: float | None = None,
    steps: int | None = None,
    learning_rate: float = 1.0,
    activation: str = "relu",
    parameterization: str = "ntk",
    width: int | None = None,
    full_covariance: bool = False,
    snap_training_inputs: bool = True,
) -> Prediction:
    """The infinite ensemble of two-layer networks trained on ``(x_train, y_train)``.

    Args:
        x_train: ``[n, d]`` training inputs.
        y_train: ``[n, outputs]`` targets.
        x_test: ``[n_test, d]`` test inputs.
        t, steps, learning_rate: Training time (``None``: convergence).
        activation, parameterization, width: The network, as in
            :func:`.closed_form.two_layer`.
        full_covariance: Also return the ``[n_test, n_test]`` covariance.
        snap_training_inputs: At convergence, give test inputs that equal a
            training input its target and zero (co)variance exactly.

    Returns:
        :class:`Prediction`.
    """
    options = dict(activation=activation, parameterization=parameterization, width=width)
    x_train = closed_form.check_inputs(x_train, "x_train")
    x_test = closed_form.check_inputs(x_test, "x_test")
    if x_test.shape[1] != x_train.shape[1]:
        raise ValueError(f"x_test needs {x_train.shape[1]} columns like x_train, got {x_test.shape}")
    y_train = jnp.asarray(y_train)
    if y_train.ndim != 2 or y_train.shape[0] != x_train.shape[0]:
        raise ValueError(f"y_train must be [{x_train.shape[0]}, outputs], got {y_train.shape}")
    prediction = gradient_descent_mse(
        closed_form.two_layer(x_train, **options),
        closed_form.two_layer(x_test, x_train, **options),
        closed_form.two_layer(x_test, x_test, diagonal=not full_covariance, **options),
        y_train,
        t=t, steps=steps, learning_rate=learning_rate, full_covariance=full_covariance,
    )
    if not snap_training_inputs or t is not None or steps is not None:
        return prediction
    same = jnp.all(x_test[:, None, :] == x_train[None, :, :], axis=-1)  # [n_test, n]
    first = same & (jnp.cumsum(same, axis=1) == 1)
    hit = jnp.any(same, axis=1)
    mean = jnp.where(hit[:, None], first.astype(y_train.dtype) @ y_train, prediction.mean)
    variance = jnp.where(hit, 0.0, prediction.variance)
    covariance = prediction.covariance
    if covariance is not None:
        covariance = jnp.where(hit[:, None] | hit[None, :], 0.0, covariance)
    return Prediction(mean.astype(prediction.mean.dtype), variance, covariance)
