import pickle

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from skmetaot import MetaICNNTransport, TransportPotential
from skmetaot.amortize import TrainingDiverged
from skmetaot.amortize.w2gn import refine_w2gn
from skmetaot.datasets import make_gaussian_pair
from skmetaot.measures.continuous import as_measure_collection

SMALL = dict(icnn_hidden_sizes=(16,), encoder_features=32, hidden_layer_sizes=(64,),
             batch_size=4, n_samples=128, pretrain_iter=100, refine_max_iter=50)


def gaussian_family(n_pairs, dim=2, seed=0, n=512):
    pairs = [make_gaussian_pair(dim, random_state=seed + k) for k in range(n_pairs)]
    return pairs, [p.as_pair(n, random_state=seed + 1000 + k) for k, p in enumerate(pairs)]


@pytest.fixture(scope="module")
def trained():
    known, samples = gaussian_family(24)
    est = MetaICNNTransport(max_iter=250, random_state=0, **SMALL).fit(samples[:18])
    return est, known[18:], samples[18:]


def images(n=4, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(12 + k, 10, 3), dtype=np.uint8) for k in range(n)]


# -- learning -------------------------------------------------------------------------------
def test_prediction_beats_identity_on_held_out_pairs(trained):
    est, known, samples = trained
    predicted = est.predict_potentials(samples)
    pred_uvp = [p.uvp(pot.transform(p.x_test)) for p, pot in zip(known, predicted, strict=True)]
    identity_uvp = [p.uvp(p.x_test) for p in known]
    assert np.median(pred_uvp) < 0.5 * np.median(identity_uvp)


def test_refine_from_prediction_beats_refine_from_identity(trained):
    est, known, samples = trained
    steps = 40
    meta = est.refine(samples, max_iter=steps)
    scratch = est.refine(samples, max_iter=steps, init="identity")
    meta_uvp = np.median([p.uvp(m.transform(p.x_test)) for p, m in zip(known, meta,
                                                                       strict=True)])
    scratch_uvp = np.median([p.uvp(m.transform(p.x_test)) for p, m in zip(known, scratch,
                                                                          strict=True)])
    assert meta_uvp < scratch_uvp


def test_refine_improves_the_dual(trained):
    est, _, samples = trained
    before = est.score(samples[:3])
    refined = est.refine(samples[:3], max_iter=150)
    after = np.mean([pot.dual_value(*s) for pot, s in zip(refined, samples[:3], strict=True)])
    assert after > before


def test_history_records_every_step(trained):
    est, _, _ = trained
    history = est.history_
    assert len(history["loss"]) == len(history["dual"]) == len(history["cycle_loss"]) == 250
    assert est.n_iter_ == 250
    assert np.mean(history["loss"][-25:]) < np.mean(history["loss"][:25])
    assert history["pretrain_loss"][-1] < history["pretrain_loss"][0]


# -- potentials -----------------------------------------------------------------------------
def test_predicted_potentials_are_convex_and_consistent(trained):
    est, known, samples = trained
    potential = est.predict_potentials(samples[:1])[0]
    assert isinstance(potential, TransportPotential)
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(200, 2)), rng.normal(size=(200, 2))
    mid = potential((x + y) / 2)
    assert np.all(mid <= (potential(x) + potential(y)) / 2 + 1e-5)
    n = est.icnn_.n_params
    assert potential.parameters["psi"].shape == (n,)
    assert potential.parameters["psi_bar"].shape == (n,)
    # inverse_transform solves the conjugate, so it inverts the forward map
    points = known[0].x_test[:64]
    back = potential.inverse_transform(potential.transform(points))
    np.testing.assert_allclose(back, points, atol=1e-3)


def test_transform_is_the_gradient_of_the_predicted_potential(trained):
    est, _, samples = trained
    mapped = est.transform(samples[:2])
    potentials = est.predict_potentials(samples[:2])
    for (source, _), out, pot in zip(samples[:2], mapped, potentials, strict=True):
        assert out.shape == source.shape and isinstance(out, np.ndarray)
        np.testing.assert_allclose(out, pot.transform(source), atol=1e-6)


def test_inverse_transform_undoes_transform_on_each_pair(trained):
    est, known, samples = trained
    pairs = samples[:2]
    back = est.inverse_transform(pairs)  # each pair's target samples, mapped back
    assert [b.shape for b in back] == [t.shape for _, t in pairs]
    assert all(isinstance(b, np.ndarray) and np.isfinite(b).all() for b in back)
    # T^-1(T(x)) = x on each pair's own source points (the conjugate is solved).
    mapped = est.transform(pairs)
    round_trip = est.inverse_transform(pairs, points=mapped)
    for (source, _), out in zip(pairs, round_trip, strict=True):
        np.testing.assert_allclose(out, source, atol=2e-3)
    # The per-pair potentials answer the same.
    for (_, target), out, pot in zip(pairs, back, est.predict_potentials(pairs), strict=True):
        np.testing.assert_allclose(out, pot.inverse_transform(target), atol=1e-5)


