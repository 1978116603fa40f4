"""B5 domain adaptation: the two-domain digits loader and the adapted pipeline."""

from __future__ import annotations

import numpy as np
import pytest
from harness import domain_adaptation
from scipy import ndimage
from sklearn.datasets import load_digits
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression

from skmetaot import NeuralW2Transport
from skmetaot.da import adapted_pipeline
from skmetaot.datasets import DigitDomains, load_digits_domains, upscale_digits
from skmetaot.estimators import TargetDataWarning


@pytest.fixture(scope="module")
def domains() -> DigitDomains:
    return load_digits_domains("pca", 5, mnist_split="test")


def test_upscale_digits_frames_like_mnist():
    small = load_digits().images[:50]
    big = upscale_digits(small)
    assert big.shape == (50, 28, 28)
    assert big.min() >= 0.0 and big.max() <= 1.0
    centres = np.array([ndimage.center_of_mass(image) for image in big])
    assert np.all(np.abs(centres - 14.0) <= 0.5)
    # Mass is kept up to the zoom's interpolation: bright 8 x 8 images stay bright.
    assert np.corrcoef(small.sum((1, 2)), big.sum((1, 2)))[0, 1] > 0.95


@pytest.mark.parametrize("bad", [np.zeros((3, 8, 9)), -np.ones((2, 8, 8)),
                                 np.full((1, 8, 8), np.nan)])
def test_upscale_digits_rejects_bad_images(bad):
    with pytest.raises(ValueError):
        upscale_digits(bad)


def test_upscale_digits_rejects_bad_max_level():
    with pytest.raises(ValueError, match="max_level"):
        upscale_digits(np.ones((1, 8, 8)), max_level=0.0)


def test_loader_shapes_and_labels(domains):
    assert domains.X_source.shape == (2000, 5)
    assert domains.X_target.shape == (1797, 5)
    assert domains.source_images.shape == (2000, 28, 28)
    assert domains.target_images.shape == (1797, 28, 28)
    assert domains.target_images.dtype == np.uint8
    np.testing.assert_array_equal(domains.y_target, load_digits().target)
    assert set(domains.y_source.tolist()) == set(range(10))
    # Standardised on the source; the target is shifted in that same space.
    np.testing.assert_allclose(domains.X_source.mean(0), 0.0, atol=1e-8)
    np.testing.assert_allclose(domains.X_source.std(0), 1.0, atol=1e-8)
    assert np.abs(domains.X_target.mean(0)).max() > 0.1
    # The returned transformer reproduces the features from the images.
    flat = domains.target_images.reshape(len(domains.target_images), -1)
    np.testing.assert_allclose(domains.features.transform(flat), domains.X_target)


def test_loader_is_deterministic():
    first = load_digits_domains("mlp", 3, mnist_split="test")
    second = load_digits_domains("mlp", 3, mnist_split="test")
    assert first.X_source.shape == (2000, 3)
    np.testing.assert_array_equal(first.X_source, second.X_source)
    np.testing.assert_array_equal(first.X_target, second.X_target)


@pytest.mark.parametrize("kwargs", [{"features": "hog"}, {"n_components": 0},
                                    {"features": "lda", "n_components": 10},
                                    {"features": "mlp", "n_components": 10},
                                    {"features": "pca", "n_components": 2.5},
                                    {"n_components": True}, {"mnist_split": "validation"}])
def test_loader_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        load_digits_domains(**kwargs)


def test_frozen_map_pipeline_end_to_end(domains):
    classifier = LogisticRegression(max_iter=500).fit(domains.X_source, domains.y_source)
    adapt, evaluate = domain_adaptation.split_target(len(domains.X_target), seed=0)
    assert len(np.intersect1d(adapt, evaluate)) == 0
    assert len(adapt) + len(evaluate) == len(domains.X_target)
    X_eval, y_eval = domains.X_target[evaluate], domains.y_target[evaluate]
    transport = NeuralW2Transport(quadratic="full", max_iter=30, batch_size=128,
                                  pretrain_iter=20, device="cpu", random_state=0)
    row = domain_adaptation.evaluate_map(transport, classifier, domains.X_target[adapt],
                                         domains.X_source[:500], X_eval, y_eval)
    assert 0.0 <= row["target accuracy"] <= 1.0
    assert row["fit s"] >= 0.0 and row["transform s"] >= 0.0
    pipeline = adapted_pipeline(transport, classifier)
    assert isinstance(pipeline.steps[0][1], FrozenEstimator)
    mapped = transport.transform(X_eval)
    assert mapped.shape == X_eval.shape and not np.allclose(mapped, X_eval)
    np.testing.assert_array_equal(pipeline.predict(X_eval), classifier.predict(mapped))
    assert pipeline.score(X_eval, y_eval) == pytest.approx(row["target accuracy"])
    # Fitting the pipeline refits the classifier only: the frozen map is left as it was. (The
    # source digits are this target -> source map's target, and transform says so.)
    with pytest.warns(TargetDataWarning):
        pipeline.fit(domains.X_source, domains.y_source)
    np.testing.assert_array_equal(transport.transform(X_eval), mapped)


def test_adapted_pipeline_names_what_is_not_a_map_or_a_classifier():
    classifier = LogisticRegression()
    with pytest.raises(TypeError, match="fitted_map must be a fitted transformer"):
        adapted_pipeline(classifier, classifier)
    with pytest.raises(TypeError, match="classifier must be an estimator with predict"):
        adapted_pipeline(NeuralW2Transport(), object())


def test_run_payload_small():
    payload = domain_adaptation.run(n_splits=1, n_source=200, max_iter=10,
                                    learning_rates=(1e-3,), sinkhorn_regs=(3.0,),
                                    features="pca", n_components=4, verbose=0)
    methods = [row["method"] for row in payload["summary"]]
    assert methods[0] == domain_adaptation.NO_ADAPTATION
    assert any(m.startswith("POT LinearTransport") for m in methods)
    assert any(m.startswith("POT SinkhornTransport") for m in methods)
    assert any(m.startswith("ours NeuralW2Transport") for m in methods)
    assert all(0.0 <= row["target accuracy"] <= 1.0 for row in payload["rows"])
    assert payload["summary"][0]["gain vs none (pts)"] == 0.0
    assert 0.0 <= payload["source_accuracy"] <= 1.0
    assert all(m in payload["table"] for m in methods)


@pytest.mark.parametrize("kwargs", [{"n_splits": 0}, {"n_source": -1}, {"max_iter": 1.5},
                                    {"learning_rates": (0.0,)}, {"sinkhorn_regs": (-1.0,)}])
def test_run_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        domain_adaptation.run(**kwargs, verbose=0)
