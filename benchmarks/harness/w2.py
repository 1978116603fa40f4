"""B3: NeuralW2Transport settings on the Korotin et al. W2 benchmark and on Gaussian pairs."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from harness.common import machine_info, markdown_table, timed
from skmetaot.amortize import TrainingDiverged
from skmetaot.datasets import load_w2_benchmark, make_gaussian_pair
from skmetaot.estimators.neural_w2 import DEFAULT_LEARNING_RATES, NeuralW2Transport
from skmetaot.solvers.conjugate import solve_conjugate

#: (label, potential, amortization, conjugate): the rows of Table 1 of Amos (2023).
METHODS = [
    ("W2GN", "icnn", "cycle", None),
    ("MM", "icnn", "objective", None),
    ("objective + L-BFGS", "icnn", "objective", "lbfgs"),
    ("regression + L-BFGS", "icnn", "regression", "lbfgs"),
    ("objective + Adam", "icnn", "objective", "adam"),
    ("regression + L-BFGS", "mlp", "regression", "lbfgs"),
    ("objective + L-BFGS", "mlp", "objective", "lbfgs"),
    ("W2GN", "mlp", "cycle", None),
    ("MM", "mlp", "objective", None),
    ("objective + Adam", "mlp", "objective", "adam"),
]
#: The --quick smoke test: one dimension, a hundred steps.
QUICK = {"dims": (2,), "steps": 100, "batch_size": 256, "gaussian_dims": (2,),
         "gaussian_steps": 100}
COLUMNS = ["D", "method", "potential", "UVP %", "published %", "train s", "steps",
           "conj iters/step", "status"]
GAUSS_COLUMNS = ["D", "method", "potential", "UVP %", "train s", "steps", "status"]
CONJ_COLUMNS = ["D", "start", "median iters", "p90 iters", "max iters", "converged",
                "median grad norm", "seconds"]


def _published(bench: Any, label: str, potential: str) -> float | None:
    key = {("W2GN", "icnn"): "W2GN", ("MM", "icnn"): "MM",
           ("regression + L-BFGS", "icnn"): "ICNN regression+L-BFGS (Amos 2023)",
           ("regression + L-BFGS", "mlp"): "MLP regression+L-BFGS (Amos 2023)"}.get(
        (label, potential))
    return bench.published.get(key) if key else None


def _fit(pair: Any, method: tuple, steps: int, batch_size: int, seed: int, device: str,
         quadratic: str = "scalar"):
    label, potential, amortization, conjugate = method
    est = NeuralW2Transport(potential=potential, amortization=amortization, quadratic=quadratic,
                            conjugate=conjugate, max_iter=steps, batch_size=batch_size,
                            pretrain_iter=500,
                            device=device, random_state=seed)
    data = pair.as_pair(max(100_000, 20 * batch_size), random_state=seed + 1)
    status = "ok"
    try:
        seconds, _ = timed(lambda: est.fit(data))
    except TrainingDiverged:
        seconds, status = float("nan"), "diverged"
    uvp = pair.uvp(est.transform(pair.x_test)) if status == "ok" else float("nan")
    if status == "ok" and not np.isfinite(uvp):
        status = "non-finite map"
    if status == "ok" and uvp > 100:
        status = "> 100"
    iters = est.history_["conjugate_iterations"]
    row = {"method": label, "potential": potential, "UVP %": uvp, "train s": seconds,
           "steps": est.n_iter_, "conj iters/step": float(np.mean(iters)) if iters else 0.0,
           "status": status}
    return row, est


def _conjugate_rows(est: NeuralW2Transport, pair: Any, dim: int, seed: int) -> list[dict]:
    """Iterations the batched L-BFGS needs on 1024 conjugates of the trained potential."""
    where = next(est.potential_.parameters())  # the fitted network's device and dtype
    y = torch.as_tensor(pair.sample_target(1024, random_state=seed + 2)).to(
        where.device, where.dtype)
    rows = []
    for start_name in ("amortized", "y (cold)"):
        with torch.no_grad():
            start = est.amortizer_(y) if start_name == "amortized" else y
        seconds, out = timed(lambda start=start: solve_conjugate(
            est.potential_, y, start, method="lbfgs", tol=1e-3, max_iter=200))
        iters = out.n_iter.cpu().numpy()
        rows.append({"D": dim, "start": start_name, "median iters": float(np.median(iters)),
                     "p90 iters": float(np.percentile(iters, 90)), "max iters": int(iters.max()),
                     "converged": f"{int(out.converged.sum())}/{len(iters)}",
                     "median grad norm": float(out.grad_norm.median()), "seconds": seconds})
    return rows


def sanity_rows(dims: tuple[int, ...], seed: int = 0) -> list[dict[str, Any]]:
    """Identity, the benchmark's linear map L and the best affine (least-squares) map."""
    rows = []
    for dim in dims:
        bench = load_w2_benchmark(dim)
        x = bench.sample_source(65_536, random_state=seed + 54321)
        design = np.hstack([x, np.ones((len(x), 1))])
        coef, *_ = np.linalg.lstsq(design, bench.transport_map(x), rcond=None)
        affine = np.hstack([bench.x_test, np.ones((len(bench.x_test), 1))]) @ coef
        for label, mapped, key in (("identity", bench.x_test, "ID"),
                                   ("L (Gaussian linear map)", bench.linear_map(bench.x_test),
                                    "L"),
                                   ("best affine (least squares)", affine, None)):
            rows.append({"D": dim, "method": label, "potential": "-", "UVP %": bench.uvp(mapped),
                         "published %": bench.published.get(key) if key else None,
                         "train s": 0.0, "steps": 0, "conj iters/step": 0.0, "status": "ok"})
    return rows


