"""``dcicnn``: one command, one subcommand per job. User errors end in one line on stderr and exit 1."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from huggingface_hub.errors import HfHubHTTPError, HFValidationError

from dcicnn import __version__
from dcicnn.errors import DcicnnError, one_line
from dcicnn_cli import card, demo, evaluate, export, hub_commands, models, restore, serve

#: LightningCLI's subcommands: dcicnn_cli.train (and with it Lightning) is imported only to run one of them.
TRAIN_COMMANDS = ("fit", "validate", "test", "predict")

#: Errors a user can cause: ours (``DcicnnError``: bad arguments, images, weights, a diverged run), the Hub's, and
#: the file system's (a missing file, a full disk). Anything else is a bug and keeps its traceback.
#: Set DCICNN_TRACEBACK=1 to see the traceback of a user error too.
USER_ERRORS = (DcicnnError, HfHubHTTPError, HFValidationError, OSError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dcicnn",
        description="Restore photos damaged by JPEG compression, blur and noise with DCI-CNN.",
    )
    parser.add_argument("--version", action="version", version=f"dcicnn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in TRAIN_COMMANDS:
        sub.add_parser(command, help=f"LightningCLI {command} (see `dcicnn {command} --help`)", add_help=False)
    restore.add_parser(sub)
    evaluate.add_parser(sub)
    demo.add_parser(sub)
    export.add_parser(sub)
    hub_commands.add_parsers(sub)
    card.add_parser(sub)
    models.add_parser(sub)
    serve.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dcicnn`` console script."""
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in TRAIN_COMMANDS:
        # Imported before our logging set-up: Lightning then installs its own console handler (and stops
        # propagating), so its messages print once, as Lightning formats them.
        from dcicnn_cli import train

        command = argv[0]
        # LightningCLI parses these arguments itself (from sys.argv when they came from the command line).
        run = lambda: train.main(None if from_command_line else argv)  # noqa: E731
    else:
        args = build_parser().parse_args(argv)
        command = args.command
        run = lambda: args.run(args)  # noqa: E731
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        return int(run() or 0)
    except USER_ERRORS as err:
        if os.environ.get("DCICNN_TRACEBACK"):
            raise
        print(f"dcicnn {command}: error: {one_line(err)} (DCICNN_TRACEBACK=1 shows the traceback)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"dcicnn {command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
