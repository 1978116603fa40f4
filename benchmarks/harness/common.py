"""Shared benchmark plumbing: timing, machine description, tables and result files."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

# The benchmarks' tables are the public one's (skmetaot.evaluation), re-exported here.
from skmetaot.evaluation import markdown_table

__all__ = ["machine_info", "markdown_table", "pot_to_tolerance", "pot_warmstart_row",
           "run_json_worker", "timed", "write_results"]


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    """Run ``function`` once and return (seconds, result)."""
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def run_json_worker(module: str, args: list[str], *, threads: str, processes: int = 1,
                    timeout: float = 7200) -> list[dict[str, Any]]:
    """Run ``python -m module *args`` in fresh processes; return the JSON lines it printed.

    A fresh process per measurement gives each one its own peak resident memory. With
    ``processes > 1`` it is started by ``torchrun --standalone``. ``threads`` sets
    ``OMP_NUM_THREADS``.
    """
    launcher = [sys.executable]
    # The worker is ``harness.<name>``: the child needs benchmarks/ on its path as the script had.
    path = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                         os.environ.get("PYTHONPATH")]))
    if processes > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone",
                     f"--nproc_per_node={processes}"]
    env = {**os.environ, "OMP_NUM_THREADS": threads, "PYTHONPATH": path}
    out = subprocess.run([*launcher, "-m", module, *args], capture_output=True, text=True,
                         env=env, check=False, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"worker {module} {args} failed:\n{out.stderr[-3000:]}")
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def machine_info(device: torch.device | None = None) -> dict[str, Any]:
    """CPU model, threads, library versions, device and git revision, for result files."""
    import ot

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        revision = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                  text=True, check=False, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        revision = "unknown"
    device = device or torch.device("cpu")
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pot": ot.__version__,
        "git_revision": revision,
    }


def write_results(name: str, payload: dict[str, Any], table: str, folder: Path) -> None:
    """Write ``<name>.json`` and ``<name>.md`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(payload, indent=2, default=str))
    info = payload.get("machine", {})
    header = [f"# {name}", "", f"Machine: {info.get('cpu')} ({info.get('torch_threads')} torch "
              f"threads), device {info.get('device')}; torch {info.get('torch')}, POT "
              f"{info.get('pot')}; git {info.get('git_revision')}; seed {payload.get('seed')}.", ""]
    notes = payload.get("notes", [])
    (folder / f"{name}.md").write_text("\n".join(header + [table, ""] + notes) + "\n")


def pot_to_tolerance(a, b, cost, epsilon, tol, start_iter, *, step=10, warmstart=None,
                     max_iter=5000, return_error=False):
    """POT ``sinkhorn_log`` run with the fewest iterations meeting the L1 ``tol`` of eq. (7).

    POT stops on the L2 norm of its b-marginal error; to measure it by our rule, it is run with
    ``stopThr=0`` for exactly ``k`` iterations, ``k`` rising from ``start_iter`` in ``step``s
    (with ``step=1``, first lowered while the tolerance still holds). Returns (seconds of the
    run that met the tolerance, k, met), and with ``return_error`` that run's L1 error too
    (computed from the plan in float64).
    """
    import ot

    def attempt(k):
        with np.errstate(divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            seconds, plan = timed(lambda: ot.sinkhorn(
                a, b, cost, epsilon, method="sinkhorn_log", numItermax=k, stopThr=0.0,
                warn=False, warmstart=warmstart))
        plan = plan.astype(np.float64)
        error = float(np.abs(plan.sum(1) - a).sum() + np.abs(plan.sum(0) - b).sum())
        errors[k] = error
        return seconds, error < tol

    errors = {}
    n_iter = max(1, int(start_iter))
    seconds, met = attempt(n_iter)
    if met and step == 1:
        while n_iter > 1:
            lower_seconds, lower_met = attempt(n_iter - 1)
            if not lower_met:
                break
            n_iter, seconds = n_iter - 1, lower_seconds
    while not met and n_iter < max_iter:
        n_iter += step
        seconds, met = attempt(n_iter)
    return (seconds, n_iter, met, errors[n_iter]) if return_error else (seconds, n_iter, met)


def pot_warmstart_row(name: str, tol: float, epsilon: float, cases) -> dict[str, Any]:
    """One row of the POT comparison: ``sinkhorn_log`` cold and warm-started from a prediction.

    Parameters
    ----------
    name : str
        The problem's name.
    tol : float
        L1 tolerance both runs must meet.
    epsilon : float
    cases : iterable of tuple
        Per pair ``(a, b, cost, ours_cold, ours_meta, f, g)``: float64 numpy weights and cost,
        our iteration counts from zeros and from the prediction (where POT's search starts),
        and the predicted potentials.

    Returns
    -------
    dict
        Median POT iterations and seconds, cold and warm, their ratio and how many met ``tol``.
    """
    from skmetaot.pot import to_warmstart

    cold_it, warm_it, cold_s, warm_s, met = [], [], [], [], []
    for a, b, cost, ours_cold, ours_meta, f, g in cases:
        s_cold, i_cold, m_cold = pot_to_tolerance(a, b, cost, epsilon, tol, ours_cold, step=1)
        s_warm, i_warm, m_warm = pot_to_tolerance(a, b, cost, epsilon, tol, ours_meta, step=1,
                                                  warmstart=to_warmstart(f, g, epsilon))
        cold_it.append(i_cold)
        warm_it.append(i_warm)
        cold_s.append(s_cold)
        warm_s.append(s_warm)
        met.append(m_cold and m_warm)
    return {"problem": name, "tol": tol, "POT iters cold": float(np.median(cold_it)),
            "POT iters warm (meta)": float(np.median(warm_it)),
            "iter ratio": float(np.median(cold_it)) / float(np.median(warm_it)),
            "POT s cold": float(np.median(cold_s)), "POT s warm": float(np.median(warm_s)),
            "met tol": f"{sum(met)}/{len(met)}"}
