"""Micro-batching: concurrent requests share one forward pass.

Each request submits a *job* (its own payload and its item count) under a *key*; jobs with the same key can be
merged (for text: whether references are present; for transitions: the trailing array shapes). One worker task
collects jobs until the batch holds ``max_batch_size`` items or ``max_wait_ms`` has passed since the first one,
then runs the scoring function on a single inference thread, so the event loop keeps accepting requests while
the model works. A request larger than ``max_batch_size`` runs alone; it is never split.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from rewardlab.rewards.base import RewardInputError


class QueueFull(Exception):
    """The queue holds ``max_queue`` items already: the caller should answer 503 and the client retry later."""


class TooLarge(Exception):
    """The job holds more items than ``max_queue``: it could never be admitted, so the caller should answer 413 and
    the client split it (a 503 would have it retry for ever)."""

    def __init__(self, size: int, max_queue: int):
        super().__init__(f"the request has {size} items and the server's --max-queue is {max_queue}, so it can never fit "
                         f"in the queue: split it into requests of at most {max_queue} items")
        self.size, self.max_queue = size, max_queue


class DeadlineExceeded(Exception):
    """The request's deadline passed before its scores were ready; its work is dropped (never scored if queued)."""


class ClientGone(Exception):
    """The client disconnected while its job waited; the job is dropped."""

ScoreFn = Callable[[Hashable, list[Any]], list[Any]]
"""``fn(key, payloads) -> results``: one result per payload, in order. Runs on the inference thread."""


@dataclass
class Job:
    key: Hashable
    payload: Any
    size: int
    future: asyncio.Future = field(repr=False)


class MicroBatcher:
    def __init__(self, fn: ScoreFn, max_batch_size: int = 64, max_wait_ms: float = 0.0, on_batch: Callable | None = None,
                 max_queue: int | None = None, on_drop: Callable | None = None):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, found {max_batch_size}")
        if max_queue is not None and max_queue < 1:
            raise ValueError(f"max_queue must be >= 1 (or None: unbounded), found {max_queue}")
        self.max_queue = max_queue
        self.on_drop = on_drop or (lambda items, why: None)
        self.queued_items = 0  # items submitted and not yet answered, dropped or cancelled
        self.fn = fn
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.on_batch = on_batch or (lambda items, requests: None)
        self._queue: asyncio.Queue[Job] | None = None
        self._held: Job | None = None
        self._worker: asyncio.Task | None = None
        self._busy = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rewardlab-infer")

    @property
    def pending(self) -> int:
        return (self._queue.qsize() if self._queue else 0) + (self._held is not None) + self._busy

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="rewardlab-batcher")

    async def stop(self) -> None:
        """Finish every job already submitted, then stop. New submissions after this are refused."""
        if self._worker is None:
            return
        while self.pending:
            await asyncio.sleep(0.01)
        self._worker.cancel()
        try:
            await self._worker
        except asyncio.CancelledError:
            pass
        self._worker = None
        self._executor.shutdown(wait=True)

    async def submit(self, key: Hashable, payload: Any, size: int, timeout: float | None = None, gone: Any = None) -> Any:
        """Queue a job and wait for its result. ``TooLarge`` when the job alone holds more than ``max_queue`` items;
        ``QueueFull`` when the items already waiting leave no room for it; ``DeadlineExceeded`` after ``timeout``
        seconds; ``ClientGone`` when the awaitable ``gone`` finishes first (the client disconnected). A job given up
        on before its batch runs is never scored."""
        refused: Exception | None = None
        if self._worker is None or self._queue is None:
            refused = RuntimeError("the batcher is not running (server starting up or shutting down)")
        elif self.max_queue is not None and size > self.max_queue:
            refused = TooLarge(size, self.max_queue)
        elif self.max_queue is not None and self.queued_items + size > self.max_queue:
            refused = QueueFull(f"{self.queued_items} items are waiting, the server's bound is {self.max_queue} (--max-queue)")
        if refused is not None:
            if asyncio.iscoroutine(gone):
                gone.close()  # never awaited: close it so Python does not warn
            raise refused
        job = Job(key, payload, size, asyncio.get_running_loop().create_future())
        self.queued_items += size
        job.future.add_done_callback(lambda _: self._release(size))
        await self._queue.put(job)
        if timeout is None and gone is None:
            return await job.future
        watcher = asyncio.ensure_future(gone) if gone is not None else None
        waiting = {job.future} | ({watcher} if watcher else set())
        try:
            done, _ = await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if watcher is not None and not watcher.done():
                watcher.cancel()
        if job.future in done:
            return job.future.result()
        job.future.cancel()  # the worker skips it; if its batch is already running, the result is thrown away
        if watcher is not None and watcher in done:
            self.on_drop(size, "disconnected")
            raise ClientGone("the client disconnected")
        self.on_drop(size, "deadline")
        raise DeadlineExceeded(f"no result within {timeout:g} s (--timeout-s)")

    def _release(self, size: int) -> None:
        self.queued_items -= size

    async def run_alone(self, fn: Callable, *args: Any) -> Any:
        """Run ``fn(*args)`` on the inference thread, unbatched (for rare calls such as explanations)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _next_batch(self) -> list[Job]:
        assert self._queue is not None
        first = self._held or await self._queue.get()
        self._held = None
        self._busy = True  # holds jobs from here until they are answered
        batch, items = [first], first.size
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        while items < self.max_batch_size:
            try:
                job = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            if items + job.size > self.max_batch_size:
                self._held = job  # first of the next batch
                break
            batch.append(job)
            items += job.size
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            groups: dict[Hashable, list[Job]] = {}
            for job in batch:
                groups.setdefault(job.key, []).append(job)
            try:
                for key, jobs in groups.items():
                    jobs = [j for j in jobs if not j.future.done()]  # a client that went away
                    if jobs:
                        await loop.run_in_executor(self._executor, self._score_group, key, jobs, loop)
            finally:
                self._busy = False

    def _score_group(self, key: Hashable, jobs: list[Job], loop: asyncio.AbstractEventLoop) -> None:
        """Score a group on the inference thread. If the merged batch has bad input, retry job by job so the
        error reaches only the request that caused it."""
        try:
            results = self.fn(key, [j.payload for j in jobs])
            self.on_batch(sum(j.size for j in jobs), len(jobs))
            for job, result in zip(jobs, results, strict=True):
                loop.call_soon_threadsafe(_resolve, job.future, result, None)
        except RewardInputError as exc:
            if len(jobs) == 1:
                loop.call_soon_threadsafe(_resolve, jobs[0].future, None, exc)
                return
            for job in jobs:
                self._score_group(key, [job], loop)
        except Exception as exc:  # noqa: BLE001 - delivered to the waiting request, which answers 500
            for job in jobs:
                loop.call_soon_threadsafe(_resolve, job.future, None, exc)


def _resolve(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
