"""``dcicnn models``: the weights shipped with the package, by the name ``--model`` and ``from_pretrained`` take."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "models",
        help="list the weights shipped with dcicnn (names for --model and DCICNN.from_pretrained)",
        description="List the weights shipped inside the package: each name, what it is, and the folder that holds "
        "its weights, config.json (with the settings restore() uses for them) and model card (README.md).",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dcicnn import hub

    aliases: dict[str, list[str]] = {}
    for alias, name in hub.ALIASES.items():
        aliases.setdefault(name, []).append(alias)
    for name, summary in hub.PRETRAINED.items():
        also = f" (also {', '.join(aliases[name])})" if name in aliases else ""
        print(f"{name}{also}: {summary}\n    {hub.bundled_model_dir(name)}")
    return 0
