"""Long runs survive faults: checkpoints, resume after an interrupt or a kill, recovery."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import skmetaot
import skmetaot.amortize.training as training
from skmetaot import MetaICNNTransport, MetaSinkhornTransport, NeuralW2Transport
from skmetaot.amortize import TrainingDiverged, TrainingHistory, train
from skmetaot.datasets import make_mnist_pairs

MAX_ITER = 30


def _clouds():
    rng = np.random.default_rng(0)
    return [(rng.normal(size=(50, 2)), 1 + rng.normal(size=(60, 2))) for _ in range(6)]


def _one_pair():
    rng = np.random.default_rng(1)
    return rng.normal(size=(300, 2)), 2 * rng.normal(size=(300, 2))


def _finite_part(values):
    values = np.asarray(values)
    return values[np.isfinite(values)]


# (estimator, parameters, data, prediction to compare): float64 on the CPU, a few seconds each.
CASES = {
    "meta_sinkhorn": (
        MetaSinkhornTransport,
        dict(hidden_layer_sizes=(32,), batch_size=8),
        lambda: make_mnist_pairs(64, split="train", random_state=0),
        lambda est, data: est.predict_potentials(data[:4])[1],
    ),
    "meta_icnn": (
        MetaICNNTransport,
        dict(icnn_hidden_sizes=(8,), encoder_features=8, hidden_layer_sizes=(16,),
             batch_size=2, n_samples=32, pretrain_iter=5),
        _clouds,
        lambda est, data: est.transform(data[:2])[0],
    ),
    "neural_w2": (
        NeuralW2Transport,
        dict(hidden_layer_sizes=(8, 8), batch_size=32, pretrain_iter=5),
        _one_pair,
        lambda est, data: est.transform(data[0][:20]),
    ),
}


@pytest.fixture(params=sorted(CASES))
def case(request):
    cls, params, make_data, predict = CASES[request.param]
    params = dict(params, max_iter=MAX_ITER, dtype="float64", device="cpu", random_state=0)
    return cls, params, make_data(), predict


@pytest.fixture
def interrupt_at(monkeypatch):
    """Raise KeyboardInterrupt at the start of a given global training step (as Ctrl-C would)."""
    original = training.cosine_learning_rate

    def arm(step: int) -> None:
        def patched(base, current, total, warmup=0):
            if current == step:
                raise KeyboardInterrupt
            return original(base, current, total, warmup)

        monkeypatch.setattr(training, "cosine_learning_rate", patched)

    yield arm
    monkeypatch.setattr(training, "cosine_learning_rate", original)


def test_interrupted_fit_resumes_to_the_uninterrupted_model(case, interrupt_at, tmp_path,
                                                             monkeypatch):
    cls, params, data, predict = case
    reference = cls(**params).fit(data)
    path = tmp_path / "run.ckpt"
    est = cls(**params, checkpoint_path=path, checkpoint_every=7)
    interrupt_at(17)
    with pytest.raises(KeyboardInterrupt):
        est.fit(data)
    monkeypatch.undo()
    # The interrupted estimator is usable: 17 completed steps, finite predictions.
    assert est.n_iter_ == 17 and len(est.history_["loss"]) == 17
    assert np.isfinite(_finite_part(predict(est, data))).all()
    assert not np.isnan(predict(est, data)).any()
    # Re-running the same fit resumes from the last checkpoint (step 14) and ends identical.
    resumed = cls(**params, checkpoint_path=path, checkpoint_every=7).fit(data)
    assert resumed.resumed_from_ == 14 and resumed.n_iter_ == MAX_ITER
    np.testing.assert_allclose(predict(resumed, data), predict(reference, data), rtol=0,
                               atol=1e-6)
    assert resumed.history_["loss"] == reference.history_["loss"]
    # The final checkpoint is the finished model: one more run trains nothing.
    again = cls(**params, checkpoint_path=path, checkpoint_every=7).fit(data)
    assert again.resumed_from_ == MAX_ITER
    np.testing.assert_array_equal(predict(again, data), predict(reference, data))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.ckpt"]  # no temporary left


def test_interrupted_estimator_can_continue_training(interrupt_at, monkeypatch):
    pairs = make_mnist_pairs(32, split="train", random_state=0)
    est = MetaSinkhornTransport(hidden_layer_sizes=(16,), batch_size=8, max_iter=20,
                                device="cpu", random_state=0)
    interrupt_at(5)
    with pytest.raises(KeyboardInterrupt):
        est.fit(pairs)
    monkeypatch.undo()
    assert est.n_iter_ == 5 and not est.model_.training
    est.partial_fit(pairs, n_steps=3)
    assert est.n_iter_ == 8 and est.history_["step"] == list(range(8))


def test_checkpoint_of_another_fit_is_refused(tmp_path):
    pairs = make_mnist_pairs(32, split="train", random_state=0)
    path = tmp_path / "run.ckpt"
    params = dict(hidden_layer_sizes=(16,), batch_size=8, max_iter=4, device="cpu",
                  random_state=0, checkpoint_path=path, checkpoint_every=2)
    MetaSinkhornTransport(**params).fit(pairs)
    with pytest.raises(ValueError, match="different parameter epsilon"):
        MetaSinkhornTransport(**params, epsilon=0.1).fit(pairs)
    with pytest.raises(ValueError, match="different data"):
        MetaSinkhornTransport(**params).fit(make_mnist_pairs(32, split="train",
                                                             random_state=1))
    with pytest.raises(ValueError, match="different estimator"):
        NeuralW2Transport(max_iter=4, pretrain_iter=0, batch_size=8, device="cpu",
                          checkpoint_path=path).fit(_one_pair())
    # verbose, device and the checkpoint interval do not change what is trained.
    MetaSinkhornTransport(**{**params, "verbose": 0, "checkpoint_every": 3}).fit(pairs)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable skmetaot checkpoint"):
        MetaSinkhornTransport(**params).fit(pairs)


@pytest.mark.parametrize(("value", "error"), [(0, ValueError), (2.5, ValueError),
                                               (True, ValueError)])
def test_checkpoint_every_is_validated(value, error, tmp_path):
    est = MetaSinkhornTransport(checkpoint_path=tmp_path / "x", checkpoint_every=value)
    with pytest.raises(error, match="checkpoint_every"):
        est.fit(make_mnist_pairs(8, split="train", random_state=0))


def test_checkpoint_path_is_validated():
    with pytest.raises(TypeError, match="checkpoint_path"):
        MetaSinkhornTransport(checkpoint_path=3).fit(make_mnist_pairs(8, split="train",
                                                                      random_state=0))


# -- a real kill -------------------------------------------------------------------------------
SCRIPT = textwrap.dedent("""
    import sys, time
    import numpy as np
    import skmetaot.amortize.training as training
    from skmetaot import MetaSinkhornTransport
    from skmetaot.datasets import make_mnist_pairs

    checkpoint, out, slow = sys.argv[1], sys.argv[2], sys.argv[3] == "slow"
    if slow:  # stretch each step so that the parent kills the process mid-run
        original = training.cosine_learning_rate
        def sleepy(*args, **kwargs):
            time.sleep(0.05)
            return original(*args, **kwargs)
        training.cosine_learning_rate = sleepy
    pairs = make_mnist_pairs(64, split="train", random_state=0)
    est = MetaSinkhornTransport(hidden_layer_sizes=(32,), batch_size=8, max_iter=60,
                                dtype="float64", device="cpu", random_state=0,
                                checkpoint_path=None if checkpoint == "-" else checkpoint,
                                checkpoint_every=5).fit(pairs)
    np.save(out, est.transform(pairs[:8]))
    print("resumed_from", est.resumed_from_)
