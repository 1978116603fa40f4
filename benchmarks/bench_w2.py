"""B3: neural W2 maps on the Wasserstein-2 benchmark (Korotin et al.) and on Gaussian pairs.

Usage::

    python benchmarks/bench_w2.py                  # full CPU schedule (D = 2..64, 2000 steps)
    python benchmarks/bench_w2.py --dims 2 4 8     # a subset of dimensions
    python benchmarks/bench_w2.py --quick          # smoke test, about 2 minutes
    python benchmarks/bench_w2.py --device cuda --steps 250000   # the papers' schedule on a GPU
    python benchmarks/bench_w2.py --merge results/bench_w2_a.json results/bench_w2_b.json

Writes ``benchmarks/results/bench_w2[_suffix].{json,md}`` and prints the table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness import w2
from harness.common import write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke-test run")
    parser.add_argument("--dims", type=int, nargs="*", default=[2, 4, 8, 16, 32, 64],
                        help="dimensions of the W2 benchmark (none: Gaussian rows only)")
    parser.add_argument("--gaussian-dims", type=int, nargs="*", default=None)
    parser.add_argument("--steps", type=int, default=2000, help="training steps per method")
    parser.add_argument("--gaussian-steps", type=int, default=1000,
                        help="training steps of the Gaussian rows")
    parser.add_argument("--methods", nargs="+", default=None,
                        help="row indices of harness.w2.METHODS (default: all)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--suffix", default="", help="appended to the results file name")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--merge", type=Path, nargs="+", default=None,
                        help="merge the JSON results of partial runs into bench_w2.{json,md}")
    args = parser.parse_args()
    if args.merge:
        payload = w2.merge([json.loads(path.read_text()) for path in args.merge])
        write_results("bench_w2" + args.suffix, payload, payload["table"], args.out)
        print(payload["table"])
        return
    if args.quick:
        payload = w2.run(**w2.QUICK, seed=args.seed, device=args.device)
    else:
        gaussian_dims = args.gaussian_dims if args.gaussian_dims is not None else args.dims
        methods = [w2.METHODS[int(k)] for k in args.methods] if args.methods else None
        payload = w2.run(tuple(args.dims), steps=args.steps, gaussian_dims=tuple(gaussian_dims),
                         gaussian_steps=args.gaussian_steps, methods=methods, seed=args.seed,
                         device=args.device)
    name = "bench_w2" + ("_quick" if args.quick else "") + args.suffix
    write_results(name, payload, payload["table"], args.out)
    print(payload["table"])


if __name__ == "__main__":
    main()
