"""`python -m detcore <command>` — the command line (docs/architecture.md, "Command line").

Each area registers its own sub-commands through ``register(subparsers)`` in
``detcore/commands/{data,train,evaluate,predict,export,compare}.py``; those modules keep heavy imports (torch)
inside their handlers so ``--help`` stays fast. Results go to stdout, progress to stderr.
A DetcoreError becomes one line ``error: <file>: <problem>`` on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from detcore.commands import compare, data, evaluate, export, predict, train
from detcore.errors import DetcoreError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m detcore", description="detboard engine: data, training, evaluation, prediction")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for area in (data, train, evaluate, predict, export, compare):
        area.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except DetcoreError as e:
        print(e.one_line(), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
