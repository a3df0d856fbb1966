"""Tests for jaxsampling.kernels.dpp.legendre and .wls (weighted least squares designs).

* Legendre bases: orthonormality by Gauss-Legendre quadrature (1-D and 2-D
  total-degree / hyperbolic-cross sets), values against numpy, downward
  closed index sets, the Christoffel bound behind the rejection samplers.
* Continuous samplers on [-1, 1]^d, fixed keys, 5-sigma tolerances from the
  standard error: the i.i.d. optimal density (chi-square and KS); the
  projection DPP's 1-point function (the first and the last point of the
  chain rule have marginal rho; E sum_i h(x_i) = int h K(x, x) dmu) and
  2-point function (E sum_{i != j} g(x_i, x_j) = int int g (K(x,x) K(y,y) -
  K(x,y)^2), in 1-D and 2-D, far from the i.i.d. value); the blocks of
  repeated DPPs are independent DPPs; volume-rescaled sampling makes the
  estimator unbiased.
* Weighted least squares: exact recovery of V_m, agreement with numpy,
  masking; quasi-optimality in expectation on 1/(1 + 25 x^2) and |x|;
  the exact DPP identity E||f - f_hat||^2 = (m + 1) e_m(f)^2 and the
  unbiasedness of volume-rescaled sampling by enumeration on a pool.
* Pool samplers against dpp.sample_projection / volume_rescaled_sample;
  jit/vmap/key-batch equivalence, no retrace, sharded keys, bad input.
"""

import functools
import itertools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
from scipy import stats

from jaxsampling import sharding, testing
from jaxsampling.kernels import dpp
from jaxsampling.kernels.dpp import legendre as legendre_lib

M = 6  # the 1-D space of most tests: polynomials of degree < 6


def runge(x):
    return 1.0 / (1.0 + 25.0 * x**2)


FUNCTIONS = {"runge": (runge, ()), "abs": (np.abs, (0.0,))}


# ---------------------------------------------------------------------------
# Exact references (numpy, float64).


def phi_np(x, m):
    return legendre_lib._legendre_1d_np(np.asarray(x, np.float64), m)


def rho_bin_probs(edges, m):
    """P(x in [e_k, e_{k+1}]) under rho = k_m / m, by Gauss quadrature per bin."""
    t, w = np.polynomial.legendre.leggauss(m + 2)
    lo, hi = edges[:-1, None], edges[1:, None]
    x = lo + (hi - lo) * (t + 1) / 2
    dens = (phi_np(x, m) ** 2).sum(-1) / m / 2  # density in dx
    return (dens * w * (hi - lo) / 2).sum(1)


def rho_cdf(x, m):
    t, w = np.polynomial.legendre.leggauss(m + 2)
    x = np.asarray(x, np.float64)[:, None]
    s = -1 + (x + 1) * (t + 1) / 2
    return ((phi_np(s, m) ** 2).sum(-1) / m / 2 * w * (x + 1) / 2).sum(1)


def kernel_moments(g, m, num=200):
    """``(int int g K(x,x) K(y,y), int int g K(x,y)^2)`` by quadrature, 1-D."""
    x, w = dpp.gauss_legendre(num)
    Phi = phi_np(x, m)
    K = Phi @ Phi.T
    kd = np.diag(K)
    G = g(x[:, None], x[None, :])
    return w @ (G * np.outer(kd, kd)) @ w, w @ (G * K**2) @ w


def pair_sums(x, g):
    """``sum_{i != j} g(x_i, x_j)`` per draw, ``x`` of shape ``(B, n[, d])``."""
    x = np.asarray(x, np.float64)
    if x.ndim == 2:
        x = x[..., None]
    G = g(x[:, :, None, :], x[:, None, :, :])
    return G.sum((1, 2)) - np.trace(G, axis1=1, axis2=2)


def gaussian_1d(h):
    return lambda a, b: np.exp(-((a - b) ** 2) / (2 * h * h))


def gaussian_nd(h):
    return lambda a, b: np.exp(-np.sum((a - b) ** 2, axis=-1) / (2 * h * h))


