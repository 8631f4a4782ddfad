"""The `lanai` command: run nodes, call services, manage models."""

from __future__ import annotations

import argparse
import logging
import sys

from lanai.mesh import __version__
from lanai.mesh.cli import assist, batch, cluster, connect, generate, mesh, models, say, serve, transcribe, vision
from lanai.services.core.privacy import keep_on_premises


def build_parser() -> argparse.ArgumentParser:
    """The whole `lanai` command line (deployment tests check compose and Helm commands with it)."""
    parser = argparse.ArgumentParser(prog="lanai", description="A private inference cloud on your LAN.")
    parser.add_argument("--version", action="version", version=f"lanai {__version__}")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve.add_parsers(commands)
    transcribe.add_parser(commands)
    vision.add_parser(commands)
    generate.add_parsers(commands)
    say.add_parsers(commands)
    assist.add_parser(commands)
    batch.add_parser(commands)
    models.add_parser(commands)
    mesh.add_parser(commands)
    cluster.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    keep_on_premises()  # before anything loads a library that would phone home
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.run(args))
    except connect.ConnectError as exc:
        print(f"lanai {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
