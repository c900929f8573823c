"""Quiet console for commands that run several nodes in one process (``dp_ros sim ...``).

ROS nodes log to stderr from C (rcutils). ``QuietConsole`` routes this process's
stderr through a pipe: every line goes to a log file, and only warnings and errors
(``[WARN]``, ``[ERROR]``, ``[FATAL]``, and anything that is not a node's log line, such
as a Python traceback) reach the terminal. ``verbose`` passes everything through.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from pathlib import Path

QUIET_LEVELS = ("[DEBUG]", "[INFO]", "DEBUG ", "INFO ")  # ROS nodes, Python logging


def default_log_path(command: str) -> Path:
    import time

    root = Path(os.environ.get("ROS_LOG_DIR") or Path(os.environ.get("ROS_HOME", Path.home() / ".ros")) / "log")
    return root / f"dp_ros_{command}_{time.strftime('%Y%m%d-%H%M%S')}_{os.getpid()}.log"


class QuietConsole:
    def __init__(self, log_path: Path, verbose: bool = False):
        self.path = Path(log_path)
        self.verbose = verbose
        self._saved: int | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "QuietConsole":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.path, "ab")
        sys.stderr.flush()
        self._saved = os.dup(2)
        read, write = os.pipe()
        os.dup2(write, 2)
        os.close(write)
        self._thread = threading.Thread(target=self._pump, args=(read,), name="quiet_console", daemon=True)
        self._thread.start()
        return self

    def _pump(self, fd: int) -> None:
        with os.fdopen(fd, "rb") as pipe:
            for line in pipe:
                self._log.write(line)
                self._log.flush()
                if self.verbose or not line.lstrip().startswith(tuple(q.encode() for q in QUIET_LEVELS)):
                    os.write(self._saved, line)

    def __exit__(self, *exc) -> None:
        sys.stderr.flush()
        os.dup2(self._saved, 2)  # closes the pipe's write end: the pump reads to the end
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        os.close(self._saved)
        self._log.close()


def add_console_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                   help="show every node log line (by default only warnings and errors; all go to the log file)")
    p.add_argument("--log", default=None, help="node log file (default: under ~/.ros/log, printed at the start)")


def quiet_console(args: argparse.Namespace, command: str) -> QuietConsole:
    """The console for ``args`` (``add_console_arguments``); prints where the log goes."""
    path = Path(args.log) if args.log else default_log_path(command)
    print(f"node logs: {path}", flush=True)
    return QuietConsole(path, verbose=getattr(args, "verbose", False))


def emit_json(dest: str | None, key: str, data) -> None:
    """``--json``: '-' prints ``{key: data}`` as one line; a path gets ``data``, indented."""
    if dest == "-":
        print(json.dumps({key: data}))
    elif dest:
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
        Path(dest).write_text(json.dumps(data, indent=1) + "\n")
        print(f"results: {dest}")
