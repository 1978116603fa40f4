"""B1 and B2: Meta OT initialisation vs zeros and Gaussian on MNIST and on the sphere.

Usage::

    python benchmarks/bench_meta_sinkhorn.py           # CPU: MNIST ~15 min, sphere ~45 min
    python benchmarks/bench_meta_sinkhorn.py --quick   # smoke test
    python benchmarks/bench_meta_sinkhorn.py --curve --seconds 3600 --state-dir runs
        # learning curves (error after one update, iterations) at checkpoints of training;
        # the trained models stay in runs/ and the tables above can evaluate them:
    python benchmarks/bench_meta_sinkhorn.py --problems sphere --model runs/curve_sphere_default.pkl
    python benchmarks/bench_meta_sinkhorn.py --curve --networks --problems mnist --seconds 360
        # the MLP and the convolutional network (model="conv") at equal training seconds
    python benchmarks/bench_meta_sinkhorn.py --problems mnist --budget-steps 18000 --state-dir runs
        # one model trained with a full cosine schedule (what a user with a budget does);
        # then --problems mnist --model runs/budget_mnist.pkl --final measures it
    python benchmarks/bench_meta_sinkhorn.py --peers   # MNIST: ours vs OTT-JAX's MetaInitializer,
        # each trained 300 s on the same fresh pairs (--train-seconds; --quick: 40 s; --smoke)

Writes ``benchmarks/results/bench_meta_sinkhorn.{json,md}`` (``--problems mnist`` alone:
``bench_meta_sinkhorn_mnist``; ``sphere`` alone: ``bench_meta_sinkhorn_sphere``) and prints the
tables; ``--peers`` writes ``bench_meta_peers[_quick|_smoke][_cuda].{json,md}``.
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

from harness import meta_curves, meta_sinkhorn
from harness.common import write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke-test run")
    parser.add_argument("--smoke", action="store_true",
                        help="with --peers: a tiny model, seconds of training")
    parser.add_argument("--device", default="cpu", help="torch device of our estimators")
    parser.add_argument("--peers", action="store_true",
                        help="ours against OTT-JAX's MetaInitializer (MNIST, batch 1)")
    parser.add_argument("--no-ott", action="store_true",
                        help="with --peers: ours only (prediction, refinement, cold solve)")
    parser.add_argument("--train-seconds", type=float, default=None,
                        help="with --peers: training budget of each model (default: 300, "
                             "--quick 40, --smoke 2)")
    parser.add_argument("--problems", nargs="+", default=["mnist", "sphere"],
                        choices=["mnist", "sphere"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--curve", action="store_true",
                        help="learning curves at checkpoints of training instead of the tables")
    parser.add_argument("--seconds", type=float, default=3600.0,
                        help="training seconds per curve (default: %(default)s)")
    parser.add_argument("--state-dir", type=Path, default=None,
                        help="where curves save their state (resumed when present) and models")
    parser.add_argument("--networks", action="store_true",
                        help="with --curve: the MLP (3 x 512) and model='conv' (GridUNet) "
                             "side by side, written as bench_meta_networks_<problems>")
    parser.add_argument("--only", nargs="+", default=None,
                        choices=sorted(meta_curves.NETWORKS),
                        help="with --networks: these networks only")
    parser.add_argument("--final", action="store_true",
                        help="with --model: iterations and time to 1e-2 and 1e-3 of all held-out "
                             "pairs solved together (cheaper than the batch-1 tables)")
    parser.add_argument("--cooldown", type=int, default=0,
                        help="with --model: first train this many more steps on fresh pairs at "
                             "the end of a cosine schedule (about 10%% of the learning rate)")
    parser.add_argument("--budget-steps", type=int, default=None,
                        help="train one model per problem for this many fresh-pair steps with "
                             "a full cosine schedule, saved (and resumed) in --state-dir as "
                             "budget_<problem>.pkl for --model ... --final")
    parser.add_argument("--model", type=Path, default=None,
                        help="a curve's saved state: evaluate its model instead of training one "
                             "(one problem at a time)")
    parser.add_argument("--checkpoints", type=Path, nargs="+", default=None,
                        help="copies of a training run's checkpoint file: the error after one "
                             "update of each, with the reference's points (one problem)")
    args = parser.parse_args()
    if args.peers:
        import _meta_peers  # imports _peers first, which pins XLA to one thread
        import torch

        torch.set_num_threads(1)
        mode = "smoke" if args.smoke else "quick" if args.quick else "full"
        payload = _meta_peers.run(mode, seed=args.seed, device=args.device, ott=not args.no_ott,
                                  train_seconds=args.train_seconds)
        name = "bench_meta_peers" + ("" if mode == "full" else f"_{mode}")
        name += "" if args.device == "cpu" else f"_{args.device.split(':')[0]}"
        write_results(name, payload, payload["table"], args.out)
        print(payload["table"])
        return
    if args.smoke:
        parser.error("--smoke goes with --peers")
    if args.curve:
        suffix = "_".join(args.problems + (args.only or [])) + ("_quick" if args.quick else "")
        kind = "networks" if args.networks else "curves"
        payload = meta_curves.run(tuple(args.problems), seconds=args.seconds, quick=args.quick,
                                  seed=args.seed, state_dir=args.state_dir,
                                  configs=({k: v for k, v in meta_curves.NETWORKS.items()
                                            if args.only is None or k in args.only}
                                           if args.networks else None),
                                  figure=args.out / f"meta_{kind}_{suffix}.png")
        payload.pop("estimators")
        write_results(f"bench_meta_{kind}_{suffix}", payload, payload["table"], args.out)
        print(payload["table"])
        return
    if args.checkpoints is not None:
        from harness.common import machine_info, markdown_table

        if len(args.problems) != 1:
            parser.error("--checkpoints evaluates one problem: give --problems mnist or sphere")
        name = args.problems[0]
        rows, zeros = meta_curves.checkpoint_curve(name, args.checkpoints, seed=args.seed,
                                                   quick=args.quick)
        reference = [{"problem": name, "label": "Meta OT reference (GPU, paper)", "step": step,
                      "pairs_seen": step * 128, "err_mean": f"{low}-{high}"}
                     for step, low, high in meta_curves.REFERENCE_CURVES[name]]
        zeros_row = {"problem": name, "label": "zeros (cold start)", **zeros}
        table = markdown_table(rows + [zeros_row] + reference, meta_curves.CURVE_COLUMNS)
        curve = {"problem": name, "label": "budget run", "zeros": zeros,
                 "rows": [{**r, "train_seconds": float("nan")} for r in rows]}
        meta_curves.plot_curves([curve], args.out / f"meta_checkpoints_{name}.png")
        payload = {"benchmark": "meta checkpoints (bench_meta_sinkhorn --checkpoints)",
                   "seed": args.seed, "machine": machine_info(), "rows": rows, "table": table}
        write_results(f"bench_meta_checkpoints_{name}", payload, table, args.out)
        print(table)
        return
    if args.budget_steps is not None:
        import torch

        state_dir = args.state_dir or Path("runs")
        state_dir.mkdir(parents=True, exist_ok=True)
        for name in args.problems:
            est = meta_curves.train_budget(name, args.budget_steps, seed=args.seed,
                                           quick=args.quick,
                                           checkpoint_path=state_dir / f"budget_{name}.ckpt")
            with open(state_dir / f"budget_{name}.pkl", "wb") as handle:
                pickle.dump((est, []), handle)
            print(f"{name}: {est.n_iter_} steps in {est.history_['seconds']:.0f} s "
                  f"({torch.get_num_threads()} torch threads)")
        return
    model = None
    if args.model is not None:
        if len(args.problems) != 1:
            parser.error("--model evaluates one problem: give --problems mnist or sphere")
        with open(args.model, "rb") as handle:
            model = pickle.load(handle)[0]
        if args.cooldown:
            model = meta_curves.cool_down(model, args.problems[0], args.cooldown, seed=args.seed)
            with open(args.model.with_name(args.model.stem + "_cooled.pkl"), "wb") as handle:
                pickle.dump((model, []), handle)
        if args.final:
            from harness.common import machine_info, markdown_table

            name = args.problems[0]
            _, _, test = meta_curves.problem(name, quick=args.quick, seed=args.seed)
            # The sphere's cold solves take thousands of iterations: zeros and meta only there.
            inits = ("zeros", "meta") if name == "sphere" else ("zeros", "gaussian", "meta")
            rows = meta_curves.final_table(model, test, name, inits=inits)
            table = markdown_table(rows, meta_curves.FINAL_COLUMNS)
            payload = {"benchmark": "meta final (bench_meta_sinkhorn --final)", "seed": args.seed,
                       "machine": machine_info(), "rows": rows, "table": table,
                       "model": {"steps": model.n_iter_, "cooldown_steps": args.cooldown,
                                 "train_seconds": model.history_["seconds"],
                                 **{k: str(v) for k, v in model.get_params().items()}}}
            write_results(f"bench_meta_final_{name}", payload, table, args.out)
            print(table)
            return
    payload = meta_sinkhorn.run(args.quick, seed=args.seed, problems=tuple(args.problems),
                                model=model, device=args.device)
    name = "bench_meta_sinkhorn"
    if sorted(args.problems) != ["mnist", "sphere"]:
        name += "_" + "_".join(args.problems)  # a partial run keeps the full run's file
    name += "_quick" if args.quick else ""
    name += "" if args.device == "cpu" else f"_{args.device.split(':')[0]}"
    write_results(name, payload, payload["table"], args.out)
    print(payload["table"])


if __name__ == "__main__":
    main()