# ---------------------------------------------------------------------------
# Shared draws (compilation dominates: one program per shape).


@functools.lru_cache(maxsize=None)
def dpp_draws(m, num, seed):
    sample = dpp.legendre_dpp(jax.random.key(seed), m, num_draws=num)
    return jax.tree.map(np.asarray, sample)


@functools.lru_cache(maxsize=None)
def iid_draws(m, n, num, seed):
    return jax.tree.map(
        np.asarray, dpp.legendre_iid(jax.random.key(seed), m, n, num_draws=num)
    )


# ---------------------------------------------------------------------------
# Legendre bases.


def test_legendre_matches_numpy_and_is_orthonormal():
    x, w = dpp.gauss_legendre(40)
    Phi = np.asarray(dpp.legendre_basis(jnp.asarray(x, jnp.float32), 30), np.float64)
    j = np.arange(30)
    expected = np.stack(
        [np.polynomial.legendre.legval(x, np.eye(30)[k]) for k in j], axis=-1
    ) * np.sqrt(2 * j + 1)
    np.testing.assert_allclose(Phi, expected, atol=2e-5 * np.sqrt(2 * 29 + 1))
    np.testing.assert_allclose((Phi.T * w) @ Phi, np.eye(30), atol=1e-4)
    assert abs(w.sum() - 1) < 1e-14
    # Composite rule, exact for degree 2 * 30 - 1 >= 58 on each piece.
    xc, wc = dpp.gauss_legendre(30, breakpoints=(0.0,))
    Pc = phi_np(xc, 30)
    np.testing.assert_allclose((Pc.T * wc) @ Pc, np.eye(30), atol=1e-12)


@pytest.mark.parametrize("kind", dpp.legendre.INDEX_SETS)
def test_tensor_basis_orthonormal_in_2d(kind):
    idx = dpp.legendre_indices(2, 15, kind)
    t, w = dpp.gauss_legendre(12)
    X = np.stack(np.meshgrid(t, t, indexing="ij"), -1).reshape(-1, 2)
    W = np.outer(w, w).reshape(-1)
    Phi = np.asarray(dpp.legendre_basis(jnp.asarray(X, jnp.float32), idx), np.float64)
    assert Phi.shape == (144, 15)
    np.testing.assert_allclose((Phi.T * W) @ Phi, np.eye(15), atol=1e-4)
    # Each column is the product of the 1-D polynomials.
    np.testing.assert_allclose(
        Phi, phi_np(X[:, 0], 15)[:, idx[:, 0]] * phi_np(X[:, 1], 15)[:, idx[:, 1]],
        rtol=1e-4, atol=1e-4,
    )
    fn = dpp.legendre_basis_fn(idx)
    np.testing.assert_allclose(np.asarray(fn(jnp.asarray(X, jnp.float32))), Phi)


def test_index_sets():
    assert dpp.legendre_indices(2, 6).tolist() == [
        [0, 0], [0, 1], [1, 0], [0, 2], [1, 1], [2, 0]
    ]
    hc = dpp.legendre_indices(2, 8, "hyperbolic_cross").tolist()
    assert hc == [[0, 0], [0, 1], [1, 0], [0, 2], [2, 0], [0, 3], [1, 1], [3, 0]]
    for kind in dpp.legendre.INDEX_SETS:
        one_d = dpp.legendre_indices(1, 7, kind)
        np.testing.assert_array_equal(one_d[:, 0], np.arange(7))
        for d, m in [(2, 17), (3, 30)]:
            idx = dpp.legendre_indices(d, m, kind)
            assert idx.shape == (m, d) and len({tuple(a) for a in idx.tolist()}) == m
            members = {tuple(a) for a in idx.tolist()}
            for a in members:  # downward closed
                for k in range(d):
                    if a[k] > 0:
                        assert a[:k] + (a[k] - 1,) + a[k + 1 :] in members