""")


def _run(script: Path, *args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(skmetaot.__file__).parents[1]),
                                          os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, str(script), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def test_resume_after_the_process_is_killed(tmp_path):
    script = tmp_path / "fit.py"
    script.write_text(SCRIPT)
    checkpoint = tmp_path / "run.ckpt"
    victim = _run(script, str(checkpoint), str(tmp_path / "victim.npy"), "slow")
    deadline = time.monotonic() + 60
    while not checkpoint.exists():
        assert victim.poll() is None, victim.communicate()
        assert time.monotonic() < deadline, "no checkpoint was written within a minute"
        time.sleep(0.02)
    time.sleep(0.3)  # a few more steps, so that the kill lands between checkpoints
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    assert victim.returncode == -signal.SIGKILL
    killed_at = torch.load(checkpoint, weights_only=True)["step"]
    assert 5 <= killed_at < 60 and killed_at % 5 == 0
    assert not (tmp_path / "victim.npy").exists()

    resumed = _run(script, str(checkpoint), str(tmp_path / "resumed.npy"), "fast")
    uninterrupted = _run(script, "-", str(tmp_path / "reference.npy"), "fast")
    outputs = [process.communicate(timeout=120) for process in (resumed, uninterrupted)]
    for process, (_, err) in zip((resumed, uninterrupted), outputs, strict=True):
        assert process.returncode == 0, err
    assert f"resumed_from {killed_at}" in outputs[0][0]
    assert "resumed_from None" in outputs[1][0]
    got = np.load(tmp_path / "resumed.npy")
    want = np.load(tmp_path / "reference.npy")
    assert np.isfinite(want).all()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


# -- recovery from non-finite steps ------------------------------------------------------------
def test_a_non_finite_step_is_skipped_and_the_rate_lowered():
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    history = TrainingHistory()
    seen_rates = []

    def loss(step):
        seen_rates.append(optimizer.param_groups[0]["lr"])
        value = ((model.weight - 3.0) ** 2).sum()
        return value * float("inf") if step == 4 else value

    train(model, loss, optimizer, n_steps=8, learning_rate=0.1, history=history)
    assert history.recoveries == [4] and history.n_steps == 8
    assert history.step == [0, 1, 2, 3, 5, 6, 7]
    assert all(np.isfinite(history.loss))
    assert seen_rates[5] == pytest.approx(0.1 * seen_rates[4] * (
        training.cosine_learning_rate(0.1, 5, 8) / training.cosine_learning_rate(0.1, 4, 8)))


def test_persistent_divergence_stops_with_the_last_good_state():
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.Adam(model.parameters())
    history = TrainingHistory()

    def loss(step):
        value = model(torch.ones(1, 2)).sum() ** 2
        return value * float("nan") if step >= 12 else value

    with pytest.raises(TrainingDiverged, match="at step 15.*after 3 recoveries"):
        train(model, loss, optimizer, n_steps=30, learning_rate=0.01, history=history)
    assert history.recoveries == [12, 13, 14] and history.n_steps == 15
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_an_interrupt_inside_an_update_restores_the_last_good_state():
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.ones_(model.weight)

    class HalfDoneSGD(torch.optim.SGD):
        """Interrupted half-way through step 13: the weights are half written."""

        def step(self, closure=None):
            if len(history.loss) == 13:
                with torch.no_grad():
                    model.weight.fill_(float("nan"))
                raise KeyboardInterrupt
            return super().step(closure)

    history = TrainingHistory()
    optimizer = HalfDoneSGD(model.parameters(), lr=0.01)
    with pytest.raises(KeyboardInterrupt):
        train(model, lambda step: (model.weight ** 2).sum(), optimizer, n_steps=30,
              learning_rate=0.01, history=history)
    # The last good copy is the state after 10 steps (copied every 10 steps, before the update
    # of step 10, once that state's loss has been seen to be finite).
    assert history.n_steps == 10 and history.step == list(range(10))
    assert torch.isfinite(model.weight).all()
