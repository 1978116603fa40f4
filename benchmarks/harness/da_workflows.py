"""B5 extended: domain adaptation the way POT's and skada's users run it, ours and theirs.

Two workflows, each used by POT's or skada's methods and by ours on the same data:

* ``ot.da`` form: ``transport.fit(Xs=Xs, Xt=X_adapt)``, a classifier trained on
  ``transport.transform(Xs=Xs)`` with the source labels, target points classified as they are;
* skada form: ``pipeline.fit(X, y, sample_domain=...)`` on the source and the unlabelled
  target rows together (``y = -1`` on target rows), ``pipeline.score(X_eval, y_eval)`` on
  target points (skada's convention: rows without ``sample_domain`` are targets).

Every accuracy is on target points the maps never saw. Also here: the rotated-moons family
(:func:`skmetaot.datasets.make_rotated_moons`, the classic toy shift of the ``ot.da``
examples): two moons, the target rotated by an angle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import ot
import sklearn
from sklearn.base import clone

from harness.common import timed
from skmetaot.da import SinkhornMapping, SinkhornTransport, W2Mapping, W2MapTransport
from skmetaot.datasets import make_rotated_moons

OTDA = "ot.da form"
SKADA = "skada pipeline"
#: The reference every row is compared with: POT's SinkhornTransport in ot.da form.
POT_REFERENCE = "POT ot.da.SinkhornTransport"


def skada_available() -> bool:
    """Whether skada can be imported (its rows are skipped, and said so, when not)."""
    try:
        import skada  # noqa: F401
    except ImportError:
        return False
    return True


def otda_methods(reg_e: float, w2: dict[str, Any]) -> dict[str, Callable[[int], Any]]:
    """``ot.da``-style transports: name -> ``factory(seed)``."""
    return {
        f"{POT_REFERENCE} (reg_e={reg_e:g})": lambda seed: ot.da.SinkhornTransport(reg_e=reg_e),
        f"ours skmetaot.da.SinkhornTransport (reg_e={reg_e:g})": (
            lambda seed: SinkhornTransport(reg_e=reg_e)),
        "ours skmetaot.da.W2MapTransport": lambda seed: W2MapTransport(random_state=seed, **w2),
    }


def skada_methods(reg_e: float, w2: dict[str, Any]) -> dict[str, Callable[[int, Any], Any]]:
    """The skada pipelines: name -> ``factory(seed, classifier)`` (empty without skada)."""
    if not skada_available():
        return {}
    import skada

    return {
        f"skada EntropicOTMapping (reg_e={reg_e:g})": (
            lambda seed, clf: skada.EntropicOTMapping(clone(clf), reg_e=reg_e)),
        "skada LinearOTMapping": lambda seed, clf: skada.LinearOTMapping(clone(clf)),
        "skada CORAL": lambda seed, clf: skada.CORAL(clone(clf)),
        f"ours skmetaot.da.SinkhornMapping (reg_e={reg_e:g})": (
            lambda seed, clf: SinkhornMapping(clone(clf), reg_e=reg_e)),
        "ours skmetaot.da.W2Mapping": (
            lambda seed, clf: W2Mapping(clone(clf), random_state=seed, **w2)),
    }


def evaluate_otda(transport: Any, classifier: Any, Xs: np.ndarray, ys: np.ndarray,
                  X_adapt: np.ndarray, X_eval: np.ndarray, y_eval: np.ndarray) -> dict:
    """Fit the transport source -> target, train the classifier on the moved source, score."""
    def fit() -> Any:
        transport.fit(Xs=Xs, Xt=X_adapt)
        return clone(classifier).fit(transport.transform(Xs=Xs), ys)

    seconds, fitted = timed(fit)
    return {"target accuracy": float(fitted.score(X_eval, y_eval)), "fit s": seconds}


def evaluate_skada(pipeline: Any, Xs: np.ndarray, ys: np.ndarray, X_adapt: np.ndarray,
                   X_eval: np.ndarray, y_eval: np.ndarray) -> dict:
    """``pipeline.fit(X, y, sample_domain)`` on source + unlabelled target, score the target."""
    X = np.vstack([Xs, X_adapt])
    y = np.concatenate([ys, -np.ones(len(X_adapt), dtype=ys.dtype)])  # skada masks in place
    domain = np.concatenate([np.ones(len(Xs), dtype=int), -np.ones(len(X_adapt), dtype=int)])
    # skada's pipelines route sample_domain through scikit-learn's metadata routing, which its
    # import turns on only once per process (a caller may have turned it off again since).
    with sklearn.config_context(enable_metadata_routing=True):
        seconds, _ = timed(lambda: pipeline.fit(X, y, sample_domain=domain))
        accuracy = float(pipeline.score(X_eval, y_eval))
    return {"target accuracy": accuracy, "fit s": seconds}


def workflow_rows(problem: str, split: int, seed: int, classifier: Any, Xs: np.ndarray,
                  ys: np.ndarray, X_adapt: np.ndarray, X_eval: np.ndarray, y_eval: np.ndarray,
                  *, reg_e: float, w2: dict[str, Any], verbose: int = 0) -> list[dict]:
    """One split of one problem: every ``ot.da`` and skada method, in one run."""
    rows = [{"problem": problem, "split": split, "interface": "none",
             "method": "no adaptation", "fit s": 0.0,
             "target accuracy": float(clone(classifier).fit(Xs, ys).score(X_eval, y_eval))}]
    for name, factory in otda_methods(reg_e, w2).items():
        out = evaluate_otda(factory(seed), classifier, Xs, ys, X_adapt, X_eval, y_eval)
        rows.append({"problem": problem, "split": split, "interface": OTDA, "method": name,
                     **out})
    for name, factory in skada_methods(reg_e, w2).items():
        out = evaluate_skada(factory(seed, classifier), Xs, ys, X_adapt, X_eval, y_eval)
        rows.append({"problem": problem, "split": split, "interface": SKADA, "method": name,
                     **out})
    if verbose:
        for row in rows[1:]:
            print(f"{problem} split {split} {row['method']}: {row['target accuracy']:.3f} "
                  f"({row['fit s']:.1f} s)", flush=True)
    return rows


def moons_rows(angles: tuple[float, ...], n_seeds: int, n_samples: int, classifier: Any, *,
               reg_e: float, w2: dict[str, Any], seed: int = 0,
               verbose: int = 0) -> list[dict]:
    """The rotated-moons family, every method in both workflows.

    Per angle and seed: a source sample, an unlabelled target sample to adapt on and a fresh
    labelled target sample to score on.
    """
    rows = []
    for angle in angles:
        for k in range(n_seeds):
            base = seed + 1000 * k + int(angle)
            Xs, ys = make_rotated_moons(n_samples, 0.0, random_state=base)
            X_adapt, _ = make_rotated_moons(n_samples, angle, random_state=base + 1)
            X_eval, y_eval = make_rotated_moons(n_samples, angle, random_state=base + 2)
            rows += workflow_rows(f"moons {angle:g} deg", k, base, classifier, Xs, ys,
                                  X_adapt, X_eval, y_eval, reg_e=reg_e, w2=w2,
                                  verbose=verbose)
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    """Median accuracy per problem and method, and its gap to POT's SinkhornTransport."""
    summary = []
    problems = list(dict.fromkeys(r["problem"] for r in rows))
    for problem in problems:
        mine = [r for r in rows if r["problem"] == problem]
        reference = [r["target accuracy"] for r in mine
                     if r["method"].startswith(POT_REFERENCE)]
        ref = float(np.median(reference)) if reference else float("nan")
        for method in dict.fromkeys(r["method"] for r in mine):
            picked = [r for r in mine if r["method"] == method]
            accuracy = float(np.median([r["target accuracy"] for r in picked]))
            summary.append({
                "problem": problem, "interface": picked[0]["interface"], "method": method,
                "target accuracy": accuracy,
                "min": float(min(r["target accuracy"] for r in picked)),
                "vs POT SinkhornTransport (pts)": 100.0 * (accuracy - ref),
                "fit s": float(np.median([r["fit s"] for r in picked])),
                "runs": len(picked)})
    return summary
