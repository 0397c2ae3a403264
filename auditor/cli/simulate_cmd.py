"""`auditor simulate`: synthetic JSON Lines events on stdout (or --out)."""

from __future__ import annotations

import argparse
import sys

from auditor.simulate.generator import Simulator


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("simulate", help="write a realistic synthetic event stream (JSON Lines)")
    p.add_argument("--accounts", type=int, default=2000, help="accounts to simulate (2000)")
    p.add_argument("--months", type=int, default=24, help="months of history (24)")
    p.add_argument("--seed", type=int, default=7, help="random seed; same seed, same stream (7)")
    p.add_argument("--out", "-o", default="-", help="file to write, - for stdout (default)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    sim = Simulator(accounts=args.accounts, months=args.months, seed=args.seed)
    out = sys.stdout if args.out == "-" else open(args.out, "w", encoding="utf-8")  # noqa: SIM115
    try:
        buffer: list[str] = []
        for line in sim.lines():
            buffer.append(line)
            if len(buffer) >= 4096:
                out.write("\n".join(buffer) + "\n")
                buffer.clear()
        if buffer:
            out.write("\n".join(buffer) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    return 0
