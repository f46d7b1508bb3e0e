"""``dcicnn serve``: the web page (Gradio) on this machine, until Ctrl-C."""

from __future__ import annotations

import argparse
import socket
import sys
import time
from typing import Any

from dcicnn.errors import InvalidArgumentError
from dcicnn_cli.options import add_inference_arguments, check_device_dtype, inference_options
from dcicnn_cli.restore import load_model_source


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "serve",
        help="a web page to restore photos in the browser (needs: pip install 'dcicnn[web]')",
        description="Serve a web page (Gradio) where you drop a photo, compare it with its restoration on a slider, "
        "set the strength and the JPEG quality the model is told, and download the result as a PNG. The page "
        "restores each upload as `dcicnn restore` does a file. --strength and --jpeg-quality set the page's "
        "starting values.",
    )
    parser.add_argument("--model", help="weights: a bundled name (`dcicnn models`), a directory or a Hub repo id "
        "(default: default)")
    parser.add_argument("--revision", help="Hub revision (branch, tag or commit) of --model")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 lets the network in)",
    )
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument(
        "--max-pixels", type=int, default=None, help="refuse images with more pixels (default: Pillow's, about 89 MP)"
    )
    parser.add_argument(
        "--max-file-size", default="100mb", help="largest upload, e.g. 20mb or 1gb (default 100mb)"
    )
    add_inference_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    options = inference_options(args)
    if not 1 <= args.port <= 65535:
        raise InvalidArgumentError(f"--port must be in 1..65535, got {args.port}")
    check_port(args.host, args.port)  # cheap checks first: a taken port is known before the model loads
    from dcicnn.web import running

    model = load_model_source(args.model, args.revision)
    check_device_dtype(model, options)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"dcicnn serve: note: listening on {args.host}: other machines can reach the page", file=sys.stderr)
    title = f"dcicnn: {args.model or 'the bundled default model'}"
    try:
        with running(
            model, host=args.host, port=args.port, options=options, max_pixels=args.max_pixels,
            max_file_size=args.max_file_size, title=title,
        ) as app:  # fmt: skip
            print(f"dcicnn serve: open {app.local_url} in a browser (Ctrl-C stops)", flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        print("dcicnn serve: stopped", file=sys.stderr)
    return 0


def check_port(host: str, port: int) -> None:
    """One clear error if nothing can listen on ``host:port`` (taken, or an address this machine does not have)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise InvalidArgumentError(f"--host {host}: not an address of this machine ({err.strerror})") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will: a closing socket is no user
        try:
            probe.bind(address)
        except OSError as err:
            raise InvalidArgumentError(
                f"cannot listen on {host}:{port} ({err.strerror}); pick another --port"
            ) from None
