"""Executors: inline (tests, debugging) and Dask (a local process cluster or a remote scheduler)."""
from __future__ import annotations

import contextlib
import logging
import os
import traceback
import uuid
from collections import deque


from .store import SweepError
from .worker import execute_run, warm_up


class _Inline:
    """Runs tasks one by one in this process (debugging; a crash stops the sweep)."""

    label = "inline"

    def __init__(self):
        self.queue: deque = deque()

    def threads(self) -> int:
        return 1

    def submit(self, task: dict) -> None:
        self.queue.append(task)

    def results(self):
        while self.queue:
            task = self.queue.popleft()
            yield task, execute_run(task)

    def inflight(self) -> int:
        return len(self.queue)

    def running_ids(self) -> set[str]:
        return set()

    def close(self) -> None:
        pass


class _Dask:
    """Tasks on a Dask cluster: a local process cluster or a remote scheduler (tcp://...)."""

    def __init__(self, workers: int | None, scheduler: str | None, n_tasks: int, warm: bool):
        import dask
        from distributed import Client, LocalCluster, as_completed

        self._cluster = None
        if scheduler:
            self.label = scheduler
            try:
                self.client = Client(scheduler, timeout="15s")
            except (OSError, TimeoutError, ValueError) as e:
                raise SweepError(f"could not connect to the Dask scheduler at {scheduler}: {e}") from None
            if warm:
                with contextlib.suppress(Exception):
                    self.client.run(warm_up)
        else:
            n = max(1, min(workers or os.cpu_count() or 1, n_tasks))
            self.label = f"local dask cluster: {n} worker processes"
            env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {})
            env.setdefault("NUMBA_NUM_THREADS", "1")
            cfg = {
                # A worker death marks only the task it was running; our own retry handles it.
                "distributed.scheduler.allowed-failures": 0,
                "distributed.scheduler.worker-saturation": 1.0,
                "distributed.nanny.pre-spawn-environ": env,
                "distributed.admin.system-monitor.gil.enabled": False,
            }
            with dask.config.set(cfg):
                self._cluster = LocalCluster(
                    n_workers=n, threads_per_worker=1, processes=True,
                    dashboard_address=None, silence_logs=logging.ERROR, scheduler_port=0,
                )
                self.client = Client(self._cluster)
        self._ac = as_completed()
        self._tasks: dict[str, dict] = {}
        self._queue: deque = deque()
        self._threads = 1
        self._count_threads()

    def threads(self) -> int:
        return self._threads

    def _count_threads(self) -> int:
        try:
            self._threads = max(1, sum(self.client.nthreads().values()))
        except Exception:
            pass
        return self._threads

    def submit(self, task: dict) -> None:
        # retries go first; everything waits here until a worker thread is free (see _refill)
        (self._queue.appendleft if task["attempt"] > 1 else self._queue.append)(task)

    def _refill(self) -> None:
        """Keep at most one run per worker thread on the cluster, so a worker that dies takes only
        the run it was running with it (Dask would otherwise queue several runs on one worker)."""
        free = self._count_threads() - len(self._tasks)
        while self._queue and (free > 0 or not self._tasks):
            task = self._queue.popleft()
            key = f"nksim-{task['run_id']}-a{task['attempt']}-{uuid.uuid4().hex[:6]}"
            fut = self.client.submit(execute_run, task, key=key, pure=False, retries=0)
            self._tasks[fut.key] = task
            self._ac.add(fut)
            free -= 1

    def results(self):
        self._refill()
        for fut in self._ac:
            task = self._tasks.pop(fut.key)
            try:
                rec = fut.result()
            except Exception as e:  # KilledWorker (worker died), CancelledError, comm errors
                rec = {
                    "ok": False,
                    "error": f"{type(e).__name__}: {e}\n(the worker process died or was lost while running this run)\n"
                    + traceback.format_exc(),
                    "wall_time_s": None,
                    "worker": None,
                }
            fut.release()
            yield task, rec
            self._refill()

    def inflight(self) -> int:
        return len(self._tasks)

    def running_ids(self) -> set[str]:
        return {t["run_id"] for t in self._tasks.values()}

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
        if self._cluster is not None:
            with contextlib.suppress(Exception):
                self._cluster.close()
