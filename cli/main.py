"""``dcicnn``: one command, one subcommand per job. User errors end in one line on stderr and exit 1."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from dcicnn_cli import demo, hub_commands
from huggingface_hub.errors import HfHubHTTPError, HFValidationError

from dcicnn import WeightsMismatchError, WeightsNotFoundError, __version__

#: Errors a user can cause; anything else is a bug and keeps its traceback.
USER_ERRORS = (WeightsNotFoundError, WeightsMismatchError, HfHubHTTPError, HFValidationError, OSError, ValueError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dcicnn",
        description="Restore photos damaged by JPEG compression, blur and noise with DCI-CNN.",
    )
    parser.add_argument("--version", action="version", version=f"dcicnn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo.add_parser(sub)
    hub_commands.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dcicnn`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        return int(args.run(args) or 0)
    except USER_ERRORS as err:
        print(f"dcicnn {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"dcicnn {args.command}: interrupted", file=sys.stderr)
        return 130


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


if __name__ == "__main__":
    sys.exit(main())
