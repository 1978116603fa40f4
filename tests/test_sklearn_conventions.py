"""scikit-learn citizenship of every estimator: its own checks, clone, persistence, search, pipes.

``NeuralW2Transport(target=...)`` is a transformer on plain 2-D arrays and runs scikit-learn's
full check suite. The meta estimators (and ``NeuralW2Transport`` without a target) fit
collections of measure pairs: their tags say so (``input_tags.two_d_array=False``), scikit-learn
then runs only ``check_estimator_cloneable`` itself, so the data-free API checks run here one
by one and the data-driven conventions are checked below on pair data.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
import warnings

import joblib
import numpy as np
import pytest
import sklearn
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.utils import get_tags
from sklearn.utils.estimator_checks import (
    check_do_not_raise_errors_in_init_or_set_params,
    check_estimator_cloneable,
    check_estimator_repr,
    check_estimator_tags_renamed,
    check_get_params_invariance,
    check_mixin_order,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
    check_valid_tag_types,
    parametrize_with_checks,
)

from skmetaot import (
    MetaICNNTransport,
    MetaSinkhornCloudTransport,
    MetaSinkhornTransport,
    NeuralW2Transport,
)
from skmetaot.datasets import make_gaussian_pair

TINY_W2 = dict(hidden_layer_sizes=(8, 8), max_iter=5, pretrain_iter=5, batch_size=32,
               conjugate_max_iter=10, device="cpu", random_state=0)

#: The transformer configurations that run scikit-learn's full suite: the three published
#: methods, each as a map onto the standard normal of the data's dimension.
TRANSFORMERS = [
    NeuralW2Transport(target="normal", **TINY_W2),  # Amos 2023: regression + L-BFGS
    NeuralW2Transport(target="normal", amortization="cycle", conjugate=None, potential="mlp",
                      **TINY_W2),  # W2GN's losses on an MLP potential
    NeuralW2Transport(target="normal", amortization="objective", conjugate="adam",
                      quadratic="full", dtype="float64", **TINY_W2),  # Makkuva et al.
]

#: Checks expected to fail, with the reason. None fail today: this dict is the place to list one,
#: never a blanket skip. (check_array_api_input is skipped by scikit-learn itself unless
#: SCIPY_ARRAY_API=1 is set before scipy loads; test_array_api_dispatch runs it that way.)
EXPECTED_FAILED_CHECKS: dict[str, str] = {}


@parametrize_with_checks(TRANSFORMERS, expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS)
def test_transformer_passes_sklearn_checks(estimator, check):
    check(estimator)


@pytest.mark.skipif(tuple(int(p) for p in sklearn.__version__.split(".")[:2]) < (1, 7),
                    reason="check_estimator of scikit-learn < 1.7 yields no array API check")
def test_array_api_dispatch():
    # SCIPY_ARRAY_API must be set before scipy is imported, hence the fresh interpreter.
    script = textwrap.dedent("""
        from sklearn.utils.estimator_checks import check_estimator
        from skmetaot import NeuralW2Transport
        est = NeuralW2Transport(target="normal", hidden_layer_sizes=(8, 8), max_iter=5,
                                pretrain_iter=5, batch_size=32, device="cpu", random_state=0)
        results = check_estimator(est, on_fail=None)
        api = [r for r in results if r["check_name"] == "check_array_api_input"]
        assert api and all(r["status"] == "passed" for r in api), api
        print("ok", len(api))
    """)
    env = {**os.environ, "SCIPY_ARRAY_API": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("ok")


# -- meta estimators: pair input, data-free checks ------------------------------------------
def _digit_image_pairs(n_pairs: int, seed: int) -> np.ndarray:
    """(N, 2, 8, 8) image pairs: an array, so scikit-learn's CV splitters can index it."""
    images = load_digits().images
    rng = np.random.default_rng(seed)
    return images[rng.integers(len(images), size=(n_pairs, 2))]


