"""
Meta OT across processes and machines with torchrun
===================================================

One script for one process, several processes on one machine, or several machines: the same
``fit`` runs under ``torchrun``, which starts the processes; skmetaot wraps the network in
PyTorch's DistributedDataParallel (which averages the gradients), each process draws its own
random pairs of MNIST images from a :class:`~skmetaot.sampling.PairSampler` (8,000 images
stand for 64 million pairs; no pair is stored), and rank 0 alone writes the checkpoint and the
fitted model, which is the same on every rank.

One process::

    python examples/distributed_meta_training.py --steps 500

Two processes on this machine (CPU, ``gloo``; on GPUs, one process per GPU with ``nccl``)::

    torchrun --standalone --nproc_per_node=2 examples/distributed_meta_training.py --steps 500

Two machines with 4 GPUs each (run on both; ``--node_rank`` 0 on the first, 1 on the
second; ``host0`` is the first machine's address, reachable from the second)::

    torchrun --nnodes=2 --node_rank=0 --nproc_per_node=4 --master_addr=host0 \\
        --master_port=29500 examples/distributed_meta_training.py --device cuda --steps 5000

The batch size is per process: with K processes each step trains on K x ``--batch-size``
pairs. A checkpoint path on a file system all machines share lets a killed run resume.
"""

import argparse
import pickle

import numpy as np

from skmetaot import MetaSinkhornTransport, distributed
from skmetaot.datasets import load_mnist, make_mnist_pairs
from skmetaot.sampling import PairSampler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument("--steps", type=int, default=500, help="training steps")
    parser.add_argument("--batch-size", type=int, default=64, help="pairs per step and process")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--checkpoint", default=None, help="checkpoint path (resumes if present)")
    parser.add_argument("--out", default="meta_sinkhorn_mnist.pkl", help="where rank 0 saves")
    args = parser.parse_args()

    distributed.init_from_environment()  # no-op when not launched by torchrun
    images, _ = load_mnist("train")  # MNIST test images 0-7999: 64 million ordered pairs
    sampler = PairSampler(images, batch_size=args.batch_size, random_state=0)
    est = MetaSinkhornTransport(hidden_layer_sizes=(512, 512), max_iter=args.steps,
                                batch_size=args.batch_size, device=args.device,
                                random_state=0, verbose=1, checkpoint_path=args.checkpoint,
                                checkpoint_every=100)
    est.fit(sampler)

    if distributed.is_main_process():
        held_out = make_mnist_pairs(64, split="test", random_state=1)  # images 8000-9999
        iterations = {init: np.median([r.log["niter"] for r in
                                       est.refine(held_out, tol=1e-3, init=init)])
                      for init in ("zeros", "meta")}
        print(f"{distributed.world_size()} process(es), {est.n_iter_} steps: median Sinkhorn "
              f"iterations to 1e-3 on 64 held-out pairs: zeros {iterations['zeros']:.0f}, "
              f"meta {iterations['meta']:.0f}")
        with open(args.out, "wb") as handle:
            pickle.dump(est, handle)


if __name__ == "__main__":
    main()
