"""Two versions measured side by side, in turns: what ``cpu_probe --against`` and ``bench
--against`` share.

On a shared machine one run differs from the next by up to 1.5x, which hides any change
smaller than that. Measured in turns (every round runs a case on both sides, in an order that
swaps every round), the machine's moods move both figures of a round alike; the medians of the
rounds, and how many rounds went one way, are what such a comparison says.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
from collections.abc import Sequence
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class Paired:
    """One figure of one case, measured on both sides over the same rounds."""

    then: float  # median of the other side ("against")
    now: float  # median of this side
    lower: int  # rounds in which this side's figure was the lower one
    rounds: int

    @property
    def change(self) -> float:
        """This side against the other, in percent (negative: lower here)."""
        return 100 * (self.now - self.then) / self.then if self.then else 0.0


def paired(then: Sequence[float], now: Sequence[float]) -> Paired:
    """The medians of two sides' figures, round by round (``then[i]`` beside ``now[i]``)."""
    if len(then) != len(now) or not then:
        raise ValueError("a paired figure needs the same rounds, at least one, on both sides")
    return Paired(
        then=statistics.median(then),
        now=statistics.median(now),
        lower=sum(n < t for t, n in zip(then, now, strict=True)),
        rounds=len(now),
    )


def order_of_round(round_number: int) -> tuple[str, str]:
    """Which side goes first in a round: swapped every round, so neither always follows the
    other (a case warms what comes after it)."""
    return ("against", "this") if round_number % 2 == 0 else ("this", "against")


def other_side_env(tree: Path | None, assignments: Sequence[str]) -> dict[str, str]:
    """The environment of the other side's store: another source tree first on its
    PYTHONPATH (``--against DIR``), and ``NAME=VALUE`` settings (``--against-env``)."""
    env: dict[str, str] = {}
    if tree is not None:
        env["PYTHONPATH"] = f"{tree / 'server'}{os.pathsep}{tree}"
    for assignment in assignments:
        name, sep, value = assignment.partition("=")
        if not sep or not name:
            raise ValueError(f"{assignment!r} is not NAME=VALUE")
        env[name] = value
    return env


def describe_other_side(tree: Path | None, assignments: Sequence[str]) -> str:
    """The other side as a table's header names it."""
    code = str(tree.resolve()) if tree is not None else "this code"
    return f"{code} with {' '.join(assignments)}" if assignments else code


def add_comparison_arguments(parser: argparse.ArgumentParser, *, rounds: int) -> None:
    """``--against DIR``, ``--against-env NAME=VALUE`` (repeatable) and ``--rounds``."""
    parser.add_argument(
        "--against",
        type=Path,
        help="a source tree of other code (`git archive REV server loadtests | tar -x -C"
        " DIR`), measured in turns beside this one: a before/after that a shared machine"
        " does not spoil",
    )
    parser.add_argument(
        "--against-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting of the other side's store (repeatable): this code against itself"
        " with another setting, or with --against, the other code with it",
    )
    parser.add_argument(
        "--rounds", type=int, default=rounds, help="with --against(-env): rounds per case"
    )


def comparison_env(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> dict[str, str] | None:
    """The other side's store environment when the arguments ask for a comparison, else None;
    a directory without the server, or a setting that is not NAME=VALUE, is refused here,
    before anything starts."""
    if args.against is None and not args.against_env:
        return None
    if args.against is not None and not (args.against / "server" / "shopkeep_server").is_dir():
        parser.error(f"{args.against} has no server/shopkeep_server")
    try:
        return other_side_env(args.against, args.against_env)
    except ValueError as exc:
        parser.error(str(exc))
