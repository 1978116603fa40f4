"""skmetaot.da: ot.da's interface, skada's pipelines, and what a plain Pipeline is told."""

from __future__ import annotations

import numpy as np
import ot
import pytest
import sklearn
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.svm import SVC

from skmetaot.da import (
    SinkhornMapping,
    SinkhornMappingAdapter,
    SinkhornTransport,
    W2Mapping,
    W2MappingAdapter,
    W2MapTransport,
)
from skmetaot.datasets import make_rotated_moons

_ROUTING = sklearn.get_config()["enable_metadata_routing"]
try:
    import skada  # skada turns scikit-learn's metadata routing on, globally, on import
    from skada.metrics import PredictionEntropyScorer, SupervisedScorer
    from skada.model_selection import SourceTargetShuffleSplit
except ImportError:
    skada = None
finally:
    sklearn.set_config(enable_metadata_routing=_ROUTING)  # the other test files keep theirs

needs_skada = pytest.mark.skipif(skada is None, reason="skada is not installed")
TINY_W2 = {"max_iter": 30, "batch_size": 64, "pretrain_iter": 10, "random_state": 0}


@pytest.fixture
def routing():
    with sklearn.config_context(enable_metadata_routing=True):
        yield


@pytest.fixture(scope="module")
def moons():
    Xs, ys = make_rotated_moons(60, 0.0, random_state=0)
    Xt, yt = make_rotated_moons(50, 30.0, random_state=1)
    X_new, y_new = make_rotated_moons(40, 30.0, random_state=2)
    return Xs, ys, Xt, yt, X_new, y_new


def _skada_data(moons):
    Xs, ys, Xt, yt, _, _ = moons
    X = np.vstack([Xs, Xt])
    y = np.concatenate([ys, -np.ones(len(Xt), dtype=int)])
    domain = np.concatenate([np.ones(len(Xs), dtype=int), -np.ones(len(Xt), dtype=int)])
    return X, y, domain, np.concatenate([ys, yt])


# -- ot.da's interface ------------------------------------------------------------------------
@pytest.mark.parametrize("out_of_sample_map", ["continuous", "ferradans"])
def test_sinkhorn_transport_is_pots(out_of_sample_map, moons):
    Xs, ys, Xt, _, X_new, _ = moons
    ours = SinkhornTransport(reg_e=0.1, out_of_sample_map=out_of_sample_map)
    theirs = ot.da.SinkhornTransport(reg_e=0.1, out_of_sample_map=out_of_sample_map)
    ours.fit(Xs=Xs, ys=ys, Xt=Xt)
    theirs.fit(Xs=Xs, ys=ys, Xt=Xt)
    np.testing.assert_allclose(ours.coupling_, theirs.coupling_, rtol=1e-7, atol=1e-14)
    for method, kwargs in (("transform", {"Xs": Xs}), ("transform", {"Xs": X_new}),
                           ("inverse_transform", {"Xt": Xt}),
                           ("inverse_transform", {"Xt": X_new})):
        np.testing.assert_allclose(getattr(ours, method)(**kwargs),
                                   getattr(theirs, method)(**kwargs), atol=1e-8)
    np.testing.assert_allclose(ours.transform_labels(ys), theirs.transform_labels(ys),
                               atol=1e-8)
    assert ours.method == "sinkhorn_log" and clone(ours).get_params()["reg_e"] == 0.1


def test_w2_map_transport_follows_ot_da(moons):
    Xs, ys, Xt, _, X_new, _ = moons
    da = W2MapTransport(**TINY_W2)
    moved = da.fit_transform(Xs, ys, Xt)  # ot.da's positional order: Xs, ys, Xt, yt
    np.testing.assert_allclose(moved, da.transform(Xs=Xs), atol=1e-6)
    assert da.transform(Xs=X_new).shape == X_new.shape
    back = da.inverse_transform(Xt=da.transform(Xs=X_new))  # the conjugate's argmin
    np.testing.assert_allclose(back, X_new, atol=2e-2)
    assert da.mapping_.n_iter_ == 30 and da.xs_.shape == Xs.shape
    with pytest.raises(ValueError, match="inverse_transform needs Xt"):
        da.inverse_transform(Xs=Xs)


@pytest.mark.parametrize("transport", [SinkhornTransport(), W2MapTransport(**TINY_W2)],
                         ids=["SinkhornTransport", "W2MapTransport"])
