"""Who holds a lock on a file, read from /proc/locks: asking takes no lock of its own.

``repofeed status`` names the daemon by the flock on the writer lock; a full LMDB reader table
is explained by the processes holding POSIX locks on ``lock.mdb`` (LMDB locks one byte per
process that has the environment open).
"""

from __future__ import annotations

import os
from pathlib import Path


def lock_holders(path: Path, kind: str = "FLOCK") -> list[int]:
    """Pids holding a ``kind`` ("FLOCK" or "POSIX") lock on ``path``, in /proc/locks order;
    empty where /proc/locks cannot be read."""
    try:
        st = os.stat(path)
        with open("/proc/locks", encoding="ascii") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return []
    wanted = (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    pids: list[int] = []
    for line in lines:
        fields = line.split()
        if len(fields) < 6 or fields[1] != kind or "->" in fields:
            continue
        try:
            major, minor, inode = fields[5].split(":")
            if (int(major, 16), int(minor, 16), int(inode)) == wanted:
                pid = int(fields[4])
                if pid not in pids:
                    pids.append(pid)
        except ValueError:
            continue
    return pids
