"""The bundled Mix3toMix10 W2 benchmark against the shared reference arrays and its README."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch

from skmetaot.datasets import W2BenchmarkPair, load_w2_benchmark

DIMS = (2, 4, 8, 16, 32, 64, 128)
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "w2bench"

# Section 7 (a) of the shared README: identity UVP, "L" UVP and cos(L) recomputed on x_test.
README_BASELINES = {
    2: (32.9, 14.0, 0.757), 4: (42.1, 14.8, 0.808), 8: (59.1, 27.0, 0.741),
    16: (89.3, 41.5, 0.739), 32: (118.1, 55.0, 0.745), 64: (134.9, 63.6, 0.749),
    128: (144.7, 63.8, 0.770),
}


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """One intra-op thread: on a small shared CPU the torch thread pool runs ~10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@cache
def pair(dim: int) -> W2BenchmarkPair:
    return load_w2_benchmark(dim)


@cache
def shared_arrays(dim: int) -> dict[str, np.ndarray]:
    path = SHARED / f"mix3tomix10_D{dim}.npz"
    if not path.exists():
        pytest.skip(f"the shared W2 benchmark arrays are not available ({path} is absent)")
    with np.load(path) as data:
        return {key: data[key] for key in ("x_test", "Tx_test", "var_target", "cost")}


@pytest.mark.parametrize("dim", DIMS)
def test_regenerated_x_test_equals_shared(dim):
    ref = shared_arrays(dim)["x_test"]
    x = pair(dim).x_test
    assert x.dtype == np.float32 and x.shape == ref.shape
    np.testing.assert_array_equal(x, ref)


@pytest.mark.parametrize("dim", DIMS)
def test_transport_map_reproduces_shared_Tx_test(dim):
    ref = shared_arrays(dim)
    for mapped in (pair(dim).Tx_test, pair(dim).transport_map(ref["x_test"])):
        diff = mapped.astype(np.float64) - ref["Tx_test"]
        assert np.abs(diff).max() <= 1e-4
        assert np.sqrt((diff**2).sum() / (ref["Tx_test"].astype(np.float64) ** 2).sum()) <= 1e-5
    # The bundled constants are the shared ones.
    assert pair(dim).var_target == float(ref["var_target"])
    assert pair(dim).cost == float(ref["cost"])


@pytest.mark.parametrize("dim", DIMS)
def test_baselines_match_readme_section_7(dim):
    p = pair(dim)
    identity_uvp, linear_uvp, linear_cos = README_BASELINES[dim]
    linear = p.linear_map(p.x_test)
    assert p.uvp(p.x_test) == pytest.approx(identity_uvp, abs=0.1)
    assert p.uvp(linear) == pytest.approx(linear_uvp, abs=0.1)
    assert p.cosine(linear) == pytest.approx(linear_cos, abs=2e-3)
    # The published L row is within 0.35 points of the recomputation (README section 7).
    assert p.uvp(linear) == pytest.approx(p.published["L"], abs=0.4)
    # The identity UVP is 100 * 2 * cost / var_target (README section 5).
    assert p.uvp(p.x_test) == pytest.approx(200 * p.cost / p.var_target, rel=1e-4)


def test_exact_map_scores():
    p = pair(8)
    assert p.uvp(p.Tx_test) == 0.0
    assert p.cosine(p.Tx_test) == pytest.approx(1.0, abs=1e-12)
    assert p.cosine(p.x_test) == 0.0  # the benchmark's convention for the identity
    assert p.uvp(p.transport_map) == pytest.approx(0.0, abs=1e-9)  # a callable is applied
    assert p.uvp(torch.from_numpy(p.Tx_test)) == 0.0
    with pytest.raises(ValueError, match="shape"):
        p.uvp(p.Tx_test[:10])


def test_test_set_is_protected_from_edits():
    p = pair(2)
    x = p.x_test
    x[:] = 0.0
    assert p.uvp(p.x_test) == pytest.approx(README_BASELINES[2][0], abs=0.1)


def test_published_rows():
    assert pair(2).published == {
        "W2GN": 0.1, "MM": 0.1, "L": 14.1, "ID": 32.7,
        "ICNN regression+L-BFGS (Amos 2023)": 0.26, "MLP regression+L-BFGS (Amos 2023)": 0.03,
    }
    assert pair(128).published["MLP regression+L-BFGS (Amos 2023)"] == 0.67
    assert pair(64).published["ICNN regression+L-BFGS (Amos 2023)"] == 4.41


