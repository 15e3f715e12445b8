"""The stack's processes: started detached with a pid file and a log file, found again and stopped by pid file."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from hashpool_cln.regtest.layout import Layout


class StackError(Exception):
    """A step of the stack failed; the message says which and where its log is."""


def _proc_state(pid: int) -> str | None:
    """The process state letter from /proc (``Z`` for a zombie), None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # not our child: init reaps it


def running_pid(layout: Layout, name: str, marker: str) -> int | None:
    """The pid in ``name``'s pid file if that process is alive and still runs ``marker`` (pids get reused)."""
    try:
        pid = int(layout.pid_file(name).read_text().strip())
    except (OSError, ValueError):
        return None
    _reap(pid)
    state = _proc_state(pid)
    if state is None or state == "Z" or marker not in _cmdline(pid):
        return None
    return pid


def start(layout: Layout, name: str, argv: Sequence[str], env: dict[str, str] | None = None,
          cwd: Path | None = None) -> int:
    """Start ``argv`` in its own session, output appended to ``logs/<name>.log``; writes ``run/<name>.pid``."""
    layout.run_dir.mkdir(parents=True, exist_ok=True)
    layout.log_dir.mkdir(parents=True, exist_ok=True)
    with open(layout.log_file(name), "ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {name}\n".encode())
        log.flush()
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env=env, cwd=cwd, start_new_session=True)
    layout.pid_file(name).write_text(f"{proc.pid}\n")
    return proc.pid


def stop(layout: Layout, name: str, marker: str, timeout: float = 30.0) -> bool:
    """SIGTERM the process of ``name`` (SIGKILL after ``timeout``); True if one was running."""
    pid = running_pid(layout, name, marker)
    layout_pid = layout.pid_file(name)
    if pid is None:
        layout_pid.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    if not wait_gone(pid, timeout):
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid, 5)
    layout_pid.unlink(missing_ok=True)
    return True


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if _proc_state(pid) in (None, "Z"):
            return True
        time.sleep(0.1)
    return False


def wait_until(what: str, probe: Callable[[], bool], timeout: float, log: Path | None = None,
               alive: Callable[[], bool] | None = None) -> None:
    """Poll ``probe`` until it is true; StackError naming ``what`` (and the log to read) on timeout or death."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        if alive is not None and not alive():
            raise StackError(f"{what}: the process exited" + (f"; see {log}" if log else ""))
        time.sleep(0.2)
    raise StackError(f"{what}: not ready after {timeout:.0f} s" + (f"; see {log}" if log else ""))
