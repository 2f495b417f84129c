#!/usr/bin/env python3
"""Writes a Linux initramfs (a "newc" cpio archive) holding /init and /dev/console, without root
(the device node is written into the archive, never made on disk).

usage: make-initramfs.py INIT OUTPUT
"""
import os
import sys


def entry(name, mode, data=b"", rdev=(0, 0), ino=1):
    name_bytes = name.encode() + b"\0"
    fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name_bytes), 0]
    header = b"070701" + b"".join(b"%08x" % f for f in fields)
    out = header + name_bytes
    out += b"\0" * (-len(out) % 4)
    out += data
    out += b"\0" * (-len(out) % 4)
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1], "rb") as f:
        init = f.read()
    archive = entry("dev", 0o040755, ino=1)
    archive += entry("dev/console", 0o020600, rdev=(5, 1), ino=2)
    archive += entry("init", 0o100755, init, ino=3)
    archive += entry("TRAILER!!!", 0, ino=0)
    archive += b"\0" * (-len(archive) % 512)
    tmp = sys.argv[2] + ".tmp"
    with open(tmp, "wb") as f:
        f.write(archive)
    os.replace(tmp, sys.argv[2])


main()
