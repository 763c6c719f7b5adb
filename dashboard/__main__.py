"""``python -m dashboard [--port 5006] [--address HOST] [--no-show] [--num-threads N]``: serve the dashboard."""
from __future__ import annotations

import argparse
import os
import sys

from dashboard.server import DEFAULT_ADDRESS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dashboard", description="Serve the kappascope dashboard.")
    parser.add_argument("--port", type=int, default=5006, help="TCP port (default 5006; 0 picks a free one)")
    parser.add_argument("--address", default=DEFAULT_ADDRESS,
                        help=f"address to listen on (default: {DEFAULT_ADDRESS}, this machine only; "
                             "0.0.0.0 exposes the dashboard to the network)")
    parser.add_argument("--no-show", action="store_true", help="do not open a browser tab")
    parser.add_argument("--num-threads", type=int, default=None, help="Panel worker threads for callbacks")
    parser.add_argument("--allow-websocket-origin", action="append", default=None,
                        help="extra host[:port] allowed to connect (repeatable), needed with --address 0.0.0.0")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from dashboard.app import serve

    serve(port=args.port, show=not args.no_show, address=args.address, num_threads=args.num_threads,
          websocket_origin=args.allow_websocket_origin)
    from dashboard.server import received_signal

    # Stopped by a signal: the runs are cancelled and the server is closed; skip the slow interpreter teardown
    # (TensorFlow's atexit hooks, worker threads inside a compiled chunk) so the process ends at once.
    code = 128 + received_signal[0] if received_signal else 0
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
