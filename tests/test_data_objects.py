"""Our data objects with scikit-learn's tools: splitting, DataFrames, numpy costs, broadcasting."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.spatial.distance import cdist
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.utils import _safe_indexing

import skmetaot
from skmetaot import HistogramPairs, MeasurePairs, MetaSinkhornTransport, as_pairs
from skmetaot.datasets import make_mnist_pairs
from skmetaot.measures import concat_pairs
from skmetaot.measures.continuous import as_measure_collection


def test_splitters_index_histogram_pairs_into_collections():
    pairs = make_mnist_pairs(12, random_state=0)
    for train, _ in KFold(3).split(pairs):
        part = _safe_indexing(pairs, train)
        assert isinstance(part, HistogramPairs) and len(part) == len(train)
        torch.testing.assert_close(part.a, pairs.a[torch.as_tensor(train)])
        assert part.x is pairs.x  # the supports are shared, not copied
    assert pairs[np.array([2, 0]), ...].n_pairs == 2
    with pytest.raises(IndexError, match="one axis"):
        pairs[0, 1]


def test_grid_search_over_histogram_pairs():
    pairs = make_mnist_pairs(48, random_state=0)
    search = GridSearchCV(MetaSinkhornTransport(hidden_layer_sizes=(16,), max_iter=2,
                                                batch_size=8, random_state=0),
                          {"learning_rate": [1e-3, 1e-2]}, cv=2, error_score="raise")
    search.fit(pairs)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_measure_pairs_split_and_lists_of_collections_join(rng):
    clouds = [(rng.random((4 + k, 2)), rng.random((5, 2))) for k in range(4)]
    pairs = as_pairs(clouds)
    part = _safe_indexing(pairs, [3, 1])
    assert isinstance(part, MeasurePairs) and part.source_sizes == [7, 5]
    joined = as_pairs([pairs[0], pairs[[2, 3]]])  # what list indexing of a collection gives
    assert joined.source_sizes == [4, 6, 7]
    hist = HistogramPairs(rng.random((3, 4)), rng.random((3, 4)))
    assert isinstance(concat_pairs([hist[0], hist[[1, 2]]]), HistogramPairs)
    mixed = concat_pairs([hist[0], as_pairs((rng.random((2, 1)), rng.random((3, 1))))])
    assert isinstance(mixed, MeasurePairs) and mixed.source_sizes == [4, 2]
    with pytest.raises(ValueError, match="dimensions"):
        concat_pairs([pairs[0], hist[0]])


def test_dataframe_pairs_are_accepted(rng):
    xs, xt = rng.normal(size=(64, 2)), rng.normal(size=(80, 2)) + 1.0
    frames = (pd.DataFrame(xs, columns=["u", "v"]), pd.DataFrame(xt, columns=["u", "v"]))
    pairs = as_pairs(frames)
    np.testing.assert_array_equal(pairs.x[0].numpy(), xs)
    assert as_measure_collection(frames).n_pairs == 1
    assert as_measure_collection([frames, frames]).n_pairs == 2
    est = skmetaot.NeuralW2Transport(max_iter=3, pretrain_iter=3, batch_size=32,
                                     random_state=0)
    assert est.fit(frames).transform(xs[:5]).shape == (5, 2)


def test_cost_callable_returning_numpy(rng):
    clouds = [(rng.random((5, 2)), rng.random((6, 2))), (rng.random((4, 2)), rng.random((7, 2)))]
    numpy_cost = skmetaot.sinkhorn(clouds, cost=lambda u, v: cdist(u, v), epsilon=0.1)
    torch_cost = skmetaot.sinkhorn(clouds, cost="euclidean", epsilon=0.1)
    for k in range(2):
        np.testing.assert_allclose(numpy_cost.f[k], torch_cost.f[k], atol=1e-10)
    with pytest.raises(TypeError, match="cost callable's result"):
        skmetaot.sinkhorn(clouds, cost=lambda u, v: "far", epsilon=0.1)


def test_one_measure_is_broadcast_over_a_batch(rng):
    a, b = rng.random((4, 6)) + 0.1, rng.random(5) + 0.1
    pairs = HistogramPairs(a, b, rng.random((6, 2)), rng.random((5, 2)))
    assert pairs.b.shape == (4, 5)
    np.testing.assert_allclose(pairs.b.numpy(), np.tile(b / b.sum(), (4, 1)))
    assert HistogramPairs(a[0], rng.random((3, 6))).a.shape == (3, 6)
    with pytest.raises(ValueError, match="a has 4 pairs but b has 3"):
        HistogramPairs(a, rng.random((3, 6)))
