"""The ``dp_ros`` command line: ``dp_ros <command> ...``."""
from __future__ import annotations

import argparse
import logging
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dp_ros", description="Diffusion Policy for ROS 2 arms.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", required=True)

    bench = sub.add_parser("bench", help="benchmarks that print their figures")
    bench_sub = bench.add_subparsers(dest="bench", required=True)
    from dp_ros.bench import model_bench

    p = bench_sub.add_parser("model", help="parameter counts and PyTorch chunk latency")
    model_bench.add_arguments(p)
    p.set_defaults(func=model_bench.run)

    from dp_ros.bench import node_bench

    p = bench_sub.add_parser("node", help="the policy node's overhead under 2x640x480@30Hz + 500 Hz joints")
    node_bench.add_arguments(p)
    p.set_defaults(func=node_bench.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
