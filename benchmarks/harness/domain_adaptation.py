"""B5: domain adaptation in a scikit-learn pipeline, MNIST -> scikit-learn's digits.

Source domain: the bundled MNIST test set (10,000 labelled 28 x 28 digits). Target domain:
scikit-learn's 8 x 8 digits (1,797 images, other writers) upscaled to MNIST's 28 x 28 framing
(:func:`skmetaot.datasets.upscale_digits`). Both are put in one feature space fitted on the
source alone (:func:`skmetaot.datasets.load_digits_domains`; by default the hidden layer of a
small network trained on the labelled source pixels, reduced to 9 standardised components by a
linear discriminant analysis of the source), and a logistic regression is trained on the
labelled source features.

For each split, the target is cut at random into an unlabelled adaptation half (the maps are
fitted on it and on a random sample of the source features) and a held-out evaluation half.
Each map goes target -> source and is put in front of the frozen source classifier,
``Pipeline([("map", FrozenEstimator(fitted_map)), ("clf", classifier)])``
(:func:`skmetaot.da.adapted_pipeline`); the accuracy is that pipeline's score on the evaluation
half, points the maps never saw (POT's transports map new points through their nearest fitted
neighbour; ours evaluates ``grad f``). No target label is used to fit anything; every setting
below is fixed in advance and reported, none picked per split.

The same run also measures the two workflows that POT's and skada's users write (see
:mod:`harness.da_workflows`), on B5's splits and on a rotated-moons family:
``ot.da``'s ``fit(Xs=..., Xt=...)`` + a classifier trained on the transported source, and
skada's ``make_da_pipeline`` with ``sample_domain``; ours (:mod:`skmetaot.da`) next to POT's
``ot.da`` and skada's own methods, in one table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import ot
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC

from harness import da_workflows
from harness.common import machine_info, markdown_table, timed
from skmetaot import NeuralW2Transport
from skmetaot.da import adapted_pipeline
from skmetaot.datasets import load_digits_domains, load_mnist

#: Smoke-test size (well under a minute on 2 CPU cores).
QUICK: dict[str, Any] = {"n_splits": 1, "n_source": 500, "max_iter": 100,
                         "learning_rates": (1e-3,), "sinkhorn_regs": (3.0,),
                         "moons_angles": (30.0,), "moons_seeds": 1, "moons_max_iter": 100}
#: Columns of the table of both workflows (ot.da form and skada pipelines), all problems.
WORKFLOW_COLUMNS = ["problem", "interface", "method", "target accuracy", "min",
                    "vs POT SinkhornTransport (pts)", "fit s", "runs"]
#: Entropic regularisation of the workflow rows (POT's, skada's and ours alike), fixed in
#: advance: B5's reg_e=3 (the larger value of the frozen-pipeline rows) and 0.1 for the moons,
#: whose coordinates are ten times smaller.
WORKFLOW_REG_E = {"digits": 3.0, "moons": 0.1}
COLUMNS = ["method", "target accuracy", "min", "max", "gain vs none (pts)", "accuracy / none",
           "fit s", "transform s", "fit s / ours"]
FEATURE_NAMES = {"mlp": "LDA of the hidden layer (64 ReLU) of a network trained on the source",
                 "lda": "LDA of the source pixels", "pca": "PCA of the source pixels"}
SPLIT_COLUMNS = ["split", "method", "target accuracy", "fit s", "transform s"]
NO_ADAPTATION = "no adaptation"


def _check_run_args(n_splits: int, n_source: int, max_iter: int,
                    learning_rates: tuple[float, ...], sinkhorn_regs: tuple[float, ...]) -> None:
    for name, value in (("n_splits", n_splits), ("n_source", n_source), ("max_iter", max_iter)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    for name, values in (("learning_rates", learning_rates), ("sinkhorn_regs", sinkhorn_regs)):
        if not all(np.isfinite(v) and v > 0 for v in values):
            raise ValueError(f"{name} must hold positive numbers, got {values!r}")


def make_methods(max_iter: int = 1000, learning_rates: tuple[float, ...] = (1e-3, 1e-2),
                 sinkhorn_regs: tuple[float, ...] = (1.0, 3.0), device: str = "cpu",
                 ) -> dict[str, Callable[[int], Any]]:
    """The compared maps: name -> ``factory(seed)`` returning an unfitted map.

    Parameters
    ----------
    max_iter : int, default=1000
        Training steps of each of our maps.
    learning_rates : tuple of float, default=(1e-3, 1e-2)
        One :class:`~skmetaot.NeuralW2Transport` per peak learning rate.
    sinkhorn_regs : tuple of float, default=(1.0, 3.0)
        One POT ``SinkhornTransport`` per entropic regularisation ``reg_e`` (1 is POT's
        default).
    device : str, default="cpu"
        Torch device of our maps.

    Returns
    -------
    dict of str to callable
    """
    methods: dict[str, Callable[[int], Any]] = {"POT LinearTransport": lambda seed: (
        ot.da.LinearTransport())}
    for reg in sinkhorn_regs:
        methods[f"POT SinkhornTransport (reg_e={reg:g})"] = (
            lambda seed, reg=reg: ot.da.SinkhornTransport(reg_e=reg))
    for rate in learning_rates:
        methods[f"ours NeuralW2Transport (full quadratic, lr {rate:g})"] = (
            lambda seed, rate=rate: NeuralW2Transport(
                quadratic="full", max_iter=max_iter, batch_size=512, learning_rate=rate,
                pretrain_iter=200, device=device, random_state=seed))
    return methods


def fit_map(transport: Any, X_adapt: np.ndarray, X_source: np.ndarray) -> Any:
    """Fit a target -> source map on unlabelled target points and source points.

    Parameters
    ----------
    transport : NeuralW2Transport or ot.da.BaseTransport
        An unfitted map (ours takes one pair ``(Xs, Xt)``, POT's ``Xs=..., Xt=...``).
    X_adapt : ndarray of shape (n_adapt, n_features)
        Unlabelled target points (the map's source measure).
    X_source : ndarray of shape (n_source, n_features)
        Source-domain points (the map's target measure).

    Returns
    -------
    The fitted map.
    """
    if isinstance(transport, NeuralW2Transport):
        return transport.fit((X_adapt, X_source))
    return transport.fit(Xs=X_adapt, Xt=X_source)


def evaluate_map(transport: Any, classifier: Any, X_adapt: np.ndarray, X_source: np.ndarray,
                 X_eval: np.ndarray, y_eval: np.ndarray) -> dict[str, float]:
    """Fit one map, time it, and score the adapted pipeline on held-out target points.

    Parameters
    ----------
    transport : NeuralW2Transport or ot.da.BaseTransport
        An unfitted target -> source map.
    classifier : fitted classifier
        Trained on source features.
    X_adapt : ndarray of shape (n_adapt, n_features)
        Unlabelled target points the map is fitted on.
    X_source : ndarray of shape (n_source, n_features)
        Source points the map is fitted on.
    X_eval, y_eval : ndarrays of shape (n_eval, n_features) and (n_eval,)
        Held-out target points and their labels.

    Returns
    -------
    dict
        ``target accuracy``, ``fit s`` and ``transform s`` (of ``X_eval``).
    """
    fit_seconds, fitted = timed(lambda: fit_map(transport, X_adapt, X_source))
    transform_seconds, _ = timed(lambda: fitted.transform(X_eval))
    accuracy = float(adapted_pipeline(fitted, classifier).score(X_eval, y_eval))
    return {"target accuracy": accuracy, "fit s": fit_seconds, "transform s": transform_seconds}


def in_domain_accuracy(features: str = "mlp", n_components: int | None = None) -> float:
    """Accuracy on MNIST images 8000-9999 of the same recipe fitted on images 0-7999 alone.

    The feature extractor and the logistic regression see only the first 8000 images, so this
    is the classifier's accuracy without a domain shift, for reference.

    Parameters
    ----------
    features : {"mlp", "lda", "pca"}, default="mlp"
    n_components : int, optional

    Returns
    -------
    float
    """
    reference = load_digits_domains(features, n_components, mnist_split="train")
    images, labels = load_mnist("test")
    classifier = LogisticRegression(max_iter=2000).fit(reference.X_source, reference.y_source)
    held_out = reference.features.transform(images.reshape(len(images), -1))
    return float(classifier.score(held_out, labels))


def split_target(n_target: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A random half of the target indices for adaptation, the other half for evaluation."""
    order = np.random.default_rng(seed).permutation(n_target)
    return np.sort(order[: n_target // 2]), np.sort(order[n_target // 2:])


def _summary(rows: list[dict[str, Any]], methods: list[str]) -> list[dict[str, Any]]:
    def median(method: str, key: str) -> float:
        return float(np.median([r[key] for r in rows if r["method"] == method]))

    splits = sorted({r["split"] for r in rows})
    none = {r["split"]: r["target accuracy"] for r in rows if r["method"] == NO_ADAPTATION}
    ours = [m for m in methods if m.startswith("ours")]
    ours_fit = median(ours[0], "fit s") if ours else float("nan")
    summary = []
    for method in methods:
        accuracy = np.array([r["target accuracy"] for r in rows if r["method"] == method])
        gains = [r["target accuracy"] - none[r["split"]] for r in rows if r["method"] == method]
        fit = median(method, "fit s")
        summary.append({
            "method": method, "target accuracy": float(np.median(accuracy)),
            "min": float(accuracy.min()), "max": float(accuracy.max()),
            "gain vs none (pts)": 100.0 * float(np.median(gains)),
            "accuracy / none": float(np.median(accuracy) / np.median(list(none.values()))),
            "fit s": fit, "transform s": median(method, "transform s"),
            "fit s / ours": fit / ours_fit if method != NO_ADAPTATION and ours_fit > 0 else "",
            "splits": len(splits), "wins over none": int(sum(g > 0 for g in gains))})
    return summary


def run(n_splits: int = 5, n_source: int = 2000, max_iter: int = 1000,
        learning_rates: tuple[float, ...] = (1e-3, 1e-2),
        sinkhorn_regs: tuple[float, ...] = (1.0, 3.0), features: str = "mlp",
        n_components: int | None = None, seed: int = 0, device: str = "cpu",
        verbose: int = 1, moons_angles: tuple[float, ...] = (15.0, 30.0, 45.0),
        moons_seeds: int = 2, moons_max_iter: int = 300) -> dict[str, Any]:
    """The whole of B5; returns the payload written to the results files.

    Parameters
    ----------
    n_splits : int, default=5
        Random adaptation / evaluation splits of the target (split ``s`` uses seed
        ``seed + s`` for the split, the source sample and our map's initialisation).
    n_source : int, default=2000
        Source points each map is fitted on (the same random sample for every method).
    max_iter : int, default=1000
        Training steps of our maps.
    learning_rates : tuple of float, default=(1e-3, 1e-2)
        Peak learning rates of our maps, one table row each.
    sinkhorn_regs : tuple of float, default=(1.0, 3.0)
        ``reg_e`` of POT's ``SinkhornTransport``, one table row each.
    features : {"mlp", "lda", "pca"}, default="mlp"
        Shared feature space (see :func:`skmetaot.datasets.load_digits_domains`).
    n_components : int, optional
        Feature dimension (default 9 for ``"mlp"`` and ``"lda"``, 20 for ``"pca"``).
    seed : int, default=0
    device : str, default="cpu"
        Torch device of our maps.
    verbose : int, default=1
        Print one line per fitted map when positive.
    moons_angles : tuple of float, default=(15, 30, 45)
        Rotations (degrees) of the rotated-moons family of the workflow table.
    moons_seeds : int, default=2
        Draws per angle.
    moons_max_iter : int, default=300
        Training steps of our W2 maps on the moons.

    Returns
    -------
    dict
        ``rows`` (per split and method), ``summary`` (medians over splits), ``table``
        (Markdown), ``machine``, ``settings`` and ``notes``.
    """
    _check_run_args(n_splits, n_source, max_iter, tuple(learning_rates), tuple(sinkhorn_regs))
    domains = load_digits_domains(features, n_components)
    X_source, y_source = domains.X_source, domains.y_source
    X_target, y_target = domains.X_target, domains.y_target
    source_accuracy = in_domain_accuracy(features, n_components)
    classifier_seconds, classifier = timed(
        lambda: LogisticRegression(max_iter=2000).fit(X_source, y_source))
    methods = make_methods(max_iter, tuple(learning_rates), tuple(sinkhorn_regs), device)
    names = [NO_ADAPTATION, *methods]
    rows: list[dict[str, Any]] = []
    workflow: list[dict[str, Any]] = []
    w2_digits = {"quadratic": "full", "max_iter": max_iter, "batch_size": 512,
                 "learning_rate": learning_rates[0], "pretrain_iter": 200, "device": device}
    for split in range(n_splits):
        split_seed = seed + split
        adapt, evaluate = split_target(len(X_target), split_seed)
        pick = np.random.default_rng(split_seed).choice(len(X_source),
                                                        min(n_source, len(X_source)),
                                                        replace=False)
        X_adapt, X_eval, y_eval = X_target[adapt], X_target[evaluate], y_target[evaluate]
        rows.append({"split": split, "method": NO_ADAPTATION,
                     "target accuracy": float(classifier.score(X_eval, y_eval)),
                     "fit s": 0.0, "transform s": 0.0})
        for name, factory in methods.items():
            row = evaluate_map(factory(split_seed), classifier, X_adapt, X_source[pick], X_eval,
                               y_eval)
            rows.append({"split": split, "method": name, **row})
            if verbose:
                print(f"split {split} {name}: accuracy {row['target accuracy']:.3f}, "
                      f"fit {row['fit s']:.1f} s", flush=True)
        workflow += da_workflows.workflow_rows(
            "MNIST -> digits (B5)", split, split_seed, LogisticRegression(max_iter=2000),
            X_source[pick], y_source[pick], X_adapt, X_eval, y_eval,
            reg_e=WORKFLOW_REG_E["digits"], w2=w2_digits, verbose=verbose)
    workflow += da_workflows.moons_rows(
        tuple(moons_angles), moons_seeds, 300, SVC(), reg_e=WORKFLOW_REG_E["moons"],
        w2={"max_iter": moons_max_iter, "batch_size": 256, "pretrain_iter": 100,
            "device": device}, seed=seed, verbose=verbose)
    workflow_summary = da_workflows.summarise(workflow)
    summary = _summary(rows, names)
    n_features = X_source.shape[1]
    tables = [
        f"## MNIST -> scikit-learn digits (upscaled to 28 x 28): target accuracy of a source "
        f"classifier, median over {n_splits} random splits",
        f"Features: {FEATURE_NAMES[features]}, {n_features} standardised components, fitted "
        f"on the labelled source alone. Classifier: logistic regression on all "
        f"{len(X_source)} source points (in-domain accuracy {source_accuracy:.3f} on MNIST "
        f"images 8000-9999 when trained on 0-7999). Each map goes target -> source, fitted "
        f"on {len(X_target) // 2} unlabelled target points and {min(n_source, len(X_source))}"
        f" source points, and is evaluated on the other {len(X_target) - len(X_target) // 2} "
        f"target points through `Pipeline([FrozenEstimator(map), classifier])`. Gain: median "
        f"over splits of the accuracy difference to no adaptation, in percentage points.",
        markdown_table(summary, COLUMNS),
        "### Per split",
        markdown_table(rows, SPLIT_COLUMNS),
        "## Both workflows, ours next to POT's and skada's: B5 and the rotated moons",
        f"The ot.da form fits `transport.fit(Xs=Xs, Xt=X_adapt)` and trains the classifier on "
        f"`transport.transform(Xs=Xs)`; a skada pipeline is fitted on the source and the "
        f"unlabelled target rows with `sample_domain` and scores target rows. B5: the "
        f"{min(n_source, len(X_source))} source points and the adaptation half of each split "
        f"above, logistic regression, reg_e={WORKFLOW_REG_E['digits']:g}, our W2 maps as "
        f"the lr {learning_rates[0]:g} row above. Moons: 300 source points, 300 unlabelled "
        f"target points to adapt on and 300 fresh ones to score, SVC(), "
        f"reg_e={WORKFLOW_REG_E['moons']:g}, our W2 maps {moons_max_iter} steps of 256. "
        f"Accuracy: median over {n_splits} splits (B5) or {moons_seeds} draws (moons); "
        f"the gap is to POT's ot.da.SinkhornTransport on the same runs"
        + ("" if da_workflows.skada_available() else "; skada is not installed, so its "
           "rows and our skada pipelines are missing") + ".",
        markdown_table(workflow_summary, WORKFLOW_COLUMNS),
    ]
    return {"benchmark": "B5 domain adaptation (bench_domain_adaptation)", "seed": seed,
            "machine": machine_info(torch.device(device)),
            "settings": {"n_splits": n_splits, "n_source": n_source, "max_iter": max_iter,
                         "moons_angles": list(moons_angles), "moons_seeds": moons_seeds,
                         "moons_max_iter": moons_max_iter, "workflow_reg_e": WORKFLOW_REG_E,
                         "skada": da_workflows.skada_available(),
                         "learning_rates": list(learning_rates),
                         "sinkhorn_regs": list(sinkhorn_regs), "features": features,
                         "n_features": n_features, "batch_size": 512, "pretrain_iter": 200},
            "source_accuracy": source_accuracy, "classifier_seconds": classifier_seconds,
            "rows": rows, "summary": summary, "workflow_rows": workflow,
            "workflow_summary": workflow_summary, "table": "\n\n".join(tables),
            "notes": [
                "Target digits: sklearn.datasets.load_digits (8 x 8) zoomed into a 20 x 20 box, "
                "padded to 28 x 28 and centred by centre of mass, as MNIST was framed.",
                "Times: fit s is the map's fit on the adaptation half; transform s maps the "
                f"evaluation half; on {device}. POT's SinkhornTransport maps unseen points "
                "through their nearest fitted neighbour.",
                "Our maps: ICNN with a full quadratic term (it holds the affine Gaussian map), "
                f"{max_iter} steps, batch 512, identity pre-training 200 steps. lr 1e-2 is the "
                "estimator's default for an ICNN; lr 1e-3 (a gentler fit that stays closer to "
                "an affine map) was picked in a pilot on one split of the pixel-LDA features "
                "that looked at target labels, so it is shown next to the default, not instead "
                "of it. reg_e=1 is POT's default for SinkhornTransport; reg_e=3 is one larger "
                "value, fixed in advance.",
                "'wins over none' in the JSON summary counts the splits where a method beats "
                "no adaptation."]}


def run_benchmark(quick: bool = False, *, device: str = "cpu") -> dict[str, dict[str, Any]]:
    """What ``skmetaot bench domain_adaptation`` runs: the payloads by result-file name.

    The runner every benchmark of the command line has (same signature): ``quick`` is the
    smoke-test size.
    """
    payload = run(**(QUICK if quick else {}), device=device)
    return {"bench_domain_adaptation" + ("_quick" if quick else ""): payload}
