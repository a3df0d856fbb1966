"""Independent float64 numpy references for the DPP kernel tests.

Nothing here imports the kernels: every law is enumerated from its
definition (a determinant per subset, or per ordered tuple), every size law
from the ``2^r`` Bernoulli outcomes, and the elementary symmetric
polynomials from exact rational sums of products, so a test compares the
kernel with a second derivation.

Sets are encoded as bit masks (``code = sum_i 2^i``, ``2^N`` cells) and
ordered tuples in base ``N`` (``code = sum_j i_j N^(k-1-j)``, ``N^k`` cells).
"""

import itertools
import math
from fractions import Fraction

import numpy as np

PAD = -1


# ----------------------------------------------------------------------------
# Encodings of draws.
# ----------------------------------------------------------------------------


def set_codes(indices):
    """``int64[B]`` bit masks of padded draws ``int[B, m]`` (``-1`` is padding).

    The caller checks distinctness first (a repeated item would alias).
    """
    idx = np.asarray(indices, np.int64)
    valid = idx != PAD
    bits = np.where(valid, np.left_shift(1, np.where(valid, idx, 0)), 0)
    return bits.sum(axis=1)


def tuple_codes(indices, n):
    """``int64[B]`` base-``n`` codes of ordered tuples ``int[B, k]``."""
    idx = np.asarray(indices, np.int64)
    k = idx.shape[1]
    return idx @ (n ** np.arange(k - 1, -1, -1, dtype=np.int64))


def histogram(codes, num_cells):
    return np.bincount(np.asarray(codes), minlength=num_cells)


def members(code, n):
    return [i for i in range(n) if code >> i & 1]


# ----------------------------------------------------------------------------
# Laws by enumeration.
# ----------------------------------------------------------------------------


def _det(M):
    return float(np.linalg.det(M)) if M.size else 1.0


def likelihood_law(L):
    """``P(S = A) = det(L_A) / det(I + L)`` over all ``2^N`` subsets ``A``."""
    L = np.asarray(L, np.float64)
    n = L.shape[0]
    probs = np.array([_det(L[np.ix_(s, s)]) for s in map(lambda c: members(c, n), range(2**n))])
    probs = np.maximum(probs, 0.0) / _det(np.eye(n) + L)
    return probs


def correlation_law(K):
    """``P(S = A) = |det(K - I_{not A})|`` over all ``2^N`` subsets (no ``L`` needed)."""
    K = np.asarray(K, np.float64)
    n = K.shape[0]
    probs = np.empty(2**n)
    for code in range(2**n):
        outside = np.array([0.0 if code >> i & 1 else 1.0 for i in range(n)])
        probs[code] = abs(_det(K - np.diag(outside)))
    return probs


def k_subset_law(weight, n, k):
    """``P(S = A) propto weight(A)`` over the ``k``-subsets, as ``2^N`` cells."""
    probs = np.zeros(2**n)
    for s in itertools.combinations(range(n), k):
        probs[sum(1 << i for i in s)] = weight(list(s))
    return probs / probs.sum()


def projection_law(V):
    """``det(V_S)^2`` over the ``k``-subsets of an orthonormal ``N x k`` ``V``."""
    V = np.asarray(V, np.float64)
    n, k = V.shape
    return k_subset_law(lambda s: _det(V[s]) ** 2, n, k)


def projection_tuple_law(V):
    """Ordered ``k``-tuples of distinct items: ``det(V_S)^2 / k!`` (``N^k`` cells)."""
    V = np.asarray(V, np.float64)
    n, k = V.shape
    probs = np.zeros(n**k)
    for t in itertools.permutations(range(n), k):
        probs[tuple_codes(np.array([t]), n)[0]] = _det(V[list(t)]) ** 2 / math.factorial(k)
    return probs


def k_dpp_law(L, k):
    """``det(L_S) / e_k(lambda)`` over the ``k``-subsets (normalised by the sum)."""
    L = np.asarray(L, np.float64)
    return k_subset_law(lambda s: max(_det(L[np.ix_(s, s)]), 0.0), L.shape[0], k)


def volume_law(X, k):
    """``det(X_S^T X_S)`` over the ``k``-subsets, normalised by the sum."""
    X = np.asarray(X, np.float64)
    return k_subset_law(lambda s: max(_det(X[s].T @ X[s]), 0.0), X.shape[0], k)


def volume_rescaled_law(X, k):
    """Ordered ``k``-tuples (repeats allowed) of volume-rescaled sampling.

    By construction (``d`` projection-DPP rows in uniform order, ``k - d``
    i.i.d. rows from ``q_i = ||Q_i||^2 / d``, then a uniform shuffle):

        P(t) = (k - d)! / k! * sum_{P subset [k], |P| = d} det(Q_{t_P})^2 prod_{j not in P} q_{t_j},

    the Cauchy-Binet expansion of the ``det(G) prod q`` form in the kernel.
    """
    X = np.asarray(X, np.float64)
    n, d = X.shape
    Q, _ = np.linalg.qr(X)
    q = np.sum(Q * Q, axis=1) / d
    scale = math.factorial(k - d) / math.factorial(k)
    probs = np.zeros(n**k)
    for t in itertools.product(range(n), repeat=k):
        total = 0.0
        for P in itertools.combinations(range(k), d):
            rest = [t[j] for j in range(k) if j not in P]
            total += _det(Q[[t[j] for j in P]]) ** 2 * np.prod(q[rest])
        probs[tuple_codes(np.array([t]), n)[0]] = scale * total
    return probs


# ----------------------------------------------------------------------------
# Sizes and elementary symmetric polynomials.
# ----------------------------------------------------------------------------


def poisson_binomial(p):
    """``P(sum_j B_j = m)``, ``m = 0..r``, by enumerating the ``2^r`` outcomes."""
    p = np.asarray(p, np.float64)
    r = p.size
    pmf = np.zeros(r + 1)
    for outcome in itertools.product((0, 1), repeat=r):
        o = np.array(outcome)
        pmf[o.sum()] += np.prod(np.where(o == 1, p, 1.0 - p))
    return pmf


def max_size(p, tail):
    """Smallest ``m`` in ``[1, r]`` with ``P(|S| > m) <= tail`` (enumerated pmf)."""
    pmf = poisson_binomial(p)
    r = pmf.size - 1
    for m in range(r + 1):
        if pmf[m + 1 :].sum() <= tail:
            return min(max(m, 1), r)
    return r


def _log_fraction(x):
    """``log x`` of a positive ``Fraction`` whose parts may exceed the float range."""
    return math.log(x.numerator) - math.log(x.denominator)


def log_elementary_symmetric(values, k):
    """``(r + 1, k + 1)`` table of ``log e_l(values[:n])`` from exact rational sums.

    Each float is converted to a ``Fraction`` exactly; ``e_l`` is the sum over
    ``l``-subsets of the products (``itertools.combinations``); ``-inf`` when empty.
    """
    exact = [Fraction(float(v)) for v in values]
    table = np.full((len(exact) + 1, k + 1), -np.inf)
    for n in range(len(exact) + 1):
        for l in range(min(n, k) + 1):
            total = sum(
                (math.prod(c) for c in itertools.combinations(exact[:n], l)), Fraction(0)
            )
            if total > 0:
                table[n, l] = _log_fraction(total)
    return table


def log_binomial(n, k):
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