def _gaussian_sample_pairs(n_pairs: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    return [make_gaussian_pair(2, random_state=seed + k).as_pair(128, random_state=seed + k)
            for k in range(n_pairs)]


PAIR_ESTIMATORS = {
    "MetaSinkhornTransport": (
        MetaSinkhornTransport(hidden_layer_sizes=(32,), max_iter=20, batch_size=8,
                              device="cpu", random_state=0),
        lambda: _digit_image_pairs(16, 0)),
    "MetaICNNTransport": (
        MetaICNNTransport(icnn_hidden_sizes=(8,), encoder_features=8, hidden_layer_sizes=(16,),
                          batch_size=2, n_samples=32, max_iter=5, pretrain_iter=5,
                          refine_max_iter=5, device="cpu", random_state=0),
        lambda: _gaussian_sample_pairs(4, 0)),
    "MetaSinkhornCloudTransport": (
        MetaSinkhornCloudTransport(epsilon=0.5, width=8, n_heads=2, max_iter=3, batch_size=2,
                                   device="cpu", random_state=0),
        lambda: _gaussian_sample_pairs(4, 0)),
    "NeuralW2Transport": (
        NeuralW2Transport(**TINY_W2),
        lambda: make_gaussian_pair(2, random_state=0).as_pair(128, random_state=0)),
}
DATA_FREE_CHECKS = [
    check_estimator_cloneable, check_estimator_tags_renamed, check_valid_tag_types,
    check_estimator_repr, check_no_attributes_set_in_init,
    check_do_not_raise_errors_in_init_or_set_params, check_mixin_order,
    check_parameters_default_constructible, check_get_params_invariance, check_set_params,
]


@pytest.mark.parametrize("check", DATA_FREE_CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", PAIR_ESTIMATORS)
def test_pair_estimator_passes_data_free_checks(name, check):
    check(name, clone(PAIR_ESTIMATORS[name][0]))


@pytest.mark.parametrize("name", PAIR_ESTIMATORS)
def test_pair_estimators_declare_non_tabular_input(name):
    assert get_tags(PAIR_ESTIMATORS[name][0]).input_tags.two_d_array is False
    assert get_tags(NeuralW2Transport(target="normal")).input_tags.two_d_array is True


def _fitted_outputs(name: str, est, data) -> list[np.ndarray]:
    """What each estimator predicts, as arrays, to compare two fits or a fit and its copy."""
    if name == "MetaSinkhornTransport":
        f, g = est.predict_potentials(data)
        return [f, g]
    if name == "MetaICNNTransport":
        return [est.predict_params(data)]
    if name == "MetaSinkhornCloudTransport":  # per-pair arrays of each pair's size
        f, g = est.predict_potentials(data)
        return [np.concatenate(f), np.concatenate(g)]
    return [est.transform(data[0][:16]), np.array(est.score(data))]


@pytest.fixture(scope="module")
def fitted_pairs():
    fitted = {}
    for name, (prototype, make_data) in PAIR_ESTIMATORS.items():
        data = make_data()
        fitted[name] = (clone(prototype).fit(data), data)
    return fitted


@pytest.mark.parametrize("name", PAIR_ESTIMATORS)
def test_unfitted_estimator_raises_not_fitted(name):
    est, data = clone(PAIR_ESTIMATORS[name][0]), PAIR_ESTIMATORS[name][1]()
    methods = ["predict_potentials", "transform", "score", "refine"]
    if name in ("MetaSinkhornTransport", "MetaSinkhornCloudTransport"):
        methods.append("predict_plan")
    for method in methods:
        args = () if (name, method) == ("NeuralW2Transport", "predict_potentials") else (data,)
        with pytest.raises(NotFittedError):
            getattr(est, method)(*args)


@pytest.mark.parametrize("name", PAIR_ESTIMATORS)
def test_fit_conventions(name, fitted_pairs):
    prototype = PAIR_ESTIMATORS[name][0]
    est, data = fitted_pairs[name]
    # fit returns self, leaves the parameters as given and adds only trailing-underscore
    # public attributes; n_iter_ counts the training steps.
    assert est.get_params() == prototype.get_params()
    public_new = {k for k in vars(est) if not k.startswith("_")} - set(prototype.get_params())
    assert public_new and all(k.endswith("_") for k in public_new), public_new
    assert not any(k.endswith("_") and not k.startswith("_") for k in vars(prototype))
    assert isinstance(est.n_iter_, int) and est.n_iter_ == prototype.max_iter
    # clone drops the fitted state and keeps the parameters.
    fresh = clone(est)
    assert fresh.get_params() == est.get_params() and not hasattr(fresh, "n_iter_")


@pytest.mark.parametrize("name", PAIR_ESTIMATORS)
def test_fit_is_idempotent_and_persistence_round_trips(name, fitted_pairs, tmp_path):
    est, data = fitted_pairs[name]
    expected = _fitted_outputs(name, est, data)
    refit = clone(est).fit(data)
    for a, b in zip(expected, _fitted_outputs(name, refit, data), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    path = tmp_path / "model.joblib"
    joblib.dump(est, path)
    for copy in (pickle.loads(pickle.dumps(est)), joblib.load(path)):
        for a, b in zip(expected, _fitted_outputs(name, copy, data), strict=True):
            np.testing.assert_array_equal(a, b)


# -- model selection through score ----------------------------------------------------------
def test_grid_search_selects_the_trained_meta_sinkhorn_model():
    # A learning rate of 1e-9 leaves the network at its initialisation; 1e-3 trains it. The
    # held-out mean normalised dual (score) must tell them apart.
    pairs = _digit_image_pairs(64, 1)
    est = MetaSinkhornTransport(hidden_layer_sizes=(64,), max_iter=60, batch_size=16,
                                device="cpu", random_state=0)
    search = GridSearchCV(est, {"learning_rate": [1e-9, 1e-3]}, cv=2).fit(pairs)
    assert search.best_params_ == {"learning_rate": 1e-3}
    scores = search.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(scores)) and scores[1] > scores[0]
    assert search.best_estimator_.n_iter_ == 60


def test_grid_search_over_a_gaussianising_map():
    # Gaussianise a skewed 2-D sample: more training raises the held-out dual.
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.exponential(size=600), rng.normal(size=600)]) * [2.0, 0.5] + 3.0
    est = NeuralW2Transport(target="normal", hidden_layer_sizes=(16, 16), batch_size=128,
                            learning_rate=3e-2, pretrain_iter=50, device="cpu", random_state=0)
    search = GridSearchCV(est, {"max_iter": [1, 150]}, cv=3).fit(X)
    assert search.best_params_ == {"max_iter": 150}
    mapped = search.transform(X)
    assert abs(mapped.mean(0)).max() < 0.5 and np.allclose(mapped.std(0), 1.0, atol=0.35)