def test_christoffel_bound_behind_the_envelope():
    """phi_j(x)^2 pi sqrt(1 - x^2) <= 4 (Antonov-Kholshevnikov / Lorch), sharp."""
    theta = np.linspace(0, np.pi, 20_001)[1:-1]
    x = np.cos(theta)
    Phi = phi_np(x, 400)
    ratio = Phi**2 * (np.pi * np.sin(theta))[:, None]
    assert ratio.max() <= 4.0
    assert ratio[:, -1].max() > 3.95


def test_best_approximation():
    p = lambda x: 1 - 2 * x + 3 * x**4  # noqa: E731
    c, e2, f2 = dpp.best_approximation(p, 6)
    assert e2 < 1e-20 * f2  # float64 round-off
    np.testing.assert_allclose(np.sum(c**2), f2, rtol=1e-13)
    for f, bp in FUNCTIONS.values():
        c, e2, f2 = dpp.best_approximation(f, 10, breakpoints=bp)
        c_fine, e2_fine, _ = dpp.best_approximation(
            f, 10, num_nodes=300, breakpoints=bp
        )
        np.testing.assert_allclose(c, c_fine, atol=1e-14)
        np.testing.assert_allclose(e2, f2 - np.sum(c**2), rtol=1e-9)
        np.testing.assert_allclose(e2, e2_fine, rtol=1e-10)


# ---------------------------------------------------------------------------
# The i.i.d. optimal density.


def test_iid_optimal_density_chi_square_and_ks():
    s = iid_draws(M, 50, 400, 0)
    x = s.x.reshape(-1)
    assert s.x.shape == (400, 50) and np.isfinite(x).all()
    assert np.all(np.abs(x) <= 1)
    edges = np.linspace(-1, 1, 41)
    probs = rho_bin_probs(edges, M)
    np.testing.assert_allclose(probs.sum(), 1, rtol=1e-12)
    testing.assert_chi_square(np.histogram(x, edges)[0], probs)
    assert stats.kstest(x[:5000], lambda t: rho_cdf(t, M)).pvalue > 1e-6
    np.testing.assert_allclose(s.weights, M / (phi_np(s.x, M) ** 2).sum(-1), rtol=1e-4)


def test_iid_optimal_density_2d():
    idx = dpp.legendre_indices(2, 6)
    s = dpp.legendre_iid(jax.random.key(1), idx, 100, num_draws=200)
    x = np.asarray(s.x, np.float64).reshape(-1, 2)
    assert s.x.shape == (200, 100, 2)
    edges = np.linspace(-1, 1, 9)
    counts = np.histogram2d(x[:, 0], x[:, 1], [edges, edges])[0]
    # Bin probabilities of rho = sum_alpha phi_alpha^2 / m, tensor quadrature per bin.
    t, w = np.polynomial.legendre.leggauss(8)
    lo, hi = edges[:-1], edges[1:]
    pts = (lo[:, None] + (hi - lo)[:, None] * (t + 1) / 2)  # (8 bins, 8 nodes)
    wts = w * (hi - lo)[:, None] / 4  # mu = dx / 2 per axis
    P0, P1 = phi_np(pts, 6), phi_np(pts, 6)
    dens = sum(
        P0[:, :, None, None, a] ** 2 * P1[None, None, :, :, b] ** 2 for a, b in idx
    ) / 6
    probs = np.einsum("ikjl,ik,jl->ij", dens, wts, wts)
    np.testing.assert_allclose(probs.sum(), 1, rtol=1e-12)
    testing.assert_chi_square(counts, probs)


# ---------------------------------------------------------------------------
# The continuous projection DPP: correlation functions.


def test_dpp_draws_are_valid():
    s = dpp_draws(M, 20_000, 2)
    assert s.x.shape == (20_000, M) and s.weights.shape == (20_000, M)
    assert np.isfinite(s.x).all() and np.all(np.abs(s.x) <= 1)
    # Distinct points, and the weights are m / k_m(x).
    xs = np.sort(s.x, axis=1)
    assert np.all(np.diff(xs, axis=1) > 0)
    np.testing.assert_allclose(s.weights, M / (phi_np(s.x, M) ** 2).sum(-1), rtol=1e-4)


