"""Two domains of handwritten digits: MNIST (source) and scikit-learn's 8 x 8 digits (target).

The target images are scikit-learn's ``load_digits`` (the UCI optical-recognition digits, 8 x 8,
16 grey levels), brought to MNIST's framing the way MNIST itself was built: scaled into a
20 x 20 box (bilinear), padded to 28 x 28 and translated by whole pixels so that the centre of
mass falls where MNIST's does (pixel (14, 14)). What is left is a real shift: other writers,
another normalisation of the digits' size and aspect ratio, thicker strokes and the blur of a
2.5x upscaling of 8 x 8 blocks.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from skmetaot.datasets._mnist import SPLITS, load_mnist

#: Feature spaces of :func:`load_digits_domains`, with their default number of components.
FEATURES = {"mlp": 9, "lda": 9, "pca": 20}
#: MNIST's frame, digit box and centre of mass (row, column), in pixels.
FRAME, BOX, CENTER = 28, 20, (14, 14)


def upscale_digits(images: np.ndarray, max_level: float = 16.0) -> np.ndarray:
    """Bring 8 x 8 digit images to MNIST's 28 x 28 framing.

    Each image is divided by ``max_level`` (16 for scikit-learn's digits), zoomed bilinearly
    into a 20 x 20 box, padded to 28 x 28 and shifted by whole pixels so that its centre
    of mass is at pixel (14, 14), as in MNIST.

    Parameters
    ----------
    images : array-like of shape (n_images, 8, 8)
        Non-negative grey levels, 0 to 16 for :func:`sklearn.datasets.load_digits`.
    max_level : float, default=16.0
        The grey level that becomes intensity 1.

    Returns
    -------
    ndarray of shape (n_images, 28, 28), dtype float64
        Intensities in [0, 1].

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> big = upscale_digits(load_digits().images[:3])
    >>> big.shape, float(big.min()) >= 0.0, float(big.max()) <= 1.0
    ((3, 28, 28), True, True)
    """
    images = np.asarray(images, dtype=float)
    if images.ndim != 3 or images.shape[1:] != (8, 8):
        raise ValueError(f"images must have shape (n_images, 8, 8), got {images.shape}")
    if not np.isfinite(images).all() or (images < 0).any():
        raise ValueError("images must hold finite, non-negative grey levels")
    if not (np.isfinite(max_level) and max_level > 0):
        raise ValueError(f"max_level must be a positive number, got {max_level!r}")
    pad = (FRAME - BOX) // 2
    out = np.empty((len(images), FRAME, FRAME))
    for k, image in enumerate(images / max_level):
        framed = np.pad(np.clip(ndimage.zoom(image, BOX / 8, order=1), 0.0, 1.0), pad)
        if framed.sum() > 0:
            row, col = ndimage.center_of_mass(framed)
            shift = (int(round(CENTER[0] - row)), int(round(CENTER[1] - col)))
            framed = ndimage.shift(framed, shift, order=0, mode="constant", cval=0.0)
        out[k] = framed
    return out


@lru_cache(maxsize=1)
def _target_images() -> tuple[np.ndarray, np.ndarray]:
    digits = load_digits()
    images = np.round(255.0 * upscale_digits(digits.images)).astype(np.uint8)
    labels = digits.target.astype(np.uint8)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def _to_unit(pixels: np.ndarray) -> np.ndarray:
    return np.asarray(pixels, dtype=float) / 255.0


class HiddenLayerFeatures(TransformerMixin, BaseEstimator):
    """The hidden ReLU layer of a one-hidden-layer network trained on labelled data.

    ``fit(X, y)`` trains a :class:`sklearn.neural_network.MLPClassifier` for a fixed budget of
    ``max_iter`` epochs (its convergence warning is silenced: the budget is the setting);
    ``transform(X)`` returns the hidden activations ``max(0, X W + b)``.

    Parameters
    ----------
    n_hidden : int, default=64
        Width of the hidden layer.
    max_iter : int, default=50
        Training epochs (Adam).
    random_state : int, default=0

    Attributes
    ----------
    network_ : MLPClassifier
        The fitted network.
    """

    def __init__(self, n_hidden: int = 64, max_iter: int = 50, random_state: int = 0) -> None:
        self.n_hidden = n_hidden
        self.max_iter = max_iter
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray) -> HiddenLayerFeatures:
        """Train the network on ``(X, y)``.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
        y : ndarray of shape (n_samples,)

        Returns
        -------
        self
        """
        network = MLPClassifier((self.n_hidden,), max_iter=self.max_iter,
                                random_state=self.random_state)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.network_ = network.fit(X, y)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Hidden activations of ``X``.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_hidden)
        """
        weights, bias = self.network_.coefs_[0], self.network_.intercepts_[0]
        return np.maximum(np.asarray(X, dtype=float) @ weights + bias, 0.0)


@dataclass(frozen=True)
class DigitDomains:
    """Source (MNIST) and target (upscaled scikit-learn digits) in one feature space.

    Attributes
    ----------
    X_source : ndarray of shape (n_source, n_components)
        Standardised features of the MNIST images.
    y_source : ndarray of shape (n_source,)
        Their labels, 0-9.
    X_target : ndarray of shape (1797, n_components)
        Features of the upscaled scikit-learn digits, by the same transformer.
    y_target : ndarray of shape (1797,)
        Their labels (for evaluation only: an adaptation method sees no target label).
    source_images, target_images : ndarray of shape (n, 28, 28), dtype uint8
        The images behind the features (grey levels 0-255).
    features : sklearn.pipeline.Pipeline
        The fitted transformer from flattened images, shape (n, 784) with grey levels 0-255,
        to the features: ``features.transform(images.reshape(len(images), -1))``.

    Examples
    --------
    >>> domains = load_digits_domains("pca", 3, mnist_split="test")
    >>> domains.target_images.shape, domains.target_images.dtype
    ((1797, 28, 28), dtype('uint8'))
    >>> flat = domains.target_images[:2].reshape(2, -1)
    >>> bool(abs(domains.features.transform(flat) - domains.X_target[:2]).max() < 1e-6)
    True
    """

    X_source: np.ndarray
    y_source: np.ndarray
    X_target: np.ndarray
    y_target: np.ndarray
    source_images: np.ndarray
    target_images: np.ndarray
    features: Pipeline


def load_digits_domains(features: str = "mlp", n_components: int | None = None, *,
                        mnist_split: str = "all") -> DigitDomains:
    """MNIST digits and scikit-learn's digits (upscaled to 28 x 28) in a shared feature space.

    The source domain is the bundled MNIST test set (:func:`load_mnist`); the target domain is
    :func:`sklearn.datasets.load_digits` brought to MNIST's framing by :func:`upscale_digits`.
    Both are mapped by one transformer fitted on the source alone, from the flattened pixels
    (scaled to [0, 1]):

    - ``"mlp"``: the hidden layer (64 ReLU units) of a small network trained on the labelled
      source, reduced by a linear discriminant analysis fitted on the source (the usual setting
      of domain adaptation: features of a model trained on the source task);
    - ``"lda"``: a linear discriminant analysis of the source pixels;
    - ``"pca"``: a PCA of the source pixels.

    The features are then standardised with the source's mean and standard deviation. The
    transformer is deterministic (fixed seeds): repeated calls give equal arrays.

    Parameters
    ----------
    features : {"mlp", "lda", "pca"}, default="mlp"
        The source-fitted feature extractor.
    n_components : int, optional
        Feature dimension: at most 9 for ``"mlp"`` and ``"lda"`` (default 9), at most 784 for
        ``"pca"`` (default 20).
    mnist_split : {"all", "train", "test"}, default="all"
        Which bundled MNIST images form the source domain (see :func:`load_mnist`).

    Returns
    -------
    DigitDomains
        Features, labels and images of both domains, and the fitted transformer.

    Raises
    ------
    ValueError
        If ``features``, ``n_components`` or ``mnist_split`` is not one of the allowed values.

    Examples
    --------
    >>> domains = load_digits_domains("pca", 5, mnist_split="test")
    >>> domains.X_source.shape, domains.X_target.shape
    ((2000, 5), (1797, 5))
    >>> sorted(set(domains.y_target.tolist())) == list(range(10))
    True
    """
    if features not in FEATURES:
        raise ValueError(f"features={features!r} is not one of {sorted(FEATURES)}")
    if mnist_split not in SPLITS:
        raise ValueError(f"mnist_split={mnist_split!r} is not one of {sorted(SPLITS)}")
    limit = FRAME * FRAME if features == "pca" else 9
    if n_components is None:
        n_components = FEATURES[features]
    if (isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer))
            or not 1 <= n_components <= limit):
        raise ValueError(f"n_components must be an integer from 1 to {limit} for "
                         f"features={features!r}, got {n_components!r}")
    source_images, source_labels = load_mnist(mnist_split)
    target_images, target_labels = _target_images()
    steps: list[tuple[str, object]] = [("unit", FunctionTransformer(_to_unit))]
    if features == "mlp":
        steps.append(("hidden", HiddenLayerFeatures()))
    steps.append(("reduce", PCA(int(n_components), svd_solver="full") if features == "pca"
                  else LinearDiscriminantAnalysis(n_components=int(n_components))))
    transformer = Pipeline([*steps, ("standardize", StandardScaler())])
    flat_source = source_images.reshape(len(source_images), -1)
    X_source = transformer.fit_transform(flat_source, source_labels)
    X_target = transformer.transform(target_images.reshape(len(target_images), -1))
    return DigitDomains(X_source=X_source, y_source=source_labels.astype(np.int64),
                        X_target=X_target, y_target=target_labels.astype(np.int64),
                        source_images=source_images, target_images=target_images,
                        features=transformer)
