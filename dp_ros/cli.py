"""The ``dp_ros`` command line: ``dp_ros <command> ...``."""
from __future__ import annotations

import argparse
import logging
import os
import sys


# group -> (help, [(command, help, module)]). A module has ``add_arguments(parser)`` and
# ``run(args)``; only the module of the command being run is imported, so a command
# does not need what the others import (ROS, zarr, rosbags) and starts quickly.
COMMANDS = {
    "bench": ("benchmarks that print their figures", [
        ("model", "parameter counts and PyTorch chunk latency", "dp_ros.bench.model_bench"),
        ("node", "the policy node's overhead under 2x640x480@30Hz + 500 Hz joints", "dp_ros.bench.node_bench"),
        ("backends", "chunk latency and parity of every available backend", "dp_ros.bench.backend_bench"),
        ("recorder", "dropped ticks, CPU and bytes/s of the recorder under camera load",
         "dp_ros.bench.recorder_bench"),
        ("train", "training throughput and data-loader headroom", "dp_ros.bench.train_bench"),
    ]),
    "dataset": ("inspect, view, import and export demonstration datasets", [
        ("info", "episodes, lengths, rates and statistics of a dataset", "dp_ros.dataset.cli:info"),
        ("view", "a PNG contact sheet (or MP4) of an episode with joint plots", "dp_ros.dataset.cli:view"),
        ("import-bag", "import a rosbag2 recording (sqlite3 or MCAP) as an episode", "dp_ros.dataset.bag_import"),
        ("export-lerobot", "write a dataset as a LeRobot v3.0 dataset (parquet + videos)",
         "dp_ros.interop.lerobot_dataset:export_lerobot"),
        ("import-lerobot", "convert a LeRobot v3.0 dataset into a dp_ros dataset",
         "dp_ros.interop.lerobot_dataset:import_lerobot"),
    ]),
    "import": ("import policies trained with other libraries (docs/interop.md)", [
        ("lerobot", "a LeRobot diffusion policy directory -> a dp_ros checkpoint", "dp_ros.interop.cli:lerobot"),
        ("diffusion-policy", "a reference diffusion_policy .ckpt -> a dp_ros checkpoint (nothing in it runs)",
         "dp_ros.interop.cli:diffusion_policy"),
    ]),
    "sim": ("the simulated arm", [
        ("record", "record scripted demonstrations through the recorder", "dp_ros.sim.expert_node"),
        ("eval", "run a policy closed-loop in the simulator: success rate and goals chosen",
         "dp_ros.sim.evaluate"),
        ("replay", "replay a recorded episode through the policy node on the simulated arm: timing check",
         "dp_ros.sim.replay:sim"),
        ("seams", "each seam mode at each simulated inference delay: table and plot", "dp_ros.sim.seam_bench"),
        ("sweep", "the lockstep evaluation over a grid of parameters, delays and models: CSV, table, plots",
         "dp_ros.sim.sweep"),
    ]),
}


def _command_functions(target: str):
    """``module`` -> (add_arguments, run); ``module:name`` -> (add_<name>_arguments, run_<name>)."""
    import importlib

    module, _, name = target.partition(":")
    mod = importlib.import_module(module)
    if name:
        return getattr(mod, f"add_{name}_arguments"), getattr(mod, f"run_{name}")
    return mod.add_arguments, mod.run


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dp_ros", description="Diffusion Policy for ROS 2 arms.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", required=True)

    words = [a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")][:2]
    for group, (group_help, commands) in COMMANDS.items():
        group_sub = sub.add_parser(group, help=group_help).add_subparsers(dest=group, required=True)
        for name, help_text, target in commands:
            p = group_sub.add_parser(name, help=help_text)
            if words == [group, name]:
                add_arguments, run = _command_functions(target)
                add_arguments(p)
                p.set_defaults(func=run)

    p = sub.add_parser("replay", help="replay a recorded episode through the policy node on your arm: timing check")
    if words[:1] == ["replay"]:
        add_arguments, run = _command_functions("dp_ros.sim.replay:real")
        add_arguments(p)
        p.set_defaults(func=run)

    p = sub.add_parser("train", help="train a policy on a recorded dataset")
    p.add_argument("--dataset", required=True, help="dataset directory (zarr)")
    p.add_argument("--config", default=None, help="YAML with model and training sections (config/train.yaml)")
    p.add_argument("--out", required=True, help="run directory, e.g. runs/NAME")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)

    p = sub.add_parser("export", help="export a checkpoint's encoder and denoiser to ONNX")
    p.add_argument("checkpoint")
    p.add_argument("--out", default=None, help="output directory (default: the checkpoint's build directory)")
    p.add_argument("--force", action="store_true", help="export even when the existing files match")
    p.set_defaults(func=_export)

    p = sub.add_parser("compile", help="build (or verify cached) TensorRT engines for a checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("--precision", choices=["fp16", "fp32"], default="fp16")
    p.add_argument("--device", default="cuda")
    p.set_defaults(func=_compile)
    return parser


def _train(args) -> int:
    from dp_ros.dataset.store import DatasetError
    from dp_ros.training.trainer import train

    try:
        final = train(args.dataset, args.out, args.config, resume=args.resume, progress=not args.no_progress)
    except (DatasetError, ValueError, FileExistsError, FileNotFoundError) as exc:
        print(f"dp_ros train: {exc}", file=sys.stderr)
        return 2
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 writes and reports
        print(f"model: {final}")
    return 0


def _export(args) -> int:
    from dp_ros.runtime.export import export_onnx

    r = export_onnx(args.checkpoint, args.out, force=args.force)
    print(f"{'reused' if r.reused else 'exported'} in {r.seconds:.1f} s (checkpoint {r.checkpoint_hash[:16]}):")
    print(f"  {r.encoder}\n  {r.denoiser}")
    return 0


def _compile(args) -> int:
    import torch

    from dp_ros.model.checkpoint import read_config
    from dp_ros.runtime.tensorrt_backend import prepare_engines, unavailable

    why = unavailable(args.device)
    if why:
        print(f"dp_ros compile: TensorRT is unavailable here: {why}", file=sys.stderr)
        return 2
    try:
        cfg = read_config(args.checkpoint)[0]
        engines = prepare_engines(cfg, args.checkpoint, torch.device(args.device), args.precision)
    except (RuntimeError, ValueError) as exc:  # a bad checkpoint (CheckpointError), a failed build
        print(f"dp_ros compile: {exc}", file=sys.stderr)
        return 1
    for e in engines:
        print(f"{e.part}: {'reused' if e.reused else 'built'} {e.path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser(argv).parse_args(argv)
    # Our own messages at INFO (DEBUG with -v); libraries (the ONNX exporter narrates a
    # lot) only from WARNING up.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("dp_ros").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
