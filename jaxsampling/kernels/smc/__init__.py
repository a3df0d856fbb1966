"""Sequential Monte Carlo: one Feynman-Kac engine and the samplers built on it.

``from jaxsampling.kernels import smc`` gives the engine (:class:`FeynmanKac`,
:class:`State`, :class:`Info`, :func:`init`, :func:`step`, :func:`run`) and
the instance modules:

==============  ==========================================================
module          what it builds on the engine
==============  ==========================================================
``filters``     bootstrap and guided particle filters for state-space models
``mcmc``        random-walk Metropolis and MALA moves tuned from the cloud
``tempering``   adaptive tempered SMC (bisection on the conditional ESS),
                waste-free variant
``correctors``  Feynman-Kac correctors for diffusion samplers: annealing
                ``p^beta``, product of experts; Gaussian-mixture scores
``svdd``        reward steering: keep one of M candidates w.p. ``exp(v/alpha)``
==============  ==========================================================

Example:
  >>> import jax, jax.numpy as jnp
  >>> from jaxsampling.kernels import smc
  >>> model = smc.FeynmanKac(
  ...     init=lambda key, n: jax.random.normal(key, (n,)),
  ...     mutate=lambda key, t, x: x + jax.random.normal(key, x.shape),
  ...     log_potential=lambda t, prev, x: -0.5 * x**2)
  >>> state, info, _ = jax.jit(smc.run, static_argnums=(1, 2, 3))(
  ...     jax.random.key(0), model, 512, 10)
  >>> state.log_weights.shape
  (512,)
"""

from jaxsampling.kernels.smc import correctors, filters, mcmc, mixtures, svdd, tempering
from jaxsampling.kernels.smc.engine import FeynmanKac, Info, State, init, run, step

__all__ = [
    "FeynmanKac",
    "Info",
    "State",
    "correctors",
    "filters",
    "init",
    "mcmc",
    "mixtures",
    "run",
    "step",
    "svdd",
    "tempering",
]