@pytest.mark.parametrize("position", [0, M - 1])
def test_dpp_one_point_marginal(position):
    """Every point of the chain rule (the first, and the last, most constrained
    one) has marginal density rho = K(x, x) / m: the points are exchangeable."""
    x = dpp_draws(M, 20_000, 2).x[:, position]
    edges = np.linspace(-1, 1, 21)
    testing.assert_chi_square(np.histogram(x, edges)[0], rho_bin_probs(edges, M))


def test_dpp_one_point_function():
    s = dpp_draws(M, 20_000, 2)
    xq, wq = dpp.gauss_legendre(50, breakpoints=(0.0, 0.5))  # the kinks of the h's
    kd = (phi_np(xq, M) ** 2).sum(-1)
    for h in (lambda t: t**2, np.abs, lambda t: (t > 0.5).astype(float)):
        testing.assert_mean_close(h(s.x).sum(1), np.sum(wq * h(xq) * kd))


@pytest.mark.parametrize("bandwidth", [0.05, 0.2])
def test_dpp_two_point_function(bandwidth):
    s = dpp_draws(M, 20_000, 2)
    g = gaussian_1d(bandwidth)
    prod, k2 = kernel_moments(g, M)
    stat = pair_sums(s.x, g)
    testing.assert_mean_close(stat, prod - k2)
    # Repulsion: far from the i.i.d.-from-rho value (m - 1) / m * prod.
    se = stat.std() / np.sqrt(stat.size)
    assert ((M - 1) / M * prod - stat.mean()) > 20 * se


def test_dpp_two_point_function_2d():
    idx = dpp.legendre_indices(2, 6, "hyperbolic_cross")
    s = dpp.legendre_dpp(jax.random.key(4), idx, num_draws=2000)
    assert s.x.shape == (2000, 6, 2)
    g = gaussian_nd(0.3)
    t, w = dpp.gauss_legendre(30)
    X = np.stack(np.meshgrid(t, t, indexing="ij"), -1).reshape(-1, 2)
    W = np.outer(w, w).reshape(-1)
    Phi = phi_np(X[:, 0], 6)[:, idx[:, 0]] * phi_np(X[:, 1], 6)[:, idx[:, 1]]
    K = Phi @ Phi.T
    kd = np.diag(K)
    G = g(X[:, None, :], X[None, :, :])
    expected = W @ (G * (np.outer(kd, kd) - K**2)) @ W
    testing.assert_mean_close(pair_sums(s.x, g), expected)
    one = np.asarray(s.x, np.float64)[..., 0] ** 2
    testing.assert_mean_close(one.sum(1), np.sum(W * X[:, 0] ** 2 * kd))


def test_repeated_dpp_blocks_are_independent_dpps():
    s = dpp.legendre_repeated_dpp(jax.random.key(5), M, 3, num_draws=1500)
    x = np.asarray(s.x, np.float64)
    assert x.shape == (1500, 3 * M)
    g = gaussian_1d(0.2)
    prod, k2 = kernel_moments(g, M)
    blocks = [x[:, k * M : (k + 1) * M] for k in range(3)]
    for blk in blocks:
        testing.assert_mean_close(pair_sums(blk, g), prod - k2)
    cross = g(blocks[0][:, :, None], blocks[2][:, None, :]).sum((1, 2))
    testing.assert_mean_close(cross, prod)


# ---------------------------------------------------------------------------
# Weighted least squares.


def _lstsq(F, y, w):
    """numpy reference: coefficients, eigenvalues of G and ||G - I||_2."""
    n = F.shape[0]
    sw = np.sqrt(w / n)
    coef = np.linalg.lstsq(sw[:, None] * F, sw[:, None] * y, rcond=None)[0]
    G = (F.T * w) @ F / n
    dev = np.abs(np.linalg.eigvalsh(G - np.eye(F.shape[1]))).max()
    return coef, np.linalg.eigvalsh(G), dev


