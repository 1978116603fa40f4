"""B1 (cold part): skmetaot's Sinkhorn against OTT-JAX, POT and GeomLoss on MNIST test pairs.

Usage::

    python benchmarks/bench_sinkhorn.py            # full: 64 pairs one by one, 128 in batches,
                                                   # float32 and float64 (~10 min, one thread)
    python benchmarks/bench_sinkhorn.py --quick    # float32, 16 pairs one by one (< 2 min)
    python benchmarks/bench_sinkhorn.py --smoke    # a few pairs, seconds (the GPU check's test)
    python benchmarks/bench_sinkhorn.py --peers pot ott   # only these peers (none: --peers)

Peers that are not installed (``pip install -e ".[peers]"``) are named in the notes and
skipped. See ``benchmarks/_sinkhorn_peers.py`` for the stopping rule each solver gets. Writes
``benchmarks/results/bench_sinkhorn[_quick|_smoke][_cuda].{json,md}`` and prints the table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import _peers  # noqa: F401  (first: pins XLA to one thread before jax loads)
import _sinkhorn_peers
import torch
from harness.common import write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="under 2 minutes")
    size.add_argument("--smoke", action="store_true", help="a few pairs, a few seconds")
    parser.add_argument("--device", default="cpu", help="our torch device, e.g. cuda")
    parser.add_argument("--peers", nargs="*", default=None,
                        choices=list(_peers.PEER_MODULES),
                        help="peers to measure (default: all installed; none: --peers)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    torch.set_num_threads(1)
    mode = "quick" if args.quick else "smoke" if args.smoke else "full"
    payload = _sinkhorn_peers.run(mode, seed=args.seed, device=args.device, peers=args.peers)
    name = "bench_sinkhorn" + ("" if mode == "full" else f"_{mode}")
    if args.device != "cpu":
        name += f"_{args.device.split(':')[0]}"
    write_results(name, payload, payload["table"], args.out)
    print(payload["table"])


if __name__ == "__main__":
    main()