# -- pipelines ------------------------------------------------------------------------------
def _shifted_blobs(seed: int) -> tuple[np.ndarray, ...]:
    """Two labelled classes, and the same classes rotated, stretched and moved (the target)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(2, size=800)
    source = rng.normal(size=(800, 2)) * 0.6 + np.where(labels[:, None] == 1, 1.5, -1.5) * [1, 0]
    angle = 0.9
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    target = source @ rotation.T * [1.3, 0.8] + [3.0, -2.0]
    return source, labels, target


def test_frozen_map_then_classifier_pipeline_adapts_a_domain():
    source, labels, target = _shifted_blobs(0)
    classifier = LogisticRegression().fit(source, labels)
    mapping = NeuralW2Transport(quadratic="full", hidden_layer_sizes=(16, 16), max_iter=300,
                                batch_size=256, pretrain_iter=100, device="cpu",
                                random_state=0).fit((target[:400], source))
    adapted = make_pipeline(FrozenEstimator(mapping), FrozenEstimator(classifier))
    held_out = slice(400, None)
    no_adaptation = classifier.score(target[held_out], labels[held_out])
    # The exact linear (Gaussian) OT map reaches 0.865 here; no adaptation 0.525.
    assert adapted.score(target[held_out], labels[held_out]) > max(0.8, no_adaptation + 0.2)
    # Fitting the pipeline leaves the frozen steps as they were.
    before = mapping.transform(target[:5])
    adapted.fit(target, labels)
    np.testing.assert_array_equal(mapping.transform(target[:5]), before)


def test_naive_map_pipeline_is_told_that_predict_maps_target_data_again():
    # Pipeline([NeuralW2Transport(target=Xt), classifier]) trains the classifier on T(Xs), in
    # the target domain, but predict sends target points through T a second time: transform
    # says so, with what to do, instead of scoring quietly worse.
    from skmetaot.estimators import TargetDataWarning

    source, labels, target = _shifted_blobs(0)
    naive = make_pipeline(
        NeuralW2Transport(target=target[:400], quadratic="full", hidden_layer_sizes=(16, 16),
                          max_iter=300, batch_size=256, pretrain_iter=100, device="cpu",
                          random_state=0),
        LogisticRegression())
    with warnings.catch_warnings():
        warnings.simplefilter("error", TargetDataWarning)  # fit maps source data: no warning
        naive.fit(source, labels)
        assert naive.score(source[:400], labels[:400]) > 0.9  # source points, mapped once
    held_out = slice(400, None)
    with pytest.warns(TargetDataWarning, match=r"Pipeline.*FrozenEstimator.*skmetaot\.da"):
        twice = naive.score(target[held_out], labels[held_out])
    # What the warning is about: the classifier on T(Xs) scores target points as they are.
    once = naive[-1].score(target[held_out], labels[held_out])
    assert once > 0.8 and once > twice + 0.1


@pytest.mark.parametrize("scale", [1e-4, 1.0, 1e4])
def test_target_data_warning_only_for_points_like_the_target(scale):
    from skmetaot.estimators import TargetDataWarning

    source, _, target = _shifted_blobs(2)
    source, target = scale * source, scale * target
    est = NeuralW2Transport(hidden_layer_sizes=(8, 8), max_iter=5, batch_size=128,
                            pretrain_iter=5, device="cpu", random_state=0).fit((source, target))
    with warnings.catch_warnings():
        warnings.simplefilter("error", TargetDataWarning)
        est.transform(source[::3])  # the source
        est.transform(target[:19])  # too few points to judge
        est.transform(0.5 * (source + target))  # half-way: not clearly the target
        est.transform(torch.as_tensor(source[:100]))
    with pytest.warns(TargetDataWarning, match="200 points"):
        est.transform(target[:200])
    with pytest.warns(TargetDataWarning):
        est.transform(torch.as_tensor(target[:100]))
    # A map between two samples of one distribution never warns (the domains are the same).
    same = NeuralW2Transport(hidden_layer_sizes=(8, 8), max_iter=5, batch_size=128,
                             pretrain_iter=5, device="cpu", random_state=0).fit(
        (source[:400], source[400:]))
    with warnings.catch_warnings():
        warnings.simplefilter("error", TargetDataWarning)
        same.transform(source[400:])


def test_gaussianising_map_as_a_trainable_pipeline_step():
    source, labels, _ = _shifted_blobs(1)
    pipe = make_pipeline(
        NeuralW2Transport(target="normal", hidden_layer_sizes=(16, 16), max_iter=50,
                          batch_size=256, pretrain_iter=50, device="cpu", random_state=0),
        LogisticRegression()).fit(source[:600], labels[:600])
    assert pipe.score(source[600:], labels[600:]) > 0.9
    assert pipe[0].n_features_in_ == 2
    assert list(pipe[0].get_feature_names_out()) == ["x0", "x1"]


def test_target_must_be_a_known_distribution_or_matching_samples():
    X = np.random.default_rng(0).normal(size=(50, 3))
    with pytest.raises(ValueError, match="target='uniform' is not one of"):
        NeuralW2Transport(target="uniform", **TINY_W2).fit(X)
    with pytest.raises(ValueError, match="target has 2 features, but X has 3"):
        NeuralW2Transport(target=np.zeros((10, 2)), **TINY_W2).fit(X)
    with pytest.raises(ValueError, match=r"expected one pair \(Xs, Xt\).*target='normal'"):
        NeuralW2Transport(**TINY_W2).fit(X)  # without a target, fit wants a pair
    est = NeuralW2Transport(target=X[::-1] + 1.0, **TINY_W2).fit(X)
    assert est.transform(X).shape == (50, 3)
    with pytest.raises(ValueError, match="X has 2 features, but NeuralW2Transport is expecting 3"):
        est.transform(X[:, :2])


def test_grid_search_selects_the_trained_meta_icnn_model():
    # Without the Gaussian baseline the untrained hypernetwork predicts the identity map; the
    # held-out score (mean normalised dual) must prefer the trained one.
    pairs = _gaussian_sample_pairs(12, 3)
    est = MetaICNNTransport(icnn_hidden_sizes=(16,), encoder_features=16,
                            hidden_layer_sizes=(32,), baseline=None, batch_size=4,
                            n_samples=64, max_iter=60, pretrain_iter=50, device="cpu",
                            random_state=0)
    search = GridSearchCV(est, {"learning_rate": [1e-9, 3e-3]}, cv=2).fit(pairs)
    scores = search.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(scores)) and scores[1] > scores[0]
    assert search.best_params_ == {"learning_rate": 3e-3}


def test_parameter_rules_are_declared_once_and_cover_every_checked_parameter():
    # The template of issue 19: a parameter shared by several estimators is declared in the
    # class they share, and every estimator's rules name only its own constructor parameters.
    from skmetaot import MetaICNNTransport, MetaSinkhornCloudTransport, NeuralW2Transport
    from skmetaot.estimators._base import BaseOTEstimator
    from skmetaot.estimators._refinement import WarmStartRefinement

    shared = set(BaseOTEstimator._parameter_rules) | set(WarmStartRefinement._parameter_rules)
    for cls in (MetaSinkhornTransport, MetaSinkhornCloudTransport, MetaICNNTransport,
                NeuralW2Transport):
        own = set(vars(cls).get("_parameter_rules", {}))
        assert not own & set(BaseOTEstimator._parameter_rules), cls.__name__
        if issubclass(cls, WarmStartRefinement):
            assert not own & set(WarmStartRefinement._parameter_rules), cls.__name__
        assert set(cls._all_parameter_rules()) <= set(cls().get_params()), cls.__name__
    assert {"epsilon", "tol", "cost", "max_iter"} <= shared
    for cls in (MetaSinkhornTransport, MetaSinkhornCloudTransport):
        with pytest.raises(ValueError, match="learning_rate_schedule='linear' is not one of"):
            cls(learning_rate_schedule="linear")._check_params()
        with pytest.raises(ValueError, match="epsilon must be a finite positive number"):
            cls(epsilon=-1.0)._check_params()


def test_rules_of_the_validation_module():
    from skmetaot._validation import layer_sizes, one_of, optional

    assert one_of(lambda: ("a", None))(None, "x") is None
    with pytest.raises(ValueError, match=r"x='b' is not one of 'a', None \(a hint\)"):
        one_of(("a", None), hint="(a hint)")("b", "x")
    assert layer_sizes(non_empty=False)([], "sizes") == ()
    assert layer_sizes(non_empty=True)([np.int64(3), 4], "sizes") == (3, 4)
    for bad in ([], [0], "12", [True], 3):
        with pytest.raises(ValueError, match="sizes must be a non-empty sequence"):
            layer_sizes(non_empty=True)(bad, "sizes")
    assert optional(layer_sizes(non_empty=True))(None, "sizes") is None
