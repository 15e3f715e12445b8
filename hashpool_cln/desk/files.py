"""The desk's files that hold secrets or money (the seed, the ledger) and their directories: owner-only.

A directory open to others is made owner-only, with a log line (nothing in it has been exposed by that alone,
and the files in it are checked on their own). A seed file that others may read or write, or that another user
owns, is refused: it may have been copied already, which making it private now would hide. Messages name no
path: they may reach a caller (a failed start answers NOT_READY with the reason).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("hashpool_cln.desk.files")

OTHERS = 0o077  # any permission for group or others


class FileRefused(Exception):
    """A secret's file, or its directory, is not private to this user and is not made so."""


def private_dir(path: str | Path) -> None:
    """Create ``path`` owner-only, or make an existing one owner-only; refuse one another user owns."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.stat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise FileRefused("the place for the desk's files is not a directory")
    if st.st_uid != os.geteuid():
        raise FileRefused("the directory for the desk's files belongs to another user")
    mode = stat.S_IMODE(st.st_mode)
    if mode & OTHERS:
        os.chmod(path, mode & ~OTHERS | 0o700)
        log.warning("the directory %s was open to others (mode %03o); made owner-only", path, mode)


def check_secret(fd: int, what: str) -> None:
    """Refuse the open file ``fd`` (``what`` names it) unless this user owns it and no one else may use it."""
    st = os.fstat(fd)
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid != os.geteuid():
        raise FileRefused(f"the {what} belongs to another user")
    if mode & OTHERS:
        log.warning("the %s is open to others (mode %03o): refused", what, mode)
        raise FileRefused(f"the {what} is open to others (mode {mode:03o}); it may have been copied: check it, "
                          "then make it owner-only (chmod 600)")
