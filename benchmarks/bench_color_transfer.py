"""B4: Meta ICNN colour transfer on held-out images, and the Gaussian family.

Usage::

    python benchmarks/bench_color_transfer.py            # CPU schedule (about 20 minutes)
    python benchmarks/bench_color_transfer.py --quick    # smoke test, about a minute
    python benchmarks/bench_color_transfer.py --encoder set --suffix _set

Writes ``benchmarks/results/bench_color_transfer[_suffix].{json,md}`` and prints the tables.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness import color_transfer
from harness.common import write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke-test run")
    parser.add_argument("--steps", type=int, default=3000, help="meta-training steps")
    parser.add_argument("--test-pairs", type=int, default=12,
                        help="held-out ordered pairs of test images")
    parser.add_argument("--refine-steps", type=int, nargs=2, default=[1000, 2000])
    parser.add_argument("--encoder", default="auto", choices=["auto", "set", "image"])
    parser.add_argument("--gaussian-dims", type=int, nargs="*", default=[2, 3])
    parser.add_argument("--gaussian-steps", type=int, default=3000)
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--suffix", default="", help="appended to the results file name")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if args.quick:
        payload = color_transfer.run(**color_transfer.QUICK, seed=args.seed, device=args.device,
                                     encoder=args.encoder)
    else:
        payload = color_transfer.run(
            args.steps, args.test_pairs, tuple(args.refine_steps),
            gaussian_dims=tuple(args.gaussian_dims), gaussian_steps=args.gaussian_steps,
            seed=args.seed, device=args.device, encoder=args.encoder)
    name = "bench_color_transfer" + ("_quick" if args.quick else "") + args.suffix
    write_results(name, payload, payload["table"], args.out)
    print(payload["table"])


if __name__ == "__main__":
    main()