def test_amortized_inverse_is_close_and_maps_target_to_source(trained):
    est, known, samples = trained
    pair, (source, target) = known[0], samples[0]
    solved = est.inverse_transform([samples[0]])[0]
    amortized = est.inverse_transform([samples[0]], solve=False)[0]
    assert amortized.shape == solved.shape == target.shape
    # grad psi_bar is the cycle-trained prediction of grad psi*: closer to the solved inverse
    # than the target points themselves are.
    assert np.abs(amortized - solved).mean() < 0.5 * np.abs(target - solved).mean()
    # Pulled back, the target lands on the source's moments (a Gaussian pair).
    np.testing.assert_allclose(solved.mean(0), source.mean(0), atol=0.2)
    # Points given for one pair: a single array is read as that pair's points.
    y = pair.transport_map(pair.x_test[:32])
    np.testing.assert_allclose(est.inverse_transform(samples[0], points=y)[0],
                               est.inverse_transform([samples[0]], points=[y])[0])


def test_inverse_transform_of_images_and_torch_points():
    imgs = images()
    pairs = [(imgs[0], imgs[1][:11]), (imgs[2], imgs[3])]
    est = MetaICNNTransport(max_iter=3, random_state=0, **SMALL).fit(pairs)
    out = est.inverse_transform(pairs)
    assert [o.shape for o in out] == [imgs[1][:11].shape, imgs[3].shape]
    points = torch.rand(7, 3, dtype=torch.float64)
    back = est.inverse_transform(pairs[:1], points=[points])[0]
    assert isinstance(back, torch.Tensor) and back.shape == (7, 3)
    with pytest.raises(NotFittedError):
        MetaICNNTransport().inverse_transform(pairs)


def test_identity_start_before_training():
    _, samples = gaussian_family(4)
    est = MetaICNNTransport(max_iter=1, learning_rate=1e-8, random_state=0, baseline=None,
                            **{**SMALL, "pretrain_iter": 1500}).fit(samples)
    source = samples[0][0]
    mapped = est.transform(samples[:1])[0]
    relative_error = ((mapped - source) ** 2).sum(1).mean() / source.var(0).sum()
    assert relative_error < 2e-3
    # The fit floor is absolute in the standardised units of the pair (scale 1.2 here).
    np.testing.assert_allclose(mapped, source, atol=0.25)


def test_gaussian_baseline_starts_at_the_closed_form_map():
    known, samples = gaussian_family(4, n=4096)
    est = MetaICNNTransport(max_iter=1, learning_rate=1e-8, random_state=0,
                            **{**SMALL, "pretrain_iter": 1500}).fit(samples)
    potentials = est.predict_potentials(samples)
    for pair, potential in zip(known, potentials, strict=True):
        assert pair.uvp(potential.transform(pair.x_test)) < 1.0  # sample moments, not exact
        assert {"matrix", "shift", "inverse_matrix", "inverse_shift"} <= set(
            potential.parameters)


# -- input forms ----------------------------------------------------------------------------
def test_images_use_the_image_encoder_and_come_back_as_images():
    imgs = images()
    pairs = [(imgs[i], imgs[j]) for i in range(4) for j in range(4) if i != j]
    est = MetaICNNTransport(max_iter=3, random_state=0, **SMALL).fit(pairs)
    assert est.encoder_ == "image"
    out = est.transform(pairs[:2])
    assert [o.shape for o in out] == [imgs[0].shape, imgs[0].shape]
    assert est.predict_params(pairs[:3]).shape == (3, 2 * est.icnn_.n_params)
    torch_out = est.transform([(torch.as_tensor(imgs[0]), torch.as_tensor(imgs[1]))])
    assert isinstance(torch_out[0], torch.Tensor)


def test_set_encoder_on_images_and_any_sample_count():
    imgs = images()
    est = MetaICNNTransport(encoder="set", max_iter=3, random_state=0, **SMALL).fit(
        [(imgs[0], imgs[1]), (imgs[2], imgs[3])])
    assert est.encoder_ == "set"
    rng = np.random.default_rng(0)
    pairs = [(rng.random((n, 3)), rng.random((m, 3))) for n, m in ((7, 5000), (300, 20))]
    assert [o.shape for o in est.transform(pairs)] == [(7, 3), (300, 3)]