def test_a_plain_pipeline_is_told_what_to_do(transport, moons):
    Xs, ys, *_ = moons
    with pytest.raises(ValueError, match=r"missing: Xt.*Pipeline.*transform\(Xs=Xs\).*skada"):
        make_pipeline(transport, SVC()).fit(Xs, ys)


def test_the_ot_da_workflow_beats_no_adaptation(moons):
    Xs, ys, Xt, _, X_new, y_new = moons
    plain = SVC().fit(Xs, ys).score(X_new, y_new)
    for transport in (SinkhornTransport(reg_e=0.1), ot.da.SinkhornTransport(reg_e=0.1)):
        transport.fit(Xs=Xs, Xt=Xt)
        adapted = SVC().fit(transport.transform(Xs=Xs), ys).score(X_new, y_new)
        assert adapted > plain


# -- skada's protocol, with and without skada ---------------------------------------------------
def test_adapters_follow_skadas_protocol(moons):
    X, y, domain, _ = _skada_data(moons)
    adapter = SinkhornMappingAdapter(reg_e=0.1)
    by_domain = adapter.fit_transform(X, y, sample_domain=domain)
    by_labels = clone(adapter).fit_transform(X, y)  # -1 marks the target rows
    np.testing.assert_allclose(by_domain, by_labels)
    np.testing.assert_array_equal(by_domain[domain < 0], X[domain < 0])  # targets pass
    transport = SinkhornTransport(reg_e=0.1).fit(Xs=X[domain > 0], Xt=X[domain < 0])
    np.testing.assert_allclose(by_domain[domain > 0], transport.transform(Xs=X[domain > 0]))
    np.testing.assert_array_equal(adapter.transform(X), X)  # at prediction: all targets
    with pytest.raises(ValueError, match="allow_source=False"):
        adapter.transform(X, sample_domain=domain)
    assert adapter.transform(X, sample_domain=domain, allow_source=True).shape == X.shape


@needs_skada
def test_our_sinkhorn_pipeline_predicts_as_skadas(moons, routing):
    X, y, domain, _ = _skada_data(moons)
    X_new = moons[4]
    ours = SinkhornMapping(LogisticRegression(), reg_e=0.1).fit(X, y.copy(), sample_domain=domain)
    theirs = skada.EntropicOTMapping(LogisticRegression(), reg_e=0.1)
    theirs.fit(X, y.copy(), sample_domain=domain)
    np.testing.assert_allclose(ours.predict_proba(X_new), theirs.predict_proba(X_new),
                               atol=1e-6)


@needs_skada
def test_skada_selectors_and_scorers_run_our_pipelines(moons, routing):
    X, y, domain, y_true = _skada_data(moons)
    split = SourceTargetShuffleSplit(n_splits=2, random_state=0)
    entropy = cross_validate(SinkhornMapping(LogisticRegression(), reg_e=0.1), X, y.copy(),
                             params={"sample_domain": domain}, cv=split,
                             scoring=PredictionEntropyScorer(), error_score="raise")
    assert np.isfinite(entropy["test_score"]).all()
    pipeline = SinkhornMapping(SVC(), reg_e=0.1)
    supervised = cross_validate(pipeline, X, y.copy(), cv=split, scoring=SupervisedScorer(),
                                params={"sample_domain": domain, "target_labels": y_true},
                                error_score="raise")
    assert (supervised["test_score"] > 0.8).all()
    search = GridSearchCV(SinkhornMapping(LogisticRegression()),
                          {"sinkhornmappingadapter__reg_e": [0.05, 0.5]}, cv=split,
                          scoring=PredictionEntropyScorer(), error_score="raise")
    search.fit(X, y.copy(), sample_domain=domain)
    assert search.best_params_["sinkhornmappingadapter__reg_e"] in (0.05, 0.5)


@needs_skada
def test_w2_adapter_in_skadas_make_da_pipeline(moons, routing):
    X, y, domain, _ = _skada_data(moons)
    _, _, _, _, X_new, y_new = moons
    pipeline = skada.make_da_pipeline(W2MappingAdapter(**TINY_W2), SVC())
    pipeline.fit(X, y.copy(), sample_domain=domain)
    assert 0.0 <= pipeline.score(X_new, y_new) <= 1.0
    factory = W2Mapping(SVC(), **TINY_W2)
    assert isinstance(factory.steps[0][1].base_estimator, W2MappingAdapter)
