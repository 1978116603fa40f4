"""The prepared GPU check (``benchmarks/gpu_check.sh``) runs end to end on the CPU."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_gpu_check_smoke_on_cpu_writes_every_table(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    env.pop("OUT", None)
    done = subprocess.run(["bash", str(SCRIPT), "--device", "cpu", "--smoke", "--out",
                           str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    log = (tmp_path / "gpu_check.log").read_text()
    assert done.returncode == 0, done.stdout + done.stderr + log
    summary = (tmp_path / "gpu_check.md").read_text()
    assert "FAILED" not in summary
    for name in ("bench_sinkhorn_smoke", "bench_meta_peers_smoke", "bench_dense_kernel_smoke"):
        payload = json.loads((tmp_path / f"{name}.json").read_text())
        assert payload["machine"]["device"] == "cpu"
        assert f"## {name}" in summary
    cold = json.loads((tmp_path / "bench_sinkhorn_smoke.json").read_text())
    ours = [r for r in cold["rows"] if r["solver"] == "skmetaot sinkhorn"]
    assert ours and ours[0]["met b=1"].split("/")[0] == ours[0]["met b=1"].split("/")[1]


def test_gpu_check_refuses_cuda_without_nvidia_smi(tmp_path):
    if shutil.which("nvidia-smi"):
        pytest.skip("a CUDA machine: the refusal is for machines without one")
    done = subprocess.run(["bash", str(SCRIPT), "--device", "cuda", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 69
    assert "no nvidia-smi" in done.stderr


def test_gpu_check_rejects_an_unknown_device(tmp_path):
    done = subprocess.run(["bash", str(SCRIPT), "--device", "tpu", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 64
    assert "--device must be cpu or cuda" in done.stderr
