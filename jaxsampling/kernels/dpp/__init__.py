"""Determinantal point processes: exact batched draws, volume sampling, log-probabilities.

``from jaxsampling.kernels import dpp`` draws subsets of ``N`` items that
repel each other: ``P(S) = det(K_S)`` (projection), ``det(L_S) / det(I + L)``
(L-ensemble), ``propto det(L_S)`` with ``|S| = k`` (k-DPP), or
``propto det(X_S^T X_S)`` (volume sampling). Every exact sampler reduces to one
batched chain-rule step written as matrix products (:mod:`.chain_rule`), so
many draws cost little more than one matrix product per item.

===============  ==========================================================
module           what it holds
===============  ==========================================================
``chain_rule``   the batched chain-rule (Gram-Schmidt) projection sampler
``rejection``    the same step by proposal and rejection: cost independent of ``N``
``projection``   ``sample_projection``: projection DPP of an orthonormal ``V``
``spectral``     ``Spectrum``: a kernel's eigendecomposition, computed once;
                 the law of the size and a ``max_size`` from it
``ensemble``     ``sample`` (L-ensemble or ``K``, padded ``DPPDraw``),
                 ``sample_k`` (k-DPP, log-space elementary symmetric polys)
``volume``       volume sampling and volume-rescaled sampling of rows
``logprob``      log-probability of a set under each model (differentiable)
``legendre``     orthonormal Legendre bases on ``[-1, 1]^d``, quadrature and
                 best approximation (the spaces of ``wls``)
``wls``          weighted least squares: i.i.d. optimal, projection-DPP,
                 volume-rescaled and repeated-DPP designs (exact continuous
                 rejection samplers on ``[-1, 1]^d``, or on a pool)
``mcmc``         add-delete (L-ensemble) and swap (k-DPP) Metropolis chains
                 for large ``N``: ``O(max_size^2)`` a step, no eigendecomposition
===============  ==========================================================

Example:
  >>> import jax, jax.numpy as jnp
  >>> from jaxsampling.kernels import dpp
  >>> V, _ = jnp.linalg.qr(jax.random.normal(jax.random.key(0), (1000, 20)))
  >>> S = dpp.sample_projection(jax.random.key(1), V, num_draws=100)
  >>> S.shape
  (100, 20)
  >>> bool(jnp.isfinite(jax.vmap(lambda s: dpp.projection_log_prob(V, s))(S)).all())
  True

References:
  Hough, Krishnapur, Peres & Virag (2006); Kulesza & Taskar (2012),
  Determinantal point processes for machine learning; Derezinski & Warmuth
  (2017); Nouy & Michel (2023), Weighted least-squares approximation with
  determinantal point processes and generalized volume sampling.
"""

from jaxsampling.kernels.dpp import (
    chain_rule,
    ensemble,
    logprob,
    projection,
    rejection,
    spectral,
    volume,
)
from jaxsampling.kernels.dpp.chain_rule import PAD
from jaxsampling.kernels.dpp.ensemble import (
    DPPDraw,
    log_elementary_symmetric,
    sample,
    sample_k,
)
from jaxsampling.kernels.dpp.logprob import (
    correlation_log_prob,
    k_log_prob,
    likelihood_log_prob,
    projection_log_prob,
    volume_log_prob,
    volume_rescaled_log_prob,
)
from jaxsampling.kernels.dpp.projection import sample_projection
from jaxsampling.kernels.dpp.spectral import (
    Spectrum,
    max_size_for,
    size_distribution,
    spectrum_from_correlation,
    spectrum_from_eigh,
    spectrum_from_likelihood,
)
from jaxsampling.kernels.dpp.volume import column_basis, volume_rescaled_sample, volume_sample
from jaxsampling.kernels.dpp import legendre, wls
from jaxsampling.kernels.dpp.legendre import (
    best_approximation,
    gauss_legendre,
    legendre_basis,
    legendre_basis_fn,
    legendre_indices,
)
from jaxsampling.kernels.dpp.wls import (
    WLSFit,
    WLSSample,
    legendre_dpp,
    legendre_iid,
    legendre_repeated_dpp,
    legendre_volume_rescaled,
    optimal_weights,
    pool_basis,
    pool_dpp,
    pool_iid,
    pool_repeated_dpp,
    pool_volume_rescaled,
    well_conditioned,
    wls_fit,
)
from jaxsampling.kernels.dpp import mcmc
