"""``dcicnn card DIR``: (re)write a model directory's README.md model card from evaluation results."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from dcicnn.errors import InvalidArgumentError


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "card",
        help="write the model card (README.md) of a model directory from `dcicnn evaluate` results",
        description="Render model_cards/dcicnn.md.jinja for the model in DIR, with the evaluation tables and "
        "model-index metadata taken from results.json files of `dcicnn evaluate`, and training and reproduction "
        "notes from text files. Replaces DIR/README.md.",
    )
    parser.add_argument("directory", type=Path, metavar="DIR")
    parser.add_argument(
        "--results",
        nargs="+",
        default=[],
        metavar="DATASET_ID=RESULTS_JSON",
        help="e.g. kodak24=eval/kodak24/results.json (the id is the model-index dataset type); a protocol met again "
        "in a later file replaces the earlier figures (protocols re-measured after a change of settings)",
    )
    parser.add_argument(
        "--method",
        nargs="+",
        default=["DCI-CNN"],
        help="the model's column(s) in the results (a `dcicnn evaluate` of several models names each by its folder; "
        "with --jpeg-hint modes, 'DCI-CNN [auto]' and the like); with several, each dataset row names its method",
    )
    parser.add_argument("--name", help="model name (title and model-index name)")
    parser.add_argument("--repo-id", help="Hub id shown in the usage snippet")
    parser.add_argument("--summary", help="one paragraph under the title")
    parser.add_argument("--training", type=Path, help="a text/markdown file: how the weights were trained")
    parser.add_argument("--reproduce", type=Path, help="a shell file: the commands that reproduce training and scores")
    parser.add_argument("--datasets", nargs="*", default=None, help="training dataset names for the metadata")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dcicnn.hub.card import eval_results_from_evaluation
    from dcicnn.model import DCICNN

    model = DCICNN.from_pretrained(args.directory)
    results = []
    for item in args.results:
        dataset_type, sep, path = item.partition("=")
        if not sep:
            raise InvalidArgumentError(f"--results takes DATASET_ID=RESULTS_JSON, got {item!r}")
        for method in args.method:
            variant = method.removeprefix("DCI-CNN").strip(" []") or method if len(args.method) > 1 else None
            results += eval_results_from_evaluation(path, dataset_type, method=method, variant=variant)
    latest = {(r.dataset_type, r.dataset_config, r.metric_type): r for r in results}  # the first one's place
    results = list(latest.values())
    card = model.generate_model_card(
        model_name=args.name,
        repo_id=args.repo_id,
        summary=args.summary,
        eval_results=results or None,
        training=args.training.read_text().strip() if args.training else None,
        reproduce=args.reproduce.read_text().strip() if args.reproduce else None,
        datasets=args.datasets,
    )
    card.save(args.directory / "README.md")
    print(f"wrote {args.directory / 'README.md'} ({len(results)} evaluation results)")
    return 0
