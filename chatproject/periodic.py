"""Jobs every server process runs on its own, in a daemon thread: no cron, and no process
depends on another for them. The sweeps of unused uploads and of idle guests are two."""

import threading
import time
from collections.abc import Callable

from django.db import close_old_connections, connections

from chatproject.logs import get_logger

log = get_logger(__name__)


class PeriodicJob:
    """`job()` every `every()` seconds from `start()` until the process exits. `job`
    returns how many things it did; a failure (the database away) is logged and the next
    round tries again."""

    def __init__(self, name: str, job: Callable[[], int], every: Callable[[], float]) -> None:
        self.name = name
        self.job = job
        self.every = every
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> bool:
        """Start the thread, once per process (False when it was already started)."""
        with self._lock:
            if self._thread is not None:
                return False
            self._thread = threading.Thread(target=self.run_forever, name=self.name, daemon=True)
            self._thread.start()
            return True

    def run_forever(self) -> None:
        while True:
            time.sleep(self.every())
            self.run_once()

    def run_once(self) -> None:
        try:
            close_old_connections()
            done = self.job()
            if done:
                log.info("periodic_job_done", job=self.name, count=done)
        except Exception:
            log.exception("periodic_job_failed", job=self.name)
        finally:
            connections.close_all()  # this thread's own; a round is rare
