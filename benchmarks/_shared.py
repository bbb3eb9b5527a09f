"""Pieces the benchmark scripts share (imported as ``_shared``: a script's own folder is on ``sys.path``).

Integer options from one table, a potential saved and served as a forward-only map (the issue-18
diagnostics), and the reports of the scripts that run an application pipeline
(``domain_adaptation.py``, ``latent.py``): the JSON report and a Markdown results file that records the
command, the machine and the date.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

#: the machine the results run on; what else ran beside a run is for its BENCHMARKS.md entry to say
MACHINE = f"{os.cpu_count()}-core CPU"


#: how ``shifted_pair.py`` and ``fit_command.py --move`` move a pair's samples: ``x' = a x + b``, ``y' = c y + d``
#: (scalars ``a c > 0`` keep the OT map, read back in the pair's coordinates, unchanged)
MOVE_SCALES = (2.5, 0.4)


def move_offsets(dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The offsets ``b`` (source) and ``d`` (target) of the move, up to 10 per coordinate."""
    return torch.linspace(-5.0, 10.0, dim), torch.linspace(4.0, -3.0, dim)


def add_int_options(ap: argparse.ArgumentParser, **defaults: int) -> None:
    """One integer option per keyword, in order: ``name_with_underscores=N`` is ``--name-with-underscores N``."""
    for name, default in defaults.items():
        ap.add_argument(f"--{name.replace('_', '-')}", type=int, default=default)


def write_reports(args: argparse.Namespace, argv: list[str] | None, script: str, title: str, report: dict,
                  body: str) -> None:
    """``--json``: ``report`` as JSON; ``--out``: a Markdown file headed ``title``, with the command line of
    ``benchmarks/<script>``, the machine (``--threads`` torch threads) and the date, then ``body``."""
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=float))
    if args.out:
        cmd = f"python benchmarks/{script} " + " ".join(sys.argv[1:] if argv is None else argv)
        Path(args.out).write_text(
            f"# {title}\n\n"
            f"Command: `{cmd}`  \nMachine: {MACHINE}, "
            f"torch {torch.__version__}, {args.threads} torch thread(s), Python {platform.python_version()}  \n"
            f"Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC\n\n" + body
        )


class ForwardOnly:
    """A potential as a map for :meth:`~w2gn.testbeds.pairs.BenchmarkPair.evaluate`: its gradient forward, the
    identity as the (unscored) inverse."""

    def __init__(self, net) -> None:
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.map(x)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y

    def save(self, path: str | os.PathLike) -> None:
        """The potential's architecture and weights, for :meth:`load`."""
        from w2gn.networks import potential_spec

        torch.save({"spec": potential_spec(self.net), "state": self.net.state_dict()}, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> ForwardOnly:
        from w2gn.networks import build_potential

        saved = torch.load(path, weights_only=True)
        net = build_potential(saved["spec"])
        net.load_state_dict(saved["state"])
        return cls(net.eval())
