"""``python -m dashboard [--port 5006] [--address HOST] [--no-show] [--num-threads N]``: serve the dashboard."""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboard", description="Serve the kappascope dashboard.")
    parser.add_argument("--port", type=int, default=5006, help="TCP port (default 5006; 0 picks a free one)")
    parser.add_argument("--address", default=None, help="address to listen on (default: localhost)")
    parser.add_argument("--no-show", action="store_true", help="do not open a browser tab")
    parser.add_argument("--num-threads", type=int, default=None, help="Panel worker threads for callbacks")
    parser.add_argument("--allow-websocket-origin", action="append", default=None,
                        help="extra host[:port] allowed to connect (repeatable), needed with --address 0.0.0.0")
    args = parser.parse_args(argv)
    from dashboard.app import serve

    serve(port=args.port, show=not args.no_show, address=args.address, num_threads=args.num_threads,
          websocket_origin=args.allow_websocket_origin)
    return 0


if __name__ == "__main__":
    sys.exit(main())
