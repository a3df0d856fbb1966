"""Tests for jaxsampling.kernels.graphs: CSR construction, validation, shipped graphs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse

from jaxsampling.kernels import graphs


def _edge_set(g):
    indptr, indices = np.asarray(g.indptr), np.asarray(g.indices)
    rows = np.repeat(np.arange(g.num_nodes), np.diff(indptr))
    return set(zip(rows.tolist(), indices.tolist()))


def test_from_edges_sorts_and_merges_duplicates():
    g = graphs.from_edges([2, 0, 2, 0, 2], [1, 2, 0, 2, 1], num_nodes=4, weights=[1, 2, 3, 4, 5])
    assert g.indptr.tolist() == [0, 1, 1, 3, 3]
    assert g.indices.tolist() == [2, 0, 1]
    assert g.weights.tolist() == [6.0, 3.0, 6.0]  # 0->2 twice, 2->1 twice
    assert g.indptr.dtype == g.indices.dtype == jnp.int32
    assert degrees_list(g) == [1, 0, 2, 0]
    assert graphs.weighted_degrees(g).tolist() == [6.0, 0.0, 9.0, 0.0]


def degrees_list(g):
    return graphs.degrees(g).tolist()


def test_symmetric_adds_reverse_edges():
    g = graphs.from_edges([0, 1], [1, 2], symmetric=True)
    assert _edge_set(g) == {(0, 1), (1, 0), (1, 2), (2, 1)}
    assert g.weights is None and graphs.weighted_degrees(g).tolist() == [1.0, 2.0, 1.0]


def test_karate_club_matches_networkx():
    g = graphs.karate_club()
    assert (g.num_nodes, g.num_edges) == (34, 156)
    edges = _edge_set(g)
    assert edges == {(j, i) for i, j in edges}  # undirected
    assert all(i != j for i, j in edges)
    deg = degrees_list(g)
    assert (deg[0], deg[33], sum(deg)) == (16, 17, 156)
    nx = pytest.importorskip("networkx")
    reference = graphs.from_networkx(nx.karate_club_graph())
    np.testing.assert_array_equal(reference.indptr, g.indptr)
    np.testing.assert_array_equal(reference.indices, g.indices)
    weighted = graphs.from_networkx(nx.karate_club_graph(), weight="weight")
    assert weighted.weights is not None and float(weighted.weights.min()) >= 1


def test_from_networkx_directed_keeps_direction_and_relabels():
    nx = pytest.importorskip("networkx")
    d = nx.DiGraph()
    d.add_edge("a", "b", weight=2.5)
    d.add_edge("b", "c")
    g = graphs.from_networkx(d, weight="weight")
    assert _edge_set(g) == {(0, 1), (1, 2)}
    assert g.weights.tolist() == [2.5, 1.0]


def test_from_scipy_round_trip():
    m = scipy.sparse.random(30, 30, density=0.2, random_state=np.random.default_rng(0), format="csr")
    g = graphs.from_scipy(m)
    back = scipy.sparse.csr_matrix(
        (np.asarray(g.weights), np.asarray(g.indices), np.asarray(g.indptr)), shape=(30, 30)
    )
    np.testing.assert_allclose(back.toarray(), m.toarray().astype(np.float32))
    assert graphs.from_scipy(m, weighted=False).weights is None


def test_graph_is_a_pytree_under_jit_without_retrace():
    traces = []

    @jax.jit
    def total_weight(g):
        traces.append(1)
        return graphs.weighted_degrees(g).sum()

    g = graphs.from_edges([0, 1, 2], [1, 2, 0], weights=[1.0, 2.0, 3.0])
    h = graphs.from_edges([0, 1, 2], [2, 0, 1], weights=[4.0, 5.0, 6.0])
    assert float(total_weight(g)) == 6.0
    assert float(total_weight(h)) == 15.0
    assert len(traces) == 1
    assert len(jax.tree.leaves(g)) == 3


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(senders=[0, 1], receivers=[1]), "same length"),
        (dict(senders=[0.0], receivers=[1.0]), "integers"),
        (dict(senders=[0, -1], receivers=[1, 0]), "non-negative"),
        (dict(senders=[0, 5], receivers=[1, 0], num_nodes=3), "num_nodes = 3"),
        (dict(senders=[], receivers=[]), "at least one node"),
        (dict(senders=[0], receivers=[1], weights=[-1.0]), "non-negative"),
        (dict(senders=[0], receivers=[1], weights=[np.nan]), "finite"),
        (dict(senders=[0], receivers=[1], weights=[1.0, 2.0]), "weights must have shape"),
    ],
)
def test_from_edges_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        graphs.from_edges(**kwargs)


@pytest.mark.parametrize(
    "graph, match",
    [
        (graphs.CSRGraph(jnp.array([0, 2, 2]), jnp.array([1, 0])), "indices of row 0"),
        (graphs.CSRGraph(jnp.array([0, 2, 1]), jnp.array([1, 0])), "non-decreasing"),
        (graphs.CSRGraph(jnp.array([0, 1, 3]), jnp.array([1, 0])), "end at len"),
        (graphs.CSRGraph(jnp.array([0, 1, 2]), jnp.array([1, 2])), r"\[0, num_nodes = 2\)"),
        (graphs.CSRGraph(jnp.array([0.0, 1.0]), jnp.array([0])), "indptr must be"),
        (
            graphs.CSRGraph(jnp.array([0, 1, 2]), jnp.array([1, 0]), jnp.array([1.0, -2.0])),
            "weights must be finite and non-negative",
        ),
        (
            graphs.CSRGraph(jnp.array([0, 1, 2]), jnp.array([1, 0]), jnp.array([1, 2])),
            "weights must be a float array",
        ),
    ],
)
def test_validate_names_the_bad_field(graph, match):
    with pytest.raises(ValueError, match=match):
        graphs.validate(graph)


def test_empty_node_list_with_num_nodes_is_a_graph_of_isolated_nodes():
    g = graphs.from_edges([], [], num_nodes=3)
    assert g.num_edges == 0 and degrees_list(g) == [0, 0, 0]


def test_grid_2d():
    g = graphs.grid_2d(3, 4)
    assert (g.num_nodes, g.num_edges) == (12, 2 * (3 * 3 + 2 * 4))
    assert _edge_set(g) >= {(0, 1), (1, 0), (0, 4), (5, 9)}
    assert (0, 5) not in _edge_set(g) and (3, 4) not in _edge_set(g)
    assert sorted(set(degrees_list(g))) == [2, 3, 4]
    with pytest.raises(ValueError, match="rows and cols"):
        graphs.grid_2d(0, 3)


def test_barabasi_albert_structure_and_determinism():
    g = graphs.barabasi_albert(500, 4, seed=3)
    graphs.validate(g)
    edges = _edge_set(g)
    assert g.num_edges == 2 * 4 * (500 - 4)  # distinct edges, both directions
    assert all((j, i) in edges for i, j in edges) and all(i != j for i, j in edges)
    d = np.asarray(graphs.degrees(g))
    assert d.min() == 4 and d.max() > 10 * 4  # preferential attachment: hubs
    # Node k >= m attaches to m earlier nodes.
    later = [sum(1 for j in range(g.indptr[k], g.indptr[k + 1]) if g.indices[j] < k)
             for k in (4, 100, 499)]
    assert later == [4, 4, 4]
    np.testing.assert_array_equal(graphs.barabasi_albert(500, 4, seed=3).indices, g.indices)
    assert not np.array_equal(graphs.barabasi_albert(500, 4, seed=4).indices, g.indices)
    with pytest.raises(ValueError, match="num_nodes > m"):
        graphs.barabasi_albert(3, 3)