@pytest.mark.parametrize("dim", (2, 16, 128))
def test_sample_source_moments(dim):
    p = pair(dim)
    x = p.sample_source(2**15, random_state=0).astype(np.float64)
    # The rescaled mixture has mean 0 and total variance D exactly (README section 2).
    np.testing.assert_allclose(p.mean_source, 0.0, atol=1e-6)
    assert np.trace(p.cov_source) == pytest.approx(dim, rel=1e-5)
    # Monte Carlo: entry standard errors are about 1 / sqrt(n) ~ 0.006; allow ~6-8 sigma maxima.
    assert np.abs(x.mean(0) - p.mean_source).max() < 0.035
    assert np.abs(np.cov(x.T) - p.cov_source).max() < 0.05
    assert np.trace(np.cov(x.T)) == pytest.approx(dim, rel=0.02)


def test_sample_target_is_standardised():
    p = pair(16)
    y = p.sample_target(2**15, random_state=1).astype(np.float64)
    assert np.linalg.norm(y.mean(0)) < 0.15
    assert y.var(0).sum() == pytest.approx(p.var_target, rel=0.03)


@pytest.mark.parametrize("dim", (2, 32, 128))
def test_potential_is_convex_along_random_chords(dim):
    p = pair(dim)
    a, b = (p.sample_source(64, random_state=s).astype(np.float64) * 2 for s in (2, 3))
    t = np.linspace(0.0, 1.0, 11)[:, None, None]
    points = (1 - t) * a + t * b  # (11, 64, dim)
    values = p.potential(points.reshape(-1, dim)).reshape(11, 64)
    chord = (1 - t[..., 0]) * values[0] + t[..., 0] * values[-1]
    assert (values <= chord + 1e-9 * (1 + np.abs(chord))).all()
    assert (np.diff(values, 2, axis=0) >= -1e-8).all()
    # Strong convexity makes the gradient strictly monotone: <T(a) - T(b), a - b> > 0.
    assert (np.sum((p.transport_map(a) - p.transport_map(b)) * (a - b), 1) > 0).all()


@pytest.mark.parametrize("dim", (4, 64))
def test_transport_map_is_gradient_of_potential(dim):
    p = pair(dim)
    x = p.sample_source(16, random_state=4).astype(np.float64)
    v = np.random.default_rng(5).standard_normal(x.shape)
    h = 1e-5
    numeric = (p.potential(x + h * v) - p.potential(x - h * v)) / (2 * h)
    np.testing.assert_allclose(numeric, np.sum(p.transport_map(x) * v, 1), rtol=1e-6, atol=1e-6)


def test_array_kinds_and_shapes():
    p = pair(4)
    x = p.sample_source(5, random_state=0)
    out = p.transport_map(x)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (5, 4)
    xt = torch.from_numpy(x.astype(np.float64))
    out_t = p.transport_map(xt)
    assert isinstance(out_t, torch.Tensor) and out_t.dtype == torch.float64
    np.testing.assert_allclose(out_t.numpy(), out, atol=1e-5)
    assert not p.transport_map(xt.requires_grad_()).requires_grad
    assert p.transport_map(x[0]).shape == (4,)
    assert p.potential(x).shape == (5,) and isinstance(p.potential(xt), torch.Tensor)
    assert isinstance(p.linear_map(xt), torch.Tensor) and p.linear_map(x).shape == (5, 4)
    assert p.transport_map(np.empty((0, 4))).shape == (0, 4)
    with pytest.raises(ValueError, match="shape"):
        p.transport_map(np.zeros((3, 5)))


def test_sampling_interface():
    p = pair(8)
    xs, xt = p.as_pair(100, random_state=7)
    assert xs.shape == xt.shape == (100, 8) and xs.dtype == xt.dtype == np.float32
    xs2, xt2 = p.as_pair(100, random_state=7)
    np.testing.assert_array_equal(xs, xs2)
    np.testing.assert_array_equal(xt, xt2)
    # The target samples are fresh: not the map of the source samples returned with them.
    assert not np.allclose(p.transport_map(xs), xt)
    np.testing.assert_array_equal(p.sample_source(10, np.random.default_rng(1)),
                                  p.sample_source(10, 1))
    assert p.sample_source(10, np.random.RandomState(0)).shape == (10, 8)
    with pytest.raises(TypeError, match="random_state"):
        p.sample_source(10, random_state="seed")
    with pytest.raises(ValueError, match="non-negative"):
        p.sample_source(-1)


def test_float64_variant():
    p64 = load_w2_benchmark(2, dtype="float64")
    assert p64.x_test.dtype == np.float64 and p64.sample_target(3, 0).dtype == np.float64
    np.testing.assert_array_equal(p64.x_test.astype(np.float32), pair(2).x_test)
    assert p64.n_test == 16384 and pair(64).n_test == 8192


@pytest.mark.parametrize("dim", (0, 3, 256, 2.0, True, "2", None))
def test_invalid_dim_raises(dim):
    with pytest.raises(ValueError, match="dim"):
        load_w2_benchmark(dim)