def test_wls_fit_matches_numpy_and_masking(x64):
    rng = np.random.default_rng(0)
    F = rng.standard_normal((3, 9, 4))
    y = rng.standard_normal((3, 9))
    Y = np.stack([y, 2 * y + 1], -1)  # two right-hand sides, one solve
    w = rng.uniform(0.5, 2.0, (3, 9))
    fit = dpp.wls_fit(F, Y, w)
    # Padding rows masked out: the fit on the first 6 rows (n = 6), same program.
    mask = np.broadcast_to(np.arange(9) < 6, (3, 9))
    masked = dpp.wls_fit(F, Y, w, mask)
    for b in range(3):
        for out, rows in ((fit, slice(None)), (masked, slice(0, 6))):
            coef, ev, dev = _lstsq(F[b, rows], Y[b, rows], w[b, rows])
            np.testing.assert_allclose(out.coef[b], coef, rtol=1e-10)
            np.testing.assert_allclose(out.gram_eigenvalues[b], ev, rtol=1e-10)
            np.testing.assert_allclose(out.gram_deviation[b], dev, rtol=1e-10)
    # One right-hand side: coef drops the last axis.
    single = dpp.wls_fit(F, y, w)
    np.testing.assert_allclose(single.coef, fit.coef[..., 0], rtol=1e-12)
    # n < m: an exact fit, m - n zero eigenvalues, never well conditioned.
    under = dpp.wls_fit(F[0, :3], y[0, :3], w[0, :3])
    np.testing.assert_allclose(F[0, :3] @ under.coef, y[0, :3], atol=1e-12)
    np.testing.assert_allclose(under.gram_eigenvalues[:1], 0, atol=1e-12)
    assert bool(dpp.well_conditioned(under)) is False


@pytest.mark.parametrize(
    "design",
    [
        "iid",
        "dpp",
        pytest.param("volume_rescaled_4m", marks=pytest.mark.slow),
        pytest.param("repeated_dpp_4", marks=pytest.mark.slow),
    ],
)
def test_wls_recovers_polynomials_in_the_space(design, x64):
    if design == "iid":
        sample = iid_draws(M, 50, 400, 0)  # float32 points, fitted in float64
    else:
        sample = quasi_optimality_draws(design)
    x = np.asarray(sample.x, np.float64)
    coef = np.random.default_rng(1).standard_normal(M)
    Phi = dpp.legendre_basis(jnp.asarray(x), M)
    fit = dpp.wls_fit(Phi, Phi @ coef, optimal_weights_np(x))
    expected = np.broadcast_to(coef, fit.coef.shape)
    np.testing.assert_allclose(fit.coef, expected, atol=1e-8)


def optimal_weights_np(x):
    return M / (phi_np(x, M) ** 2).sum(-1)


@functools.lru_cache(maxsize=None)
def quasi_optimality_draws(design):
    """float64 draws (m = M) shared by both test functions; x64 inside."""
    key = jax.random.key(7)
    with jax.enable_x64(True):
        sample = {
            "dpp": lambda: dpp.legendre_dpp(key, M, num_draws=2000),
            "iid_m": lambda: dpp.legendre_iid(key, M, M, num_draws=2000),
            "volume_rescaled_4m": lambda: dpp.legendre_volume_rescaled(
                key, M, 4 * M, num_draws=4000
            ),
            "repeated_dpp_4": lambda: dpp.legendre_repeated_dpp(
                key, M, 4, num_draws=2000
            ),
        }[design]()
        return jax.tree.map(np.asarray, sample)