def run(dims: tuple[int, ...] = (2, 4, 8, 16, 32, 64), *, steps: int = 2000,
        batch_size: int = 1024, gaussian_dims: tuple[int, ...] = (2, 4, 8, 16, 32, 64),
        gaussian_steps: int = 1000, methods: list[tuple] | None = None, seed: int = 0,
        device: str = "cpu", progress: bool = True) -> dict[str, Any]:
    """Train every method on every dimension; returns the payload with tables."""
    methods = methods or METHODS
    rows, conj_rows, gauss_rows = sanity_rows(dims, seed), [], []
    for dim in dims:
        bench = load_w2_benchmark(dim)
        for method in methods:
            row, est = _fit(bench, method, steps, batch_size, seed, device)
            row.update(D=dim, **{"published %": _published(bench, method[0], method[1])})
            rows.append(row)
            if progress:
                print(markdown_table([row], COLUMNS).splitlines()[-1], flush=True)
            if method[0] == "regression + L-BFGS" and method[1] == "icnn" and row[
                    "status"] == "ok":
                conj_rows += _conjugate_rows(est, bench, dim, seed)
    for dim in gaussian_dims:
        pair = make_gaussian_pair(dim, random_state=seed)
        # A full quadratic term holds the exact (quadratic) potential of a Gaussian pair.
        row, _ = _fit(pair, METHODS[3], gaussian_steps, batch_size, seed, device,
                      quadratic="full")
        row.update(D=dim, potential="icnn, full quadratic")
        gauss_rows.append(row)
        if progress:
            print(markdown_table([row], GAUSS_COLUMNS).splitlines()[-1], flush=True)
    schedule = {"steps": steps, "batch_size": batch_size, "learning_rates": DEFAULT_LEARNING_RATES,
                "pretrain_iter": 500, "optimizer": "AdamW betas (0.5, 0.5), cosine decay",
                "conjugate_tol_training": 1e-2, "gaussian_steps": gaussian_steps,
                "gaussian_potential": "icnn, quadratic='full'"}
    return build_payload(rows, conj_rows, gauss_rows, schedule, seed, device)


def build_payload(rows: list[dict], conj_rows: list[dict], gauss_rows: list[dict],
                  schedule: dict[str, Any], seed: int, device: str) -> dict[str, Any]:
    """Tables and metadata of a B3 run (or of several runs merged)."""
    rows = sorted(rows, key=lambda r: (r["D"], r["potential"] != "-", r["potential"],
                                       r["method"]))
    tables = [
        "## Forward L2-UVP on the stored evaluation sets (Korotin et al. Mix3toMix10)",
        markdown_table(rows, COLUMNS),
        "## Batched L-BFGS on 1024 conjugates of the trained ICNN (tol 1e-3 on |grad f - y|)",
        markdown_table(sorted(conj_rows, key=lambda r: r["D"]), CONJ_COLUMNS),
        "## Gaussian to Gaussian (random covariances): UVP against the exact linear map",
        markdown_table(sorted(gauss_rows, key=lambda r: r["D"]), GAUSS_COLUMNS),
    ]
    return {"benchmark": "B3 neural W2 (bench_w2)", "seed": seed,
            "machine": machine_info(torch.device(device)),
            "schedule": schedule, "rows": rows, "conjugate": conj_rows, "gaussian": gauss_rows,
            "table": "\n\n".join(tables),
            "notes": ["UVP in percent of Var(Q) on the stored x_test (16384 points; 8192 "
                      "for D = 64).",
                      "Published rows: Korotin et al. 2021 (W2GN, MM, L, ID) and Amos 2023 "
                      "Table 1 (regression + L-BFGS), 250k training steps on a GPU; ours use "
                      f"{schedule['steps']} steps on {device}."]}


def merge(payloads: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge B3 runs over different dimensions or methods into one payload.

    Rows of the same (D, method, potential) keep the later run's; the runs must share the
    schedule of the benchmark rows (the Gaussian rows carry their own steps and potential).
    """
    def w2_schedule(payload: dict[str, Any]) -> str:
        return json_key({k: v for k, v in payload["schedule"].items()
                         if not k.startswith("gaussian")})

    if len({w2_schedule(p) for p in payloads}) != 1:
        raise ValueError("the runs to merge used different schedules")

    def unique(key: str, ident: tuple[str, ...]) -> list[dict]:
        table = {tuple(r[k] for k in ident): r for p in payloads for r in p[key]}
        return list(table.values())

    merged = build_payload(unique("rows", ("D", "method", "potential")),
                           unique("conjugate", ("D", "start")),
                           unique("gaussian", ("D", "method", "potential")),
                           payloads[0]["schedule"], payloads[0]["seed"],
                           payloads[0]["machine"]["device"])
    threads = sorted({p["machine"]["torch_threads"] for p in payloads})
    merged["notes"].append(f"Merged from {len(payloads)} runs (torch threads {threads}, git "
                           f"{sorted({p['machine']['git_revision'] for p in payloads})}); the "
                           "machine line is the first run's, and wall times of runs with "
                           "different thread counts are not comparable.")
    return merged


def json_key(obj: Any) -> str:
    """A canonical string of a JSON-like object (to compare schedules)."""
    import json

    return json.dumps(obj, sort_keys=True)


def run_benchmark(quick: bool = False, *, device: str = "cpu") -> dict[str, dict[str, Any]]:
    """What ``skmetaot bench w2`` runs: the payloads by result-file name.

    The runner every benchmark of the command line has (same signature): ``quick`` is the
    smoke-test size.
    """
    payload = run(**(QUICK if quick else {}), device=device)
    return {"bench_w2" + ("_quick" if quick else ""): payload}
