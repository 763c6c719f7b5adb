"""Helpers shared by several test files (not tests themselves): a FITS decompression bomb, listening sockets, free
ports and the dashboard served in the test process."""
from __future__ import annotations

import contextlib
import gzip
import socket
import time
from pathlib import Path
from typing import Iterator

import numpy as np
from astropy.io import fits

__all__ = ["gzip_bomb", "listening_addresses", "LOOPBACK", "free_port", "accepts_connections", "serving_dashboard"]

#: 127.0.0.1 and ::1 as written in /proc/net/tcp and /proc/net/tcp6
LOOPBACK = {"0100007F", "00000000000000000000000001000000"}


def gzip_bomb(path: Path, shape: tuple[int, ...] = (2, 4096, 4096)) -> Path:
    """A ``.fits.gz`` of a few hundred kB whose float64 image of ``shape`` is all zeros (256 MiB at 2×4096²)."""
    header = fits.Header([("SIMPLE", True), ("BITPIX", -64), ("NAXIS", len(shape))])
    for i, n in enumerate(reversed(shape), start=1):
        header[f"NAXIS{i}"] = n
    zeros = bytes(2**20)
    with gzip.open(path, "wb", compresslevel=1) as stream:
        stream.write(header.tostring().encode())
        for _ in range(int(np.prod(shape)) * 8 // len(zeros)):
            stream.write(zeros)
    return path


def listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as in /proc/net/tcp{,6}) of the sockets in LISTEN state on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, _, hex_port = fields[1].rpartition(":")
            if fields[3] == "0A" and int(hex_port, 16) == port:  # 0A = TCP_LISTEN
                found.add(address)
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS's pick for port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accepts_connections(port: int) -> bool:
    """Whether a TCP connection to 127.0.0.1:``port`` succeeds within a second."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@contextlib.contextmanager
def serving_dashboard(start_timeout_s: float = 60.0) -> Iterator[str]:
    """``dashboard.app.serve`` (every route) on a free port of 127.0.0.1 in this process, unused sessions reaped
    after about a second; yields ``http://127.0.0.1:<port>/`` once the port accepts connections (only the port is
    probed: a GET of "/" would build a whole session) and stops the server on exit."""
    from dashboard.app import serve

    port = free_port()
    server = serve(port=port, show=False, address="127.0.0.1", threaded=True,
                   websocket_origin=[f"127.0.0.1:{port}", f"localhost:{port}"],
                   check_unused_sessions_milliseconds=500, unused_session_lifetime_milliseconds=500)
    try:
        deadline = time.monotonic() + start_timeout_s
        while not accepts_connections(port):
            if time.monotonic() > deadline:
                raise OSError(f"the dashboard did not accept connections on port {port} within {start_timeout_s:g} s")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.stop()