def error_ratios(design, name):
    """``(||f - f_hat||^2 / e_m(f)^2, coef, c*)`` per draw, float64."""
    f, bp = FUNCTIONS[name]
    c, e2, _ = dpp.best_approximation(f, M, breakpoints=bp)
    sample = quasi_optimality_draws(design)
    with jax.enable_x64(True):
        Phi = dpp.legendre_basis(jnp.asarray(sample.x), M)
        coef = np.asarray(dpp.wls_fit(Phi, f(sample.x), sample.weights).coef)
    return 1 + np.sum((coef - c) ** 2, axis=-1) / e2, coef, c


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_quasi_optimality_in_expectation(name):
    """E||f - f_hat||^2 / e_m(f)^2 (squared L^2 errors), m = 6:

    * projection DPP (n = m): exactly m + 1 (Derezinski & Warmuth); the
      ratio is heavy tailed, so only the upper side is checked here (the
      identity itself is checked exactly on a pool below);
    * volume-rescaled at n = 4m and 4 repeated DPPs (n = 4m): below 2;
    * volume-rescaled sampling is unbiased: E[coef] = c*.
    """
    r_dpp, _, _ = error_ratios("dpp", name)
    z = (r_dpp.mean() - (M + 1)) / (r_dpp.std() / np.sqrt(r_dpp.size))
    assert z < 5, (r_dpp.mean(), z)
    for design in ("volume_rescaled_4m", "repeated_dpp_4"):
        ratio, _, _ = error_ratios(design, name)
        z = (ratio.mean() - 2.0) / (ratio.std() / np.sqrt(ratio.size))
        assert z < -5, (design, ratio.mean(), z)
    _, coef, c = error_ratios("volume_rescaled_4m", name)
    testing.assert_mean_close(coef, c)


def test_iid_at_n_equal_m_is_worse_than_dpp():
    """At n = m (interpolation) i.i.d. points are far worse than the DPP's."""
    r_iid, _, _ = error_ratios("iid_m", "runge")
    r_dpp, _, _ = error_ratios("dpp", "runge")
    assert np.median(r_iid) > 2 * np.median(r_dpp)


# ---------------------------------------------------------------------------
# Pool designs.


def _pool(N=60, m=4, seed=0):
    x = np.random.default_rng(seed).uniform(-1, 1, N)
    return np.asarray(dpp.pool_basis(jnp.asarray(phi_np(x, m), jnp.float32)))


def test_pool_basis_is_empirically_orthonormal():
    Phi = _pool()
    np.testing.assert_allclose(Phi.T @ Phi / Phi.shape[0], np.eye(4), atol=1e-5)


def test_pool_dpp_and_repeated_dpp_match_sample_projection():
    Phi = _pool()
    N, m = Phi.shape
    keys = jax.random.split(jax.random.key(9), 50)
    Q = jnp.asarray(Phi / np.sqrt(N), jnp.float32)
    projection = jax.jit(dpp.sample_projection)
    w = m / (Phi.astype(np.float64) ** 2).sum(1)
    s = dpp.pool_dpp(keys, Phi)
    np.testing.assert_array_equal(s.x, projection(keys, Q))
    np.testing.assert_allclose(s.weights, w[np.asarray(s.x)], rtol=1e-5)
    # Repeated DPPs: block k is the DPP draw of the k-th split key (pool_dpp
    # on 50 keys is compiled already).
    r = dpp.pool_repeated_dpp(keys[:25], Phi, 2)
    assert r.x.shape == (25, 2 * m)
    sub = jax.vmap(lambda k: jax.random.split(k, 2))(keys[:25]).reshape(50)
    blocks = np.asarray(r.x).reshape(50, m)
    np.testing.assert_array_equal(blocks, dpp.pool_dpp(sub, Phi).x)


@pytest.mark.slow
def test_pool_volume_rescaled_matches_the_kernel():
    Phi = _pool()
    keys = jax.random.split(jax.random.key(9), 50)
    w = Phi.shape[1] / (Phi.astype(np.float64) ** 2).sum(1)
    v = dpp.pool_volume_rescaled(keys, Phi, 9)
    np.testing.assert_array_equal(
        v.x, jax.jit(dpp.volume_rescaled_sample, static_argnums=2)(keys, Phi, 9)
    )
    np.testing.assert_allclose(v.weights, w[np.asarray(v.x)], rtol=1e-5)


