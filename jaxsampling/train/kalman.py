r"""A 1-D linear-Gaussian state-space model: simulation and exact log-likelihood.

The model (a stationary AR(1) observed in Gaussian noise):

.. math::

    x_0 \sim \mathcal N\!\big(0, \sigma_x^2 / (1 - \rho^2)\big), \quad
    x_t = \rho\, x_{t-1} + \sigma_x \varepsilon_t, \quad
    y_t = x_t + \sigma_y \eta_t, \qquad t = 1, \dots, T,

with :math:`\varepsilon_t, \eta_t` i.i.d. standard normal. The Kalman filter
gives :math:`\log p(y_{1:T})` exactly; it is the reference for particle-filter
estimates. Because :math:`x_0` starts at stationarity,
:math:`y_{1:T} \sim \mathcal N(0, \Sigma)` with
:math:`\Sigma_{st} = \tfrac{\sigma_x^2}{1-\rho^2}\rho^{|s-t|} + \sigma_y^2 [s=t]`,
which :func:`dense_log_likelihood` evaluates directly (for tests, small T).

Example:
    >>> params = LGSSM(rho=0.9, sigma_x=1.0, sigma_y=1.0)
    >>> xs, ys = simulate(jax.random.key(0), params, 100)
    >>> ll = kalman_log_likelihood(params, ys)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from jaxsampling.kernels.smc import filters
from jaxsampling.types import Array, ArrayLike, PRNGKey

_LOG_2PI = math.log(2.0 * math.pi)


class LGSSM(NamedTuple):
    """Parameters of the 1-D linear-Gaussian state-space model.

    Attributes:
        rho: AR(1) coefficient, ``|rho| < 1``.
        sigma_x: state noise standard deviation.
        sigma_y: observation noise standard deviation.
    """

    rho: float
    sigma_x: float
    sigma_y: float

    @property
    def stationary_var(self) -> float:
        r"""The stationary state variance :math:`\sigma_x^2 / (1 - \rho^2)`."""
        return self.sigma_x**2 / (1.0 - self.rho**2)


def normal_logpdf(x: ArrayLike, mean: ArrayLike, var: ArrayLike) -> Array:
    r"""Elementwise log-density of :math:`\mathcal N(\text{mean}, \text{var})` at x."""
    x, mean, var = jnp.asarray(x), jnp.asarray(mean), jnp.asarray(var)
    return -0.5 * (_LOG_2PI + jnp.log(var) + (x - mean) ** 2 / var)


def simulate(key: PRNGKey, params: LGSSM, num_steps: int) -> tuple[Array, Array]:
    """Simulates states and observations of the model.

    Args:
        key: a PRNG key.
        params: model parameters.
        num_steps: ``T``, the number of observations (a Python int).

    Returns:
        ``(xs, ys)``: ``float32[T]`` states :math:`x_{1:T}` and observations
        :math:`y_{1:T}`.

    Example:
        >>> xs, ys = simulate(jax.random.key(0), LGSSM(0.9, 1.0, 1.0), 10)
        >>> ys.shape
        (10,)
    """
    k0, kx, ky = jax.random.split(key, 3)
    x0 = jnp.sqrt(params.stationary_var) * jax.random.normal(k0)
    eps = jax.random.normal(kx, (num_steps,))

    def step(x, e):
        x = params.rho * x + params.sigma_x * e
        return x, x

    _, xs = lax.scan(step, x0, eps)
    ys = xs + params.sigma_y * jax.random.normal(ky, (num_steps,))
    return xs, ys


@jax.jit
def kalman_log_likelihood(params: LGSSM, ys: ArrayLike) -> Array:
    """Exact log-likelihood; see :func:`kalman_filter`."""
    return kalman_filter(params, ys)[0]


@jax.jit
def kalman_filter(params: LGSSM, ys: ArrayLike) -> tuple[Array, Array]:
    r"""Exact :math:`\log p(y_{1:T})` by the Kalman filter (a jitted ``lax.scan``).

    Predict :math:`m^- = \rho m,\ P^- = \rho^2 P + \sigma_x^2`; the increment is
    :math:`\log \mathcal N(y_t; m^-, P^- + \sigma_y^2)`; update with gain
    :math:`K = P^- / (P^- + \sigma_y^2)`.

    Args:
        params: model parameters.
        ys: ``float[T]`` observations.

    Returns:
        ``(log_likelihood, means)``: the scalar log-likelihood (float32 unless
        x64 is enabled; the float32 rounding error is about
        ``1e-6 * T * |increment|``) and the filtering means
        :math:`E[x_t \mid y_{1:t}]`, ``float[T]``.

    Example:
        >>> params = LGSSM(0.9, 1.0, 1.0)
        >>> _, ys = simulate(jax.random.key(0), params, 20)
        >>> float(kalman_log_likelihood(params, ys)) < 0
        True
    """
    ys = jnp.asarray(ys)
    dtype = ys.dtype
    var_y = jnp.asarray(params.sigma_y, dtype) ** 2

    def step(carry, y):
        m, p, ll = carry
        m_pred = params.rho * m
        p_pred = params.rho**2 * p + params.sigma_x**2
        s = p_pred + var_y
        ll = ll + normal_logpdf(y, m_pred, s)
        gain = p_pred / s
        m = m_pred + gain * (y - m_pred)
        p = (1.0 - gain) * p_pred
        return (m, p, ll), m

    init = (
        jnp.zeros((), dtype),
        jnp.asarray(params.stationary_var, dtype),
        jnp.zeros((), dtype),
    )
    (_, _, ll), means = lax.scan(step, init, ys)
    return ll, means


def dense_log_likelihood(params: LGSSM, ys: ArrayLike) -> Array:
    r"""Brute-force :math:`\log \mathcal N(y_{1:T}; 0, \Sigma)` with a dense covariance.

    :math:`\Sigma_{st} = \tfrac{\sigma_x^2}{1-\rho^2}\rho^{|s-t|} + \sigma_y^2 [s=t]`;
    costs :math:`O(T^3)`: a reference for tests on small ``T``.

    Args:
        params: model parameters.
        ys: ``float[T]`` observations.

    Returns:
        The scalar log-likelihood.

    Example:
        >>> params = LGSSM(0.9, 1.0, 1.0)
        >>> _, ys = simulate(jax.random.key(0), params, 5)
        >>> bool(jnp.isclose(dense_log_likelihood(params, ys),
        ...                  kalman_log_likelihood(params, ys), atol=1e-4))
        True
    """
    ys = jnp.asarray(ys)
    t = jnp.arange(ys.shape[0])
    lags = jnp.abs(t[:, None] - t[None, :]).astype(ys.dtype)
    cov = params.stationary_var * params.rho**lags + params.sigma_y**2 * jnp.eye(
        ys.shape[0], dtype=ys.dtype
    )
    return jax.scipy.stats.multivariate_normal.logpdf(ys, jnp.zeros_like(ys), cov)


def state_space_model(params: LGSSM, ys: ArrayLike) -> filters.StateSpaceModel:
    """The model as a :class:`~jaxsampling.kernels.smc.filters.StateSpaceModel`.

    Particles are ``float[N]`` states; step ``t`` of the filter sees
    observation ``ys[t]`` (the first particles are ``x_1``, stationary).

    Example:
        >>> from jaxsampling.kernels.smc import filters
        >>> params = LGSSM(0.9, 1.0, 1.0)
        >>> _, ys = simulate(jax.random.key(0), params, 20)
        >>> state, _, _ = filters.filter(
        ...     jax.random.key(1), filters.bootstrap(state_space_model(params, ys)), 2000, 20)
        >>> bool(abs(state.log_normalizer - kalman_log_likelihood(params, ys)) < 1.0)
        True
    """
    ys = jnp.asarray(ys)
    sd0 = math.sqrt(params.stationary_var)
    return filters.StateSpaceModel(
        initial_sample=lambda key, n: sd0 * jax.random.normal(key, (n,), ys.dtype),
        transition_sample=lambda key, t, x: params.rho * x
        + params.sigma_x * jax.random.normal(key, x.shape, x.dtype),
        observation_log_density=lambda t, x: normal_logpdf(ys[t], x, params.sigma_y**2),
        initial_log_density=lambda x: normal_logpdf(x, 0.0, params.stationary_var),
        transition_log_density=lambda t, prev, x: normal_logpdf(
            x, params.rho * prev, params.sigma_x**2
        ),
    )


def optimal_proposal(params: LGSSM, ys: ArrayLike) -> filters.Proposal:
    r"""The locally optimal proposal :math:`q_t(x_t | x_{t-1}) \propto f_t g_t`.

    Gaussian: precision :math:`1/\sigma_x^2 + 1/\sigma_y^2`, mean
    :math:`v(\rho x_{t-1} / \sigma_x^2 + y_t / \sigma_y^2)`; at t = 0 the
    stationary law replaces :math:`f`.
    """
    ys = jnp.asarray(ys)
    var = 1.0 / (1.0 / params.sigma_x**2 + 1.0 / params.sigma_y**2)
    var0 = 1.0 / (1.0 / params.stationary_var + 1.0 / params.sigma_y**2)

    def mean(t, prev):
        return var * (params.rho * prev / params.sigma_x**2 + ys[t] / params.sigma_y**2)

    mean0 = var0 * ys[0] / params.sigma_y**2
    return filters.Proposal(
        initial_sample=lambda key, n: mean0
        + math.sqrt(var0) * jax.random.normal(key, (n,), ys.dtype),
        initial_log_density=lambda x: normal_logpdf(x, mean0, var0),
        sample=lambda key, t, prev: mean(t, prev)
        + math.sqrt(var) * jax.random.normal(key, prev.shape, prev.dtype),
        log_density=lambda t, prev, x: normal_logpdf(x, mean(t, prev), var),
    )
