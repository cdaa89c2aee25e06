"""The bounded inference pool behind the app: a few worker threads and a bounded queue of waiting jobs."""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from spadekit import SpadekitError


class Cancelled(Exception):
    """A waiting job whose client went away before its turn: skipped, never run."""


class Ticket(threading.Event):
    """A submitted job's cancel flag (set when its client went away) and whether its turn has come."""

    def __init__(self):
        super().__init__()
        self.started = False


class InferencePool:
    """`workers` threads and at most `queue` jobs waiting; `try_submit` returns None when full.

    A job gets a threading.Event that is set when its client went away; a job still waiting then
    is skipped when its turn comes (the slot frees at once), a running one finishes.
    """

    def __init__(self, workers: int = 1, queue: int = 8):
        if workers < 1 or queue < 0:
            raise SpadekitError(f"the worker pool needs at least 1 worker and a queue of 0 or more, got {workers} and {queue}")
        self.workers = workers
        self.queue = queue
        self._executor: ThreadPoolExecutor | None = None  # made on first use, again after a shutdown (app restarts)
        self._lock = threading.Lock()
        self._pending = 0  # running + waiting
        self._running = 0
        self._mean_seconds = 1.0
        self.completed = 0
        self.dropped = 0
        self._abandoned = 0  # waiting jobs whose client went away: skipped when their turn comes

    @property
    def capacity(self) -> int:
        return self.workers + self.queue

    def state(self) -> dict:
        with self._lock:
            return {
                "workers": self.workers, "queue": self.queue, "running": self._running,
                "waiting": self._pending - self._running, "completed": self.completed, "dropped": self.dropped,
                "abandoned": self._abandoned,
            }

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the mean job time x jobs per worker ahead."""
        with self._lock:
            ahead = max(1, self._pending - self.workers + 1)
            return max(1, math.ceil(self._mean_seconds * ahead / self.workers))

    def full(self) -> bool:
        with self._lock:
            return self._pending >= self.capacity

    def abandon(self, ticket: Ticket) -> None:
        """The job's client went away: a waiting job will be skipped, a running one finishes unseen."""
        with self._lock:
            if not ticket.is_set():
                ticket.set()
                if not ticket.started:
                    self._abandoned += 1

    def try_submit(self, job: Callable[[threading.Event], Any]) -> tuple[Future, Ticket] | None:
        with self._lock:
            if self._pending >= self.capacity:
                return None
            self._pending += 1
        cancelled = Ticket()

        def run():
            start = time.perf_counter()
            try:
                with self._lock:
                    cancelled.started = True
                    skip = cancelled.is_set()
                    if skip:
                        self.dropped += 1
                        self._abandoned -= 1
                if skip:
                    raise Cancelled()
                with self._lock:
                    self._running += 1
                try:
                    result = job(cancelled)
                finally:
                    seconds = time.perf_counter() - start
                    with self._lock:
                        self._running -= 1
                        self.completed += 1
                        self._mean_seconds = 0.8 * self._mean_seconds + 0.2 * seconds
                return result
            finally:
                with self._lock:
                    self._pending -= 1

        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="spadekit-infer")
            executor = self._executor
        return executor.submit(run), cancelled

    def shutdown(self) -> None:
        """Stop the threads (waiting jobs are cancelled); a later submit starts fresh ones."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
