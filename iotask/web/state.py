"""What every request of the web side shares: the configuration, the database, and the runs
the console started in the background."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from flask import current_app
from sqlalchemy import Engine

from iotask.config import Config
from iotask.runner import Runner, TaskResult

log = logging.getLogger("iotask.web")


class BackgroundRuns:
    """Runs started with "Run now" or "Accept held changes": each in its own thread, so the
    page answers at once and shows the run as running; the claim still keeps every task to
    one run at a time, across threads, processes and hosts."""

    def __init__(self, engine: Engine, config: Config) -> None:
        self.engine, self.config = engine, config
        self._lock = threading.Lock()
        self._threads: dict[str, threading.Thread] = {}
        self._problems: dict[str, str] = {}  # a run that could not start, told on its page

    def start(self, name: str, accept_changes: bool = False) -> bool:
        """Start a run of ``name``; False when this process is already running it."""
        with self._lock:
            if self.running(name):
                return False
            self._problems.pop(name, None)
            thread = threading.Thread(target=self._run, args=(name, accept_changes),
                                      name=f"console-run:{name}", daemon=True)
            self._threads[name] = thread
            thread.start()
        return True

    def _run(self, name: str, accept_changes: bool) -> None:
        try:
            results = Runner(self.engine, self.config, "console").run(
                [name], accept_changes=accept_changes)
        except Exception as exc:  # a bug or the database gone: the page tells, the log keeps it
            log.error("console run of task %s failed to start", name, exc_info=exc)
            self._problems[name] = "the run could not start: see the log"
            return
        result: TaskResult = results[0]
        if not result.executed and result.error:
            self._problems[name] = result.error

    def running(self, name: str) -> bool:
        thread = self._threads.get(name)
        return thread is not None and thread.is_alive()

    def problem(self, name: str) -> str | None:
        """Why the console's last attempt to run ``name`` did not run it, if it did not."""
        return self._problems.get(name)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the runs in progress (a server shutting down, a test)."""
        for thread in list(self._threads.values()):
            thread.join(timeout)


@dataclass
class Console:
    config: Config
    engine: Engine
    runs: BackgroundRuns = field(init=False)

    def __post_init__(self) -> None:
        self.runs = BackgroundRuns(self.engine, self.config)


def console() -> Console:
    """The web side's state, for the app serving this request."""
    found: Console = current_app.extensions["iotask"]
    return found
