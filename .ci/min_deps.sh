#!/usr/bin/env bash
# Min-deps job: install the minimum versions that pyproject.toml declares into a fresh venv, then
# run a smoke test and the test suite there. .ci/run calls it after the main tests (it downloads
# about 2 GB, torch 2.0 with its CUDA libraries, and takes 10-20 minutes); by hand:
#   bash .ci/min_deps.sh [VENV_DIR]
# The minimums are read from pyproject.toml, so the file and the job cannot disagree; the test
# extras are installed under the same pins (a constraints file), so they cannot lift numpy.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-/tmp/skmetaot-min-deps}"
python3 -m venv --clear "$venv"
# shellcheck disable=SC1091
source "$venv/bin/activate"
pins=$(python - <<'PY'
import re, tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
print(" ".join(re.sub(r">=", "==", d) for d in deps))
PY
)
echo "+ pip install $pins"
python -m pip install -q --upgrade pip
# Wheels only: what users get. A failed install is retried twice (it is a 2 GB download).
for attempt in 1 2 3; do
  python -m pip install -q --only-binary :all: $pins && break
  [ "$attempt" = 3 ] && exit 1
  echo "pip install failed (attempt $attempt); retrying" >&2
done
printf '%s\n' $pins > "$venv/pins.txt"
python -m pip install -q --no-deps --no-build-isolation -e . 2>/dev/null || python -m pip install -q --no-deps -e .
python -m pip list 2>/dev/null | grep -iE "^(numpy|scipy|scikit-learn|torch|pot|joblib|tqdm) "
OMP_NUM_THREADS=1 python - <<'PY'
import numpy as np
import ot
import torch

torch.set_num_threads(1)
import skmetaot
import skmetaot.pot as ot_fast
from skmetaot import MetaSinkhornTransport, NeuralW2Transport, sinkhorn
from skmetaot.da import SinkhornTransport, W2MapTransport
from skmetaot.datasets import make_mnist_pairs

rng = np.random.default_rng(0)
a, b = np.full(20, 1 / 20), np.full(30, 1 / 30)
M = ot.dist(rng.random((20, 2)), rng.random((30, 2)))
assert np.allclose(ot_fast.sinkhorn(a, b, M, 0.1), ot.sinkhorn(a, b, M, 0.1), atol=1e-10)
assert bool(sinkhorn(a, b, M, epsilon=0.1, tol=1e-6).converged)
pairs = make_mnist_pairs(16, random_state=0)
meta = MetaSinkhornTransport(hidden_layer_sizes=(16,), max_iter=3, batch_size=8).fit(pairs)
assert meta.predict_potentials(pairs)[0].shape == (16, 784)
xs, xt = rng.normal(size=(128, 2)), rng.normal(size=(128, 2)) + 1
w2 = NeuralW2Transport(max_iter=5, pretrain_iter=5, batch_size=32).fit((xs, xt))
assert w2.transform(xs[:3]).shape == (3, 2)
da = SinkhornTransport(reg_e=0.5).fit(Xs=xs, Xt=xt)
assert da.transform(Xs=xs).shape == (128, 2)
W2MapTransport(max_iter=5, pretrain_iter=5, batch_size=32).fit(Xs=xs, Xt=xt)
print(f"min-deps smoke test passed (skmetaot {skmetaot.__version__})")
PY
# The test suite at the minimum versions (the smoke test above passed on torch 2.0 while every
# grid solve failed there; only the tests found it).
python -m pip install -q --only-binary :all: -c "$venv/pins.txt" \
  "pytest>=7" "hypothesis>=6.80" "matplotlib>=3.6" "pandas>=1.5"
python -m pip list 2>/dev/null | grep -iE "^(numpy|matplotlib|pandas) "
OMP_NUM_THREADS=1 python -m pytest -q -p no:cacheprovider tests
