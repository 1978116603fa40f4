"""Training from streams: samplers, generators, DataLoaders, Datasets; equal to in-memory fits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from skmetaot import MetaSinkhornTransport
from skmetaot.datasets import load_mnist, make_mnist_pairs
from skmetaot.sampling import PairSampler, RandomBatches, seed_from_random_state

PARAMS = dict(hidden_layer_sizes=(32,), batch_size=8, max_iter=20, dtype="float64",
              device="cpu", random_state=0)


@pytest.fixture(scope="module")
def image_pairs():
    pairs = make_mnist_pairs(64, split="train", random_state=0)
    return np.stack([pairs.a.numpy().reshape(-1, 28, 28),
                     pairs.b.numpy().reshape(-1, 28, 28)], 1)


@pytest.fixture(scope="module")
def reference(image_pairs):
    return MetaSinkhornTransport(**PARAMS).fit(image_pairs)


def _potentials(est, image_pairs):
    return est.predict_potentials(image_pairs[:6])[1]


class PairDataset(Dataset):
    """A map-style dataset of image pairs (2, H, W), as one read from disk would be."""

    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return self.images[index]


@pytest.mark.parametrize("form", ["random_batches", "dataset", "memmap"])
def test_streamed_fit_equals_in_memory_fit(form, image_pairs, reference, tmp_path):
    if form == "random_batches":
        stream = RandomBatches(image_pairs, batch_size=8, random_state=0)
    elif form == "dataset":
        stream = PairDataset(image_pairs)  # sampled at random from the estimator's seed
    else:
        path = tmp_path / "pairs.npy"
        np.save(path, image_pairs)
        stream = RandomBatches(np.load(path, mmap_mode="r"), batch_size=8, random_state=0)
    est = MetaSinkhornTransport(**PARAMS).fit(stream)
    assert est.n_iter_ == 20
    assert est.history_["loss"] == reference.history_["loss"]
    np.testing.assert_array_equal(_potentials(est, image_pairs),
                                  _potentials(reference, image_pairs))


def test_a_generator_of_single_pairs_is_grouped_into_batches(image_pairs):
    seen = []

    def pairs():
        for k in range(40):
            seen.append(k)
            yield image_pairs[k]  # one image pair (2, H, W)

    with pytest.warns(RuntimeWarning, match="ended after 5 of max_iter=20"):
        est = MetaSinkhornTransport(**PARAMS).fit(pairs())
    assert est.n_iter_ == 5 and seen == list(range(40))  # 40 pairs, 8 per step
    assert np.isfinite(est.history_["loss"]).all()


def test_a_dataloader_is_restarted_until_max_iter(image_pairs):
    loader = DataLoader(TensorDataset(torch.from_numpy(image_pairs)), batch_size=8,
                        shuffle=True, generator=torch.Generator().manual_seed(0))
    est = MetaSinkhornTransport(**PARAMS).fit(loader)  # 8 batches per pass: 2.5 passes
    assert est.n_iter_ == 20


def test_partial_fit_takes_one_pass_or_n_steps(image_pairs):
    batches = [image_pairs[k:k + 8] for k in range(0, 64, 8)]
    est = MetaSinkhornTransport(**PARAMS).partial_fit(iter(batches))
    assert est.n_iter_ == 8
    est.partial_fit(PairSampler(image_pairs[:, 0], batch_size=8, random_state=1), n_steps=3)
    assert est.n_iter_ == 11
    with pytest.raises(ValueError, match="endless: give n_steps"):
        est.partial_fit(PairSampler(image_pairs[:, 0], batch_size=8))


def test_stream_errors(image_pairs):
    with pytest.raises(ValueError, match="stream of pairs is empty"):
        MetaSinkhornTransport(**PARAMS).fit(iter([]))
    with pytest.raises(ValueError, match="validation_fraction needs the pairs in memory"):
        MetaSinkhornTransport(**PARAMS, validation_fraction=0.2).fit(
            RandomBatches(image_pairs, 8))
    mixed = iter([image_pairs[:8], np.ones((8, 2, 14, 14))])
    with pytest.raises(ValueError, match="fitted on 784"):
        MetaSinkhornTransport(**PARAMS).fit(mixed)


def test_pair_sampler_draws_distinct_pairs_of_the_measures():
    images, _ = load_mnist("test")
    sampler = PairSampler(images[:50], batch_size=500, n_batches=2, random_state=0)
    batches = list(sampler)
    assert len(batches) == 2 == len(sampler)
    flat = images[:50].reshape(50, -1)
    for batch in batches:
        assert batch.shape == (500, 2, 28, 28) and batch.dtype == images.dtype
        first = [int(np.flatnonzero((flat == b.reshape(-1)).all(1))[0]) for b in batch[:, 0]]
        second = [int(np.flatnonzero((flat == b.reshape(-1)).all(1))[0]) for b in batch[:, 1]]
        assert all(i != j for i, j in zip(first, second, strict=True))
        assert len(set(first)) > 40  # spread over the set
    again = list(PairSampler(images[:50], batch_size=500, n_batches=2, random_state=0))
    np.testing.assert_array_equal(batches[0], again[0])
    clouds = [np.random.default_rng(k).normal(size=(10 + k, 2)) for k in range(5)]
    pairs = next(iter(PairSampler(clouds, batch_size=4, random_state=0)))
    assert len(pairs) == 4 and all(a is not b for a, b in pairs)


def test_samplers_give_each_process_its_own_stream(monkeypatch):
    import skmetaot.sampling as sampling

    data = np.arange(1000 * 2 * 2 * 2, dtype=float).reshape(1000, 2, 2, 2)
    first = next(iter(RandomBatches(data, 16, random_state=0)))
    monkeypatch.setattr(sampling.distributed, "rank", lambda: 1)
    other = next(iter(RandomBatches(data, 16, random_state=0)))
    assert not np.array_equal(first, other)


def test_sampler_errors():
    with pytest.raises(ValueError, match="at least 2 measures"):
        PairSampler(np.ones((1, 4, 4)))
    with pytest.raises(TypeError, match="measures must be"):
        PairSampler("images")
    with pytest.raises(ValueError, match="empty collection"):
        RandomBatches(np.ones((0, 2, 4, 4)), 4)
    with pytest.raises(TypeError, match="no length"):
        len(RandomBatches(np.ones((3, 2, 4, 4)), 4))
    assert seed_from_random_state(3) == seed_from_random_state(3)


def test_checkpointed_sampler_fit_resumes_exactly(image_pairs, tmp_path, monkeypatch):
    import skmetaot.amortize.training as training

    sampler = PairSampler(image_pairs[:, 0], batch_size=8, random_state=0)
    reference = MetaSinkhornTransport(**PARAMS).fit(sampler)
    original = training.cosine_learning_rate

    def interrupt(base, step, total, warmup=0):
        if step == 13:
            raise KeyboardInterrupt
        return original(base, step, total, warmup)

    path = tmp_path / "run.ckpt"
    monkeypatch.setattr(training, "cosine_learning_rate", interrupt)
    with pytest.raises(KeyboardInterrupt):
        MetaSinkhornTransport(**PARAMS, checkpoint_path=path, checkpoint_every=5).fit(sampler)
    monkeypatch.setattr(training, "cosine_learning_rate", original)
    resumed = MetaSinkhornTransport(**PARAMS, checkpoint_path=path,
                                    checkpoint_every=5).fit(sampler)
    assert resumed.resumed_from_ == 10
    assert resumed.history_["loss"] == reference.history_["loss"]
    np.testing.assert_array_equal(_potentials(resumed, image_pairs),
                                  _potentials(reference, image_pairs))


def test_meta_icnn_trains_from_a_pair_sampler_and_a_generator():
    from skmetaot import MetaICNNTransport

    rng = np.random.default_rng(0)
    clouds = [rng.normal(loc=k % 3, size=(40 + k, 2)) for k in range(12)]
    params = dict(icnn_hidden_sizes=(8,), encoder_features=8, hidden_layer_sizes=(16,),
                  batch_size=4, n_samples=32, pretrain_iter=5, max_iter=6, device="cpu",
                  random_state=0)
    est = MetaICNNTransport(**params).fit(PairSampler(clouds, batch_size=4, random_state=0))
    assert est.n_iter_ == 6 and est.encoder_ == "set" and est.n_features_in_ == 2
    assert np.isfinite(est.history_["loss"]).all()
    assert est.transform([(clouds[0], clouds[1])])[0].shape == (40, 2)
    pairs = ((clouds[k], clouds[k + 1]) for k in range(11))  # single pairs, 4 per step
    with pytest.warns(RuntimeWarning, match="ended after 3 of max_iter=6"):
        streamed = MetaICNNTransport(**params).fit(pairs)
    assert streamed.n_iter_ == 3
    streamed.partial_fit(iter([[(clouds[0], clouds[2])] * 4]))
    assert streamed.n_iter_ == 4
