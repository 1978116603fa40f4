"""Determinism: the same random_state on the same device gives the same results, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skmetaot import MetaICNNTransport, MetaSinkhornTransport, NeuralW2Transport, sinkhorn
from skmetaot.datasets import make_mnist_pairs


def _clouds():
    rng = np.random.default_rng(0)
    return [(rng.normal(size=(40, 2)), 1 + rng.normal(size=(50, 2))) for _ in range(4)]


def _one_pair():
    rng = np.random.default_rng(1)
    return rng.normal(size=(200, 2)), 2 * rng.normal(size=(200, 2))


ESTIMATORS = {
    "meta_sinkhorn": (MetaSinkhornTransport, dict(hidden_layer_sizes=(16,), batch_size=8),
                      lambda: make_mnist_pairs(32, split="train", random_state=0)),
    "meta_icnn": (MetaICNNTransport,
                  dict(icnn_hidden_sizes=(8,), encoder_features=8, hidden_layer_sizes=(16,),
                       batch_size=2, n_samples=32, pretrain_iter=5), _clouds),
    "neural_w2": (NeuralW2Transport, dict(hidden_layer_sizes=(8, 8), batch_size=32,
                                          pretrain_iter=5), _one_pair),
}


def _state(est):
    return {f"{name}.{key}": value.detach().clone()
            for name, module in vars(est).items() if isinstance(module, torch.nn.Module)
            for key, value in module.state_dict().items()}


@pytest.fixture(params=sorted(ESTIMATORS))
def estimator_case(request):
    cls, params, make_data = ESTIMATORS[request.param]
    return cls, dict(params, max_iter=10, device="cpu"), make_data()


def test_same_random_state_same_model(estimator_case):
    cls, params, data = estimator_case
    first = _state(cls(**params, random_state=3).fit(data))
    torch.manual_seed(12345)  # the global torch RNG has no say: fit seeds from random_state
    np.random.seed(54321)
    second = _state(cls(**params, random_state=3).fit(data))
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key
    other = _state(cls(**params, random_state=4).fit(data))
    assert any(not torch.equal(first[k], other[k]) for k in first)


def test_same_random_state_same_refinement(estimator_case):
    cls, params, data = estimator_case
    results = []
    for _ in range(2):
        est = cls(**params, random_state=0).fit(data)
        if cls is MetaSinkhornTransport:
            results.append(np.stack([r.potentials[0] for r in est.refine(data[:4], tol=1e-4)]))
        elif cls is MetaICNNTransport:
            refined = est.refine(data[:2], max_iter=5)
            results.append(np.concatenate([m.transform(data[0][0]) for m in refined]))
        else:
            results.append(est.refine(max_iter=5).transform(data[0][:20]))
    np.testing.assert_array_equal(results[0], results[1])


def test_random_state_none_follows_numpy_global_seed():
    data = make_mnist_pairs(16, split="train", random_state=0)
    params = dict(hidden_layer_sizes=(8,), batch_size=4, max_iter=3, device="cpu")
    np.random.seed(7)
    first = _state(MetaSinkhornTransport(**params).fit(data))
    np.random.seed(7)
    second = _state(MetaSinkhornTransport(**params).fit(data))
    assert all(torch.equal(first[k], second[k]) for k in first)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sinkhorn_is_deterministic(dtype):
    pairs = make_mnist_pairs(8, split="test", random_state=0)
    runs = [sinkhorn(pairs, epsilon=1e-2, tol=1e-6, max_iter=300, dtype=dtype)
            for _ in range(2)]
    np.testing.assert_array_equal(runs[0].f, runs[1].f)
    np.testing.assert_array_equal(runs[0].g, runs[1].g)
    np.testing.assert_array_equal(runs[0].n_iter, runs[1].n_iter)