def test_pool_iid_law():
    Phi = _pool(N=20, m=3)
    s = dpp.pool_iid(jax.random.key(10), Phi, 50, num_draws=400)
    q = (Phi.astype(np.float64) ** 2).sum(1)
    counts = np.bincount(np.asarray(s.x).ravel(), minlength=20)
    testing.assert_chi_square(counts, q / q.sum())


def test_pool_exact_identities_by_enumeration(x64):
    """On a pool of 7 points, m = 2: the exact laws give
    E||f - f_hat||^2 = (m + 1) e^2 for the DPP and E[coef] = c* for volume
    rescaling (any n >= m), through wls_fit."""
    N, m = 7, 2
    rng = np.random.default_rng(3)
    Phi = np.asarray(dpp.pool_basis(rng.standard_normal((N, m))))
    y = rng.standard_normal(N)
    c_star = Phi.T @ y / N
    e2 = np.mean((y - Phi @ c_star) ** 2)
    w = m / (Phi**2).sum(1)
    q = (Phi**2).sum(1) / (N * m)

    # Every design (DPP subsets, then volume-rescaled tuples of n = 2, 3, 4)
    # padded to 4 rows and masked: one wls_fit call.
    subsets = [list(S) for S in itertools.combinations(range(N), m)]
    designs = [(S, None) for S in subsets]
    for n in (2, 3, 4):
        for t in itertools.product(range(N), repeat=n):
            t = list(t)
            G = (Phi[t].T * w[t]) @ Phi[t] / n
            prob = math.factorial(n - m) / math.factorial(n) * n**m
            designs.append((t, prob * np.linalg.det(G) * np.prod(q[t])))
    rows = np.array([r + [0] * (4 - len(r)) for r, _ in designs])
    mask = np.array([[i < len(r) for i in range(4)] for r, _ in designs])
    coefs = np.asarray(dpp.wls_fit(Phi[rows], y[rows], w[rows], mask).coef)
    k = len(subsets)
    probs = np.array([np.linalg.det(Phi[S] / np.sqrt(N)) ** 2 for S in subsets])
    np.testing.assert_allclose(probs.sum(), 1, rtol=1e-12)
    risk = probs @ (e2 + ((coefs[:k] - c_star) ** 2).sum(1))
    np.testing.assert_allclose(risk, (m + 1) * e2, rtol=1e-10)
    start = k
    for n in (2, 3, 4):
        law = np.array([p for _, p in designs[start : start + N**n]])
        np.testing.assert_allclose(law.sum(), 1, rtol=1e-10)
        keep = law > 1e-300  # singular tuples have probability 0
        mean = law[keep] @ coefs[start : start + N**n][keep]
        np.testing.assert_allclose(mean, c_star, atol=1e-12)
        start += N**n


# ---------------------------------------------------------------------------
# Batching, jit, retrace, sharding.


def test_batched_keys_num_draws_and_single_key_agree():
    keys = jax.random.split(jax.random.key(11), 4)
    batch = dpp.legendre_dpp(keys, M)
    assert batch.x.shape == (4, M)
    one = dpp.legendre_dpp(keys[2], M)
    np.testing.assert_array_equal(one.x, batch.x[2])
    np.testing.assert_array_equal(one.weights, batch.weights[2])
    from_one_key = dpp.legendre_dpp(jax.random.key(11), M, num_draws=4)
    np.testing.assert_array_equal(from_one_key.x, batch.x)
    legacy = dpp.legendre_dpp(jax.random.key_data(keys), M)
    np.testing.assert_array_equal(legacy.x, batch.x)
    iid = dpp.legendre_iid(keys, M, 5)
    vmapped = jax.jit(jax.vmap(lambda k: dpp.legendre_iid(k, M, 5)))(keys)
    np.testing.assert_array_equal(vmapped.x, iid.x)
    np.testing.assert_array_equal(vmapped.weights, iid.weights)