def test_array_of_image_pairs_and_single_pair():
    imgs = [im[:12] for im in images()]
    array = np.stack([np.stack([imgs[0], imgs[1]]), np.stack([imgs[2], imgs[3]])])
    est = MetaICNNTransport(max_iter=2, random_state=0, **SMALL).fit(array)
    assert len(est.transform(array)) == 2
    assert len(est.transform((imgs[0], imgs[1]))) == 1


def test_weighted_measures_and_torch_points():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(50, 2)), rng.normal(size=(60, 2))
    weighted = ((x, rng.random(50)), (y, rng.random(60)))
    est = MetaICNNTransport(max_iter=2, random_state=0, **SMALL).fit([weighted, (x, y)])
    out = est.transform([(torch.as_tensor(x), torch.as_tensor(y))])
    assert isinstance(out[0], torch.Tensor) and out[0].shape == (50, 2)
    assert np.isfinite(est.score([weighted]))


def test_a_measure_in_many_pairs_is_stored_once():
    imgs = images(5)
    pairs = [(imgs[i], imgs[j]) for i in range(5) for j in range(5) if i != j]
    collection = as_measure_collection(pairs)
    assert len(collection.measures) == 5 and collection.n_pairs == 20


# -- errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize("params, match", [
    ({"encoder": "resnet"}, "encoder"),
    ({"batch_size": 0}, "batch_size"),
    ({"n_samples": -1}, "n_samples"),
    ({"learning_rate": 0.0}, "learning_rate"),
    ({"cycle_weight": -1.0}, "cycle_weight"),
    ({"icnn_hidden_sizes": ()}, "icnn_hidden_sizes"),
    ({"pretrain_iter": -3}, "pretrain_iter"),
])
def test_bad_parameters(params, match):
    _, samples = gaussian_family(2, n=32)
    with pytest.raises(ValueError, match=match):
        MetaICNNTransport(**params).fit(samples)


def test_bad_inputs():
    _, samples = gaussian_family(3, n=32)
    est = MetaICNNTransport(max_iter=1, random_state=0, **SMALL)
    with pytest.raises(NotFittedError):
        est.transform(samples)
    with pytest.raises(ValueError, match="empty collection"):
        est.fit([])
    bad = samples[0][0].copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="pair 1 source.*NaN"):
        est.fit([samples[0], (bad, samples[1][1])])
    with pytest.raises(ValueError, match="image"):
        MetaICNNTransport(encoder="image").fit(samples)
    with pytest.raises(ValueError, match="mix of images"):
        est.fit([samples[0], (images()[0], images()[1])])
    with pytest.raises(ValueError, match="outside"):
        est.fit([(np.full((4, 4, 3), 2.0), np.zeros((4, 4, 3)))])
    with pytest.raises(TypeError, match="cannot interpret"):
        est.fit("pairs")
    est.fit(samples)
    with pytest.raises(ValueError, match="dimension 3"):
        est.transform([(np.zeros((5, 3)), np.zeros((5, 3)))])
    with pytest.raises(ValueError, match="init"):
        est.refine(samples, init="zeros")


def test_divergence_stops_with_the_last_good_state(monkeypatch):
    _, samples = gaussian_family(3, n=64)
    est = MetaICNNTransport(max_iter=30, random_state=0, **SMALL).fit(samples)
    before = {k: v.clone() for k, v in est.hypernetwork_.state_dict().items()}
    import skmetaot.estimators._meta_icnn_training as module

    original = module.w2gn_loss

    def exploding(*args, **kwargs):
        out = original(*args, **kwargs)
        out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(module, "w2gn_loss", exploding)
    with pytest.raises(TrainingDiverged):
        est.partial_fit(samples, n_steps=5)
    for key, value in est.hypernetwork_.state_dict().items():
        torch.testing.assert_close(value, before[key])


@pytest.mark.parametrize("failures", [1, 10])
def test_refinement_recovers_or_stops_with_the_last_good_parameters(monkeypatch, failures):
    import skmetaot.amortize.w2gn as module

    _, samples = gaussian_family(2, n=64)
    est = MetaICNNTransport(max_iter=5, random_state=0, **SMALL).fit(samples)
    original, calls = module.w2gn_loss, []

    def failing(*args, **kwargs):
        out = original(*args, **kwargs)
        calls.append(1)
        if 3 <= len(calls) < 3 + failures:
            out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(module, "w2gn_loss", failing)
    start = est.predict_params(samples)
    if failures == 1:  # skipped, the rate divided by 10, and the refinement goes on
        refined = est.refine(samples, max_iter=20)
        assert all(np.isfinite(p.transform(s[0])).all() for p, s in zip(refined, samples,
                                                                          strict=True))
        return
    with pytest.raises(TrainingDiverged, match="after 3 recoveries") as error:
        est.refine(samples, max_iter=20)
    # The last good state is one whose loss was no worse than at the start: here the start.
    np.testing.assert_allclose(error.value.params.numpy(), start, rtol=1e-6, atol=1e-6)


