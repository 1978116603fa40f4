"""Large collections: batched prediction and refinement, lazy plans, streaming, bounded memory."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import ot
import pytest
import torch
from sklearn.datasets import load_digits

import skmetaot._otresult
import skmetaot.estimators._refinement
import skmetaot.estimators.meta_sinkhorn
import skmetaot.solvers.entropic
import skmetaot.solvers.result
from skmetaot import HistogramPairs, MetaICNNTransport, MetaSinkhornTransport, pairs_from_images
from skmetaot.solvers import sinkhorn, solve_pairs
from skmetaot.solvers.entropic import default_batch_size, pair_plans

#: Batch sizes to compare with one batch of everything: 1, non-divisors of 11, the default.
BATCH_SIZES = (1, 3, 4, 10, None)
N_PAIRS = 11


@pytest.fixture(scope="module")
def digits():
    """Train and test pairs of 8 x 8 digits (a 64-point grid), float64, numpy."""
    images = load_digits().images
    rng = np.random.RandomState(0)
    pick = rng.randint(len(images), size=(2, 64 + N_PAIRS))
    pairs = pairs_from_images(images[pick[0]], images[pick[1]])
    return pairs[:64], pairs[64:]


@pytest.fixture(scope="module")
def fitted(digits):
    train, _ = digits
    return MetaSinkhornTransport(hidden_layer_sizes=(32,), max_iter=30, batch_size=16,
                                 epsilon=1e-2, dtype="float64", device="cpu",
                                 random_state=0).fit(train)


# -- batched prediction and refinement equal one batch ------------------------------------------
@pytest.mark.parametrize("batch_size", BATCH_SIZES)
def test_batched_predictions_equal_one_batch(fitted, digits, batch_size):
    _, test = digits
    whole = dict(chunk_size=N_PAIRS)
    f, g = fitted.predict_potentials(test, chunk_size=batch_size)
    f_all, g_all = fitted.predict_potentials(test, **whole)
    np.testing.assert_allclose(f, f_all, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(g, g_all, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fitted.predict_plan(test, chunk_size=batch_size),
                               fitted.predict_plan(test, **whole), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(fitted.transform(test, chunk_size=batch_size),
                               fitted.transform(test, **whole), rtol=1e-10, atol=1e-12)
    assert fitted.score(test, chunk_size=batch_size) == pytest.approx(
        fitted.score(test, **whole), rel=1e-12)


@pytest.mark.parametrize("batch_size", BATCH_SIZES)
def test_batched_refine_equals_one_batch(fitted, digits, batch_size):
    _, test = digits
    ours = fitted.refine(test, tol=1e-6, chunk_size=batch_size)
    whole = fitted.refine(test, tol=1e-6, chunk_size=N_PAIRS)
    assert len(ours) == len(whole) == N_PAIRS
    for mine, ref in zip(ours, whole, strict=True):
        for p, q in zip(mine.potentials, ref.potentials, strict=True):
            np.testing.assert_allclose(p, q, rtol=1e-9, atol=1e-9)
        assert mine.log["niter"] == ref.log["niter"]
        assert mine.log["err"] == pytest.approx(ref.log["err"], rel=1e-6, abs=1e-12)
        assert mine.value == pytest.approx(ref.value, rel=1e-10)
        assert mine.value_linear == pytest.approx(ref.value_linear, rel=1e-10)


def test_solve_pairs_default_batches_are_bounded(monkeypatch):
    """Shared supports are no longer solved all at once: 70 problems of 1,024 atoms -> 3."""
    rng = np.random.default_rng(0)
    a, b = rng.random((70, 1024)) + 0.1, rng.random((70, 1024)) + 0.1
    pairs = HistogramPairs(a, b)  # a 1-D support: the dense kernel
    assert default_batch_size(pairs) == 32  # 2**25 / 1024**2
    calls = []
    original = skmetaot.solvers.entropic.solve_batch

    def counting(geometry, a, *args, **kwargs):
        calls.append(a.shape[0])
        return original(geometry, a, *args, **kwargs)

    monkeypatch.setattr(skmetaot.solvers.entropic, "solve_batch", counting)
    state = solve_pairs(pairs, epsilon=0.1, tol=1e-6, max_iter=20)
    assert calls == [32, 32, 6]
    whole = solve_pairs(pairs, epsilon=0.1, tol=1e-6, max_iter=20, batch_size=70)
    torch.testing.assert_close(state.f, whole.f, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(state.g, whole.g, rtol=1e-10, atol=1e-10)
    res = sinkhorn(a, b, x=np.linspace(0, 1, 1024)[:, None], y=np.linspace(0, 1, 1024)[:, None],
                   epsilon=0.1, tol=1e-6, max_iter=20)
    np.testing.assert_allclose(res.f, whole.f.numpy(), rtol=1e-10, atol=1e-10)


def test_default_batch_size_follows_the_budget():
    from skmetaot.datasets import make_mnist_pairs

    mnist = make_mnist_pairs(4, split="test", random_state=0)
    # A grid: a Sinkhorn step holds O(n + m) per pair, capped for the CPU's caches.
    assert default_batch_size(mnist) == (1 << 18) // (784 + 784)
    # Plans and maps: (B, 784, 784) within 2**25 elements.
    assert default_batch_size(mnist, dense=True) == (1 << 25) // 784**2
    # A callable cost (no separable kernel): the dense worst case.
    assert default_batch_size(mnist, cost=lambda x, y: torch.cdist(x, y)) == 54


# -- lazy plans -------------------------------------------------------------------------------
def test_lazy_plans_equal_the_eager_ones(fitted, digits):
    _, test = digits
    results = fitted.refine(test, tol=1e-6)
    pairs = fitted._validate_pairs(test, fitting=False)
    state = fitted._refine_state(pairs, 1e-6, None, "meta")
    eager = pair_plans(pairs, state, epsilon=fitted.epsilon, cost=fitted.cost).numpy()
    cost = ot.dist(pairs.x.numpy(), pairs.y.numpy())
    for k, result in enumerate(results):
        assert isinstance(result, ot.utils.OTResult) and result._plan is None
        plan = result.plan
        assert isinstance(plan, np.ndarray) and plan.shape == (64, 64)  # numpy in, numpy out
        np.testing.assert_allclose(plan, eager[k], rtol=1e-12, atol=1e-300)
        linear = float((cost * plan).sum())
        neg_entropy = float((plan[plan > 0] * np.log(plan[plan > 0])).sum())
        assert result.value_linear == pytest.approx(linear, rel=1e-10)
        # ot.solve(..., reg_type="entropy")'s value: <C, P> + eps sum P log P.
        assert result.value == pytest.approx(linear + fitted.epsilon * neg_entropy, rel=1e-10)
        marginal_a, marginal_b = result.marginals
        np.testing.assert_allclose(marginal_b, test.b[k].numpy(), atol=1e-12)  # g = g(f)
        assert np.abs(marginal_a - test.a[k].numpy()).sum() == pytest.approx(result.log["err"])
        np.testing.assert_allclose(result.sparse_plan.toarray(), plan)
        assert "lazy" in repr(result)


def test_refined_pairs_agree_with_pot(fitted, digits):
    _, test = digits
    result = fitted.refine(test[:1], tol=1e-10, max_iter=100_000)[0]
    a, b = test.a[0].numpy(), test.b[0].numpy()
    keep_a, keep_b = a > 0, b > 0  # POT's solver wants positive weights
    cost = ot.dist(test.x.numpy(), test.y.numpy())[np.ix_(keep_a, keep_b)]
    pot = ot.solve(cost, a[keep_a], b[keep_b], reg=fitted.epsilon, max_iter=100_000, tol=1e-13)
    np.testing.assert_allclose(result.plan[np.ix_(keep_a, keep_b)], pot.plan, atol=1e-8)
    assert result.value_linear == pytest.approx(pot.value_linear, rel=1e-6)


def test_lazy_results_keep_torch_and_pickle(fitted, digits):
    _, test = digits
    pairs = HistogramPairs(test.a, test.b, test.x)  # torch in
    (result,) = fitted.refine(pairs[:1], tol=1e-6)
    assert isinstance(result.plan, torch.Tensor) and result.plan.shape == (64, 64)
    assert all(isinstance(p, torch.Tensor) for p in result.potentials)
    torch.testing.assert_close(result.marginal_b, pairs.b[0], rtol=0, atol=1e-12)
    again = pickle.loads(pickle.dumps(result))
    torch.testing.assert_close(again.plan, result.plan, rtol=0, atol=0)
    assert again.value == result.value and again.log == result.log


def test_refine_materialises_no_plan_until_one_is_read(fitted, digits, monkeypatch):
    _, test = digits
    built = []
    for module in (skmetaot._otresult, skmetaot.estimators.meta_sinkhorn,
                   skmetaot.solvers.result):
        original = module.transport_plan

        def counting(cost, f, g, epsilon, original=original):
            built.append(f.shape[0])
            return original(cost, f, g, epsilon)

        monkeypatch.setattr(module, "transport_plan", counting)
    results = fitted.refine(test, tol=1e-4)
    assert built == []  # values, statuses and logs came without a single plan
    assert all(r._plan is None for r in results)
    assert results[3].plan.shape == (64, 64)
    assert built == [1]  # one plan, of one pair, when read
    results[3].plan  # noqa: B018 -- recomputed, not kept
    assert built == [1, 1] and results[3]._plan is None


# -- streaming --------------------------------------------------------------------------------
def test_iter_refine_yields_batch_by_batch(fitted, digits, monkeypatch):
    _, test = digits
    solved = []
    original = skmetaot.estimators._refinement.solve_pairs

    def counting(pairs, **kwargs):
        solved.append(pairs.n_pairs)
        return original(pairs, **kwargs)

    monkeypatch.setattr(skmetaot.estimators._refinement, "solve_pairs", counting)
    stream = fitted.iter_refine(test, tol=1e-6, chunk_size=4)
    assert solved == []  # nothing is solved before the first batch is asked for
    first = next(stream)
    assert len(first) == 4 and solved == [4]
    rest = list(stream)
    assert [len(batch) for batch in rest] == [4, 3] and solved == [4, 4, 3]
    whole = fitted.refine(test, tol=1e-6)
    streamed = first + [r for batch in rest for r in batch]
    for mine, ref in zip(streamed, whole, strict=True):
        np.testing.assert_allclose(mine.potentials[0], ref.potentials[0], rtol=1e-9, atol=1e-9)


def test_iter_refine_checks_its_arguments_at_once(fitted, digits):
    _, test = digits
    with pytest.raises(ValueError, match="init"):
        fitted.iter_refine(test, init="magic")
    with pytest.raises(ValueError, match="tol"):
        fitted.iter_refine(test, tol=-1.0)
    for method in ("refine", "iter_refine", "predict_potentials", "predict_plan", "transform",
                   "score"):
        with pytest.raises(ValueError, match="chunk_size"):
            getattr(fitted, method)(test, chunk_size=0)


def test_the_former_chunk_argument_name_still_works_with_a_warning(fitted, digits):
    _, test = digits
    with pytest.warns(FutureWarning, match="renamed chunk_size"):
        old = fitted.predict_potentials(test, batch_size=3)
    np.testing.assert_array_equal(old[0], fitted.predict_potentials(test, chunk_size=3)[0])
    with pytest.warns(FutureWarning, match="renamed chunk_size"):
        assert len(fitted.refine(test, tol=1e-3, batch_size=4)) == N_PAIRS
    with pytest.raises(TypeError, match="both chunk_size= and"):
        fitted.transform(test, chunk_size=2, batch_size=2)


# -- bounded memory ---------------------------------------------------------------------------
MEMORY_SCRIPT = textwrap.dedent("""
    import json
    import numpy as np
    from skmetaot import MetaSinkhornTransport
    from skmetaot.datasets import make_mnist_pairs

    def status(field):
        with open("/proc/self/status") as handle:
            return next(int(line.split()[1]) / 1024 for line in handle
                        if line.startswith(field + ":"))

    pairs = make_mnist_pairs(400, split="test", random_state=0, dtype="float32")
    est = MetaSinkhornTransport(hidden_layer_sizes=(8,), max_iter=2, device="cpu",
                                random_state=0).fit(pairs[:16])
    est.refine(pairs[:4], tol=1e-2)
    with open("/proc/self/clear_refs", "w") as handle:  # the peak from here on
        handle.write("5")
    before = status("VmRSS")
    results = est.refine(pairs, tol=1e-2)
    print(json.dumps({"growth_mb": status("VmHWM") - before, "n": len(results),
                      "plan": list(results[0].plan.shape)}))
