"""Solvers and estimators on every available device agree with float64 on the CPU.

On a CPU-only machine these run on ``cpu`` alone; with CUDA they also run on ``cuda`` (the
GPU check, ``benchmarks/gpu_check.sh``, runs this file on the GPU machine).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skmetaot import MetaSinkhornTransport, sinkhorn
from skmetaot.datasets import make_mnist_pairs, make_sphere_supply_demand

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="module")
def mnist_pairs():
    return make_mnist_pairs(6, split="test", random_state=0, dtype="float64")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("device", DEVICES)
def test_grid_solve_on_device_matches_cpu_float64(device, dtype, mnist_pairs):
    """Zero weights (most MNIST pixels), per-problem stopping, both precisions."""
    reference = sinkhorn(mnist_pairs, epsilon=1e-2, tol=1e-4, max_iter=2000, device="cpu")
    result = sinkhorn(mnist_pairs, epsilon=1e-2, tol=1e-4, max_iter=2000, device=device,
                      dtype=dtype)
    assert np.all(result.converged)
    assert np.all(np.asarray(result.errors) < 1e-4)
    iters, ref_iters = np.asarray(result.n_iter), np.asarray(reference.n_iter)
    assert len(set(ref_iters.tolist())) > 1  # the pairs stop at different iterations
    if dtype == "float64":
        np.testing.assert_array_equal(iters, ref_iters)
    else:
        assert np.all(np.abs(iters - ref_iters) <= 2)
    support = np.asarray(mnist_pairs.a) > 0
    f, f_ref = np.asarray(result.f), np.asarray(reference.f)
    assert np.all(np.isneginf(f[~support]))
    for k in range(len(f)):  # potentials are defined up to a constant shift per pair
        mine, ref = f[k][support[k]], f_ref[k][support[k]]
        np.testing.assert_allclose(mine - mine.mean(), ref - ref.mean(),
                                   atol=1e-4 if dtype == "float64" else 1e-2)


@pytest.mark.parametrize("device", DEVICES)
def test_tensors_stay_on_their_device(device):
    generator = torch.Generator().manual_seed(0)
    a = torch.rand(3, 7, generator=generator, dtype=torch.float64).to(device)
    b = torch.rand(3, 5, generator=generator, dtype=torch.float64).to(device)
    cost = torch.rand(7, 5, generator=generator, dtype=torch.float64).to(device)
    result = sinkhorn(a, b, cost, epsilon=0.1, tol=1e-8)
    assert result.f.device.type == device and result.g.device.type == device
    reference = sinkhorn(a.cpu(), b.cpu(), cost.cpu(), epsilon=0.1, tol=1e-8)
    torch.testing.assert_close(result.f.cpu(), reference.f, atol=1e-8, rtol=0)


@pytest.mark.parametrize("device", DEVICES)
def test_dense_spherical_solve_on_device(device):
    pairs = make_sphere_supply_demand(2, n_demand=300, random_state=0, dtype="float64")
    result = sinkhorn(pairs, cost="spherical", epsilon=1e-2, tol=1e-3, max_iter=5000,
                      geometry="dense", device=device)
    reference = sinkhorn(pairs, cost="spherical", epsilon=1e-2, tol=1e-3, max_iter=5000,
                         geometry="dense", device="cpu")
    assert np.all(result.converged)
    np.testing.assert_array_equal(np.asarray(result.n_iter), np.asarray(reference.n_iter))


@pytest.mark.parametrize("device", DEVICES)
def test_meta_sinkhorn_trains_predicts_and_refines_on_device(device, mnist_pairs):
    est = MetaSinkhornTransport(hidden_layer_sizes=(16,), max_iter=5, batch_size=8,
                                device=device, random_state=0)
    est.fit(make_mnist_pairs(32, random_state=0, dtype="float32"))
    assert next(est.model_.parameters()).device.type == device
    f, g = est.predict_potentials(mnist_pairs)
    assert np.isfinite(np.asarray(f)[np.asarray(mnist_pairs.a) > 0]).all()
    results = est.refine(mnist_pairs, tol=1e-3, max_iter=2000)
    assert all(r.log["err"] < 1e-3 for r in results)