def test_a_far_too_large_rate_leaves_finite_predictions():
    _, samples = gaussian_family(3, n=64)
    est = MetaICNNTransport(max_iter=20, random_state=0, **{**SMALL, "learning_rate": 1e3})
    try:
        est.fit(samples)
    except TrainingDiverged:
        pass
    for mapped, (source, _) in zip(est.transform(samples), samples, strict=True):
        assert np.isfinite(mapped).all()
        assert np.abs(mapped).max() < 10 * np.abs(source).max()
    assert np.isfinite(est.score(samples))


# -- sklearn citizenship --------------------------------------------------------------------
def test_reproducible_and_clonable():
    _, samples = gaussian_family(4, n=64)
    est = MetaICNNTransport(max_iter=5, random_state=3, **SMALL)
    a = est.fit(samples).predict_params(samples)
    b = clone(est).fit(samples).predict_params(samples)
    np.testing.assert_array_equal(a, b)
    assert clone(est).get_params() == est.get_params()


def test_pickle_and_joblib_round_trips(tmp_path, trained):
    est, _, samples = trained
    expected = est.predict_params(samples)
    loaded = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(loaded.predict_params(samples), expected)
    joblib.dump(est, tmp_path / "meta.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "meta.joblib").predict_params(samples),
                                  expected)


def test_partial_fit_continues_and_survives_pickle():
    _, samples = gaussian_family(4, n=64)
    est = MetaICNNTransport(random_state=0, **SMALL).partial_fit(samples, n_steps=3)
    assert est.n_iter_ == 3
    est = pickle.loads(pickle.dumps(est)).partial_fit(samples)
    assert est.n_iter_ == 4


# -- batched W2GN ---------------------------------------------------------------------------
def test_batched_refinement_equals_refining_each_problem_alone(trained):
    est, _, samples = trained
    torch.manual_seed(0)
    x, y = torch.randn(2, 64, 2), torch.randn(2, 64, 2) + 1
    start = torch.as_tensor(est.predict_params(samples[:2]))
    both = refine_w2gn(est.icnn_, start, lambda: (x, y), 10)
    for k in range(2):
        alone = refine_w2gn(est.icnn_, start[k:k + 1], lambda k=k: (x[k:k + 1], y[k:k + 1]), 10)
        torch.testing.assert_close(both[k:k + 1], alone, atol=1e-5, rtol=1e-5)


class _MeanEncoder(torch.nn.Module):
    """An encoder a user adds: the measure's weighted mean, then a linear layer."""

    def __init__(self, dim, n_features):
        super().__init__()
        self.linear = torch.nn.Linear(dim, n_features)
        self.calls = 0

    def forward(self, points, weights=None):
        self.calls += 1
        mean = points.mean(1) if weights is None else (points * weights[..., None]).sum(1)
        return self.linear(mean)


def test_a_registered_encoder_is_built_fed_and_budgeted():
    from skmetaot.nn import EncoderSpec, register_encoder
    from skmetaot.nn.encoders import ENCODERS

    register_encoder("mean", EncoderSpec(_MeanEncoder, "points",
                                         lambda dim, n_points, n_features: n_points * dim))
    try:
        rng = np.random.default_rng(0)
        pairs = [(rng.normal(size=(40, 2)), 1 + rng.normal(size=(30, 2))) for _ in range(4)]
        est = MetaICNNTransport(encoder="mean", max_iter=2, random_state=0, **SMALL).fit(pairs)
        assert est.encoder_ == "mean"
        assert isinstance(est.hypernetwork_.encoder, _MeanEncoder)
        assert est.hypernetwork_.encoder.calls > 0
        assert [o.shape for o in est.transform(pairs[:2])] == [(40, 2), (40, 2)]
        with pytest.raises(ValueError, match="exists"):
            register_encoder("mean", ENCODERS["set"])
        with pytest.raises(ValueError, match="images"):
            register_encoder("pixels", EncoderSpec(_MeanEncoder, "images", lambda *a: 1))
            MetaICNNTransport(encoder="pixels", max_iter=1, **SMALL).fit(pairs)
    finally:
        ENCODERS.pop("mean", None)
        ENCODERS.pop("pixels", None)
    with pytest.raises(ValueError, match="register_encoder"):
        MetaICNNTransport(encoder="mean", max_iter=1, **SMALL).fit(pairs)
    with pytest.raises(TypeError, match="EncoderSpec"):
        register_encoder("bad", "not a spec")