def test_no_retrace():
    @jax.jit
    @chex.assert_max_traces(n=1)
    def draw(key, Phi):
        s = dpp.legendre_dpp(key, 4)
        fit = dpp.wls_fit(dpp.legendre_basis(s.x, 4), jnp.sin(s.x), s.weights)
        return fit.coef, dpp.pool_iid(key, Phi, 5).x

    Phi = jnp.asarray(_pool(), jnp.float32)
    draw(jax.random.key(0), Phi)
    draw(jax.random.key(1), Phi * 1.0)


@pytest.mark.multidevice
def test_sharded_keys_give_the_same_draws():
    keys = jax.random.split(jax.random.key(12), 8)
    expected = dpp.legendre_dpp(keys, M)
    mesh = sharding.batch_mesh(axis_type=AxisType.Auto)
    spec = NamedSharding(mesh, P(sharding.BATCH_AXIS))
    fn = jax.jit(lambda k: dpp.legendre_dpp(k, M), out_shardings=spec)
    out = fn(jax.device_put(keys, spec))
    np.testing.assert_array_equal(out.x, expected.x)
    assert out.x.sharding.spec[0] == sharding.BATCH_AXIS


# ---------------------------------------------------------------------------
# Bad input.


K0 = jax.random.key(0)
ONES = jnp.ones((5, 2))
BAD_INPUT = [
    (lambda: dpp.legendre_dpp(K0, 0), "space must be >= 1"),
    (lambda: dpp.legendre_dpp(K0, np.zeros((3,), int)), "space must be"),
    (lambda: dpp.legendre_dpp(K0, [[0], [0]]), "repeated multi-indices"),
    (lambda: dpp.legendre_dpp(K0, [[0.5], [1.0]]), "non-negative integer"),
    (lambda: dpp.legendre_iid(K0, 4, 2.0), "n must be a Python int"),
    (lambda: dpp.legendre_volume_rescaled(K0, 4, 3), "n must be >= m = 4"),
    (lambda: dpp.legendre_repeated_dpp(K0, 4, 0), "repeats must be >= 1"),
    (lambda: dpp.legendre_dpp(K0, 4, num_draws=0), "num_draws must be >= 1"),
    (lambda: dpp.legendre_dpp(K0, 4, dtype=jnp.int32), "dtype must be floating"),
    (lambda: dpp.legendre_dpp(jnp.zeros(3), 4), "key must be"),
    (lambda: dpp.legendre_basis(ONES, [[0, 0, 0]]), r"x must have shape \(\.\.\., 3\)"),
    (lambda: dpp.legendre_basis(jnp.zeros(3, int), 3), "x must have a floating dtype"),
    (lambda: dpp.legendre_indices(2, 5, "simplex"), "kind must be one of"),
    (lambda: dpp.pool_dpp(K0, jnp.ones((10, 2))), "orthonormal for the empirical"),
    (lambda: dpp.pool_iid(K0, jnp.ones((1, 2)), 3), "Phi must have N >= m"),
    (lambda: dpp.pool_iid(K0, jnp.ones(4), 3), r"Phi must have shape \(N, m\)"),
    (lambda: dpp.pool_volume_rescaled(K0, _pool(), 2), "n must be >= m"),
    (lambda: dpp.wls_fit(ONES, jnp.ones(4), jnp.ones(5)), r"y must have shape \(5,\)"),
    (lambda: dpp.wls_fit(ONES, jnp.ones(5), -jnp.ones(5)), "weights must be non-neg"),
    (lambda: dpp.wls_fit(ONES, *[jnp.ones(5)] * 3), "mask must be bool"),
    (lambda: dpp.wls_fit(jnp.ones(5), jnp.ones(5), jnp.ones(5)), "features must be"),
    (lambda: dpp.gauss_legendre(5, breakpoints=(1.0,)), "breakpoints must be"),
]


@pytest.mark.parametrize("call, match", BAD_INPUT)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_nan_weights_propagate_under_jit():
    fit = jax.jit(dpp.wls_fit)(jnp.ones((5, 2)), jnp.ones(5), jnp.full(5, jnp.nan))
    assert np.isnan(np.asarray(fit.coef)).all()
