"""
Supply and demand on the sphere: converged vs predicted transport maps
======================================================================

The paper's Figure 5. 100 supply points uniform over land send mass to 10,000 demand points drawn
by city population (GeoNames); each instance redraws the weights. A Meta OT model predicts the dual
potential of a new instance; the arrows show the entropic map of each supply point (renormalised
to the sphere) from converged Sinkhorn and from the prediction alone.

The paper's size (10,000 demand points) trains slowly on a CPU with the log-domain dense kernel, so
this example uses 1,000 demand points; pass ``--full`` on a GPU for the paper's size.

Run: ``python examples/plot_sphere_transport.py`` (saves ``sphere_transport.png``).
"""

import sys

import numpy as np
import torch

from skmetaot import MetaSinkhornTransport
from skmetaot.datasets import make_sphere_supply_demand
from skmetaot.plotting import plot_sphere_maps
from skmetaot.solvers.plans import barycentric_map

full = "--full" in sys.argv
size = {} if full else {"n_demand": 1000}
train = make_sphere_supply_demand(2048, random_state=0, dtype="float32", **size)
test = make_sphere_supply_demand(1, random_state=123, dtype="float32", **size)

est = MetaSinkhornTransport(epsilon=1e-3, cost="spherical", hidden_layer_sizes=(512, 512),
                            max_iter=600 if full else 200, batch_size=64 if full else 32,
                            device="auto" if full else "cpu", random_state=0,
                            verbose=1).fit(train)

predicted = est.transform(test)[0]
solved = est.refine(test, tol=1e-3, max_iter=50000, init="meta")[0]
converged = barycentric_map(est._geometry(test).cost_matrix(),
                            torch.as_tensor(solved.potentials[1])[None], test.y,
                            est.epsilon)[0].numpy()
maps = [m / np.linalg.norm(m, axis=1, keepdims=True) for m in (converged, predicted)]
plot_sphere_maps(test.x.numpy(), test.y.numpy(), maps, test.a[0].numpy(),
                 [f"Sinkhorn from the prediction: {solved.status}, {solved.log['niter']} "
                  f"iterations, L1 error {solved.log['err']:.1e}", "Meta OT prediction alone"],
                 path="sphere_transport.png")
print(f"saved sphere_transport.png (transport cost {solved.value_linear:.4f} rad)")
