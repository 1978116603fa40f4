"""Meta-training across processes: a real two-process gloo run, started by torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist

import skmetaot
from skmetaot import distributed

SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import torch
    from skmetaot import MetaICNNTransport, MetaSinkhornTransport, distributed
    from skmetaot.amortize import entropic_dual_value
    from skmetaot.datasets import load_mnist, make_mnist_pairs
    from skmetaot.sampling import PairSampler

    out = sys.argv[1]
    assert distributed.init_from_environment()
    images, _ = load_mnist("train")
    est = MetaSinkhornTransport(hidden_layer_sizes=(256,), batch_size=16, max_iter=300,
                                device="cpu", random_state=0, checkpoint_path=out + "/run.ckpt",
                                checkpoint_every=100)
    est.fit(PairSampler(images[:2000], batch_size=16, random_state=0))
    rank = distributed.rank()
    torch.save(est.model_.state_dict(), f"{out}/rank{rank}.pt")
    # Held-out pairs: the entropic dual of the predictions against that of zero potentials.
    held_out = make_mnist_pairs(64, split="test", random_state=1)
    pairs = est._validate_pairs(held_out, fitting=False)
    zeros = entropic_dual_value(est._geometry(pairs), torch.zeros_like(pairs.a), pairs.a, pairs.b)
    duals = {"meta": est.score(held_out), "zeros": float(zeros.mean())}
    # The continuous meta estimator trains the same way (its hypernetwork under DDP).
    rng = np.random.default_rng(0)
    clouds = [rng.normal(loc=k % 3, size=(40 + k, 2)) for k in range(12)]
    icnn = MetaICNNTransport(icnn_hidden_sizes=(8,), encoder_features=8,
                             hidden_layer_sizes=(16,), batch_size=4, n_samples=32,
                             pretrain_iter=5, max_iter=10, device="cpu", random_state=0)
    icnn.fit(PairSampler(clouds, batch_size=4, random_state=0))
    torch.save(icnn.hypernetwork_.state_dict(), f"{out}/icnn{rank}.pt")
    json.dump({"world": distributed.world_size(), "n_iter": est.n_iter_,
               "loss": est.history_["loss"], "duals": duals,
               "first_batch": est._batch_generator.initial_seed()},
              open(f"{out}/rank{rank}.json", "w"))
""")


def _torchrun(script: Path, *args: str, processes: int = 2) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(skmetaot.__file__).parents[1]),
                                          os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           f"--nproc_per_node={processes}", str(script), *args], env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                    reason="torch.distributed with gloo is not available")
def test_two_gloo_processes_train_one_model(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    run = _torchrun(script, str(tmp_path))
    assert run.returncode == 0, run.stderr[-3000:]
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    # The same parameters on both ranks, bit for bit (DDP averaged the gradients).
    for name in ("rank", "icnn"):
        states = [torch.load(tmp_path / f"{name}{r}.pt", weights_only=True) for r in (0, 1)]
        assert states[0].keys() == states[1].keys()
        for key in states[0]:
            assert torch.equal(states[0][key], states[1][key]), (name, key)
    assert all(r["world"] == 2 and r["n_iter"] == 300 for r in reports)
    # Each rank drew its own pairs (seed offset by the rank), and logged the mean loss.
    assert reports[0]["first_batch"] != reports[1]["first_batch"]
    assert reports[0]["loss"] == reports[1]["loss"]
    # The predictions beat the zeros initialisation on held-out pairs (higher dual).
    duals = reports[0]["duals"]
    assert duals["meta"] > duals["zeros"], duals
    # Rank 0 alone wrote the checkpoint; it holds both ranks' generators.
    checkpoint = torch.load(tmp_path / "run.ckpt", weights_only=True)
    assert checkpoint["step"] == 300 and len(checkpoint["state"]["rank_generators"]) == 2
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".ckpt") == ["run.ckpt"]


def test_helpers_outside_a_process_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not distributed.is_distributed()
    assert distributed.rank() == 0 and distributed.world_size() == 1
    assert distributed.is_main_process()
    assert distributed.init_from_environment() is False
    module = torch.nn.Linear(2, 2)
    assert distributed.wrap(module) is module and distributed.unwrap(module) is module
    value = torch.tensor(3.0)
    assert distributed.mean_over_processes(value) is value
    assert distributed.gather({"a": 1}) == [{"a": 1}]
    np.testing.assert_equal(distributed.gather(np.arange(3)), [np.arange(3)])
