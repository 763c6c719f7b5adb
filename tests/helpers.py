"""Helpers shared by several test files (not tests themselves): a FITS decompression bomb, listening sockets."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
from astropy.io import fits

__all__ = ["gzip_bomb", "listening_addresses", "LOOPBACK"]

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