""")


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_refine_of_many_pairs_holds_no_dense_plans():
    """400 MNIST pairs: their dense float32 plans would take 983 MB; refine stays far below."""
    out = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT], capture_output=True, text=True,
                         check=False, timeout=300,
                         env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin",
                              "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    if out.returncode != 0 and "clear_refs" in out.stderr:
        pytest.skip("this kernel does not let a process reset its peak memory")
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["n"] == 400 and report["plan"] == [784, 784]
    assert report["growth_mb"] < 150, report


# -- MetaICNNTransport --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def icnn():
    rng = np.random.default_rng(0)
    pairs = [(rng.normal(size=(60, 2)), 1 + 0.5 * rng.normal(size=(50, 2))) for _ in range(5)]
    est = MetaICNNTransport(icnn_hidden_sizes=(8,), encoder_features=8, hidden_layer_sizes=(16,),
                            batch_size=2, n_samples=32, max_iter=3, pretrain_iter=3,
                            dtype="float64", device="cpu", random_state=0).fit(pairs)
    return est, pairs


@pytest.mark.parametrize("batch_size", (1, None))
def test_icnn_batched_prediction_and_refinement_equal_one_batch(icnn, batch_size):
    est, pairs = icnn
    np.testing.assert_allclose(est.predict_params(pairs, chunk_size=batch_size),
                               est.predict_params(pairs, chunk_size=5), rtol=1e-12, atol=1e-12)
    for mine, ref in zip(est.transform(pairs, chunk_size=batch_size), est.transform(pairs),
                         strict=True):
        np.testing.assert_allclose(mine, ref, rtol=1e-10, atol=1e-12)
    assert est.score(pairs, chunk_size=batch_size) == pytest.approx(est.score(pairs), rel=1e-10)
    # Each pair draws from its own generator, seeded from the estimator's state: batches of
    # any size give the same refined parameters.
    state = est._generator.get_state()
    refined = est.refine(pairs, max_iter=3, chunk_size=batch_size)
    est._generator.set_state(state)
    whole = est.refine(pairs, max_iter=3, chunk_size=5)
    for mine, ref in zip(refined, whole, strict=True):
        np.testing.assert_allclose(mine.parameters["psi"], ref.parameters["psi"], rtol=1e-9,
                                   atol=1e-12)
    with pytest.raises(ValueError, match="chunk_size"):
        est.predict_params(pairs, chunk_size=0)
