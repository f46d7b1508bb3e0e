"""``dcicnn push`` and ``dcicnn download``: move a saved model directory to and from the Hugging Face Hub."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parsers(sub: Any) -> None:
    push = sub.add_parser(
        "push",
        help="upload a saved model directory (config.json, model.safetensors, README.md) to the Hub",
        description="Check that DIR loads strictly, then upload its config.json, model.safetensors and README.md "
        "model card to REPO_ID (created if needed). The token comes from `hf auth login` or HF_TOKEN.",
    )
    push.add_argument("directory", metavar="DIR", type=Path, help="a directory written by save_pretrained")
    push.add_argument("repo_id", metavar="REPO_ID", help="e.g. my-org/dcicnn-base")
    push.add_argument("--branch", help="push to this branch (created if needed) instead of main")
    push.add_argument("--private", action="store_true", default=None, help="create the repo as private")
    push.add_argument("--message", default="Upload DCI-CNN weights", help="commit message")
    push.set_defaults(run=run_push)

    download = sub.add_parser(
        "download",
        help="download a model from the Hub into a directory and check that it loads",
        description="Download config.json, model.safetensors and README.md of REPO_ID into DIR "
        "(default: ./<repo name>) and check that the weights load strictly.",
    )
    download.add_argument("repo_id", metavar="REPO_ID")
    download.add_argument("-o", "--output", type=Path, help="target directory (default: ./<repo name>)")
    download.add_argument("--revision", help="branch, tag or commit (default: main)")
    download.set_defaults(run=run_download)


def run_push(args: argparse.Namespace) -> int:
    from dcicnn.model import DCICNN

    url = DCICNN.push_directory(
        args.directory, args.repo_id, branch=args.branch, private=args.private, commit_message=args.message
    )
    print(f"pushed {args.directory} -> {args.repo_id}: {url}")
    return 0


def run_download(args: argparse.Namespace) -> int:
    from dcicnn.model import DCICNN

    out = args.output or Path(args.repo_id.rsplit("/", 1)[-1])
    path = DCICNN.download_directory(args.repo_id, out, revision=args.revision)
    print(f"downloaded {args.repo_id}{'@' + args.revision if args.revision else ''} -> {path}")
    return 0
