"""The micro-batcher on its own: which jobs share a call, that each request gets its own results back, and that
bad input reaches only the request that sent it. The scoring function is a plain Python function that records
its calls, so what is merged is observed, not inferred from timing."""

from __future__ import annotations

import asyncio

import pytest

from rewardlab.rewards.base import RewardInputError
from rewardlab.serve.batching import MicroBatcher


class Recorder:
    """fn(key, payloads): each payload is a list of numbers; the result is the list doubled. A payload holding
    "bad" is refused with RewardInputError; one holding "boom" raises a RuntimeError."""

    def __init__(self):
        self.calls: list[tuple] = []

    def __call__(self, key, payloads):
        self.calls.append((key, [list(p) for p in payloads]))
        for p in payloads:
            if "bad" in p:
                raise RewardInputError(f"payload {p}: 'bad' is not a number")
            if "boom" in p:
                raise RuntimeError("the model broke")
        return [[2 * x for x in p] for p in payloads]


def run(batcher: MicroBatcher, jobs: list[tuple]) -> list:
    """Start the batcher, submit every (key, payload) at once, collect results or exceptions, stop."""

    async def main():
        batcher.start()
        try:
            return await asyncio.gather(*(batcher.submit(k, p, len(p)) for k, p in jobs), return_exceptions=True)
        finally:
            await batcher.stop()

    return asyncio.run(main())


def test_jobs_with_one_key_share_one_call_and_each_gets_its_own_results():
    fn = Recorder()
    # the batch closes when it holds max_batch_size items, so the long wait never elapses
    out = run(MicroBatcher(fn, max_batch_size=6, max_wait_ms=60_000), [("k", [1, 2]), ("k", [3]), ("k", [4, 5, 6])])
    assert out == [[2, 4], [6], [8, 10, 12]]
    assert fn.calls == [("k", [[1, 2], [3], [4, 5, 6]])]


def test_jobs_with_different_keys_are_scored_apart():
    fn = Recorder()
    out = run(MicroBatcher(fn, max_batch_size=4, max_wait_ms=60_000), [("a", [1]), ("b", [2]), ("a", [3]), ("b", [4])])
    assert out == [[2], [4], [6], [8]]
    assert sorted(fn.calls) == [("a", [[1], [3]]), ("b", [[2], [4]])]


def test_a_bad_request_gets_the_error_and_the_others_their_scores():
    fn = Recorder()
    out = run(MicroBatcher(fn, max_batch_size=5, max_wait_ms=60_000), [("k", [1, 2]), ("k", ["bad"]), ("k", [3, 4])])
    assert out[0] == [2, 4] and out[2] == [6, 8]
    assert isinstance(out[1], RewardInputError) and "'bad' is not a number" in str(out[1])
    # the merged call failed, then each job was retried alone
    assert fn.calls == [("k", [[1, 2], ["bad"], [3, 4]]), ("k", [[1, 2]]), ("k", [["bad"]]), ("k", [[3, 4]])]


def test_a_model_error_reaches_every_request_of_its_batch_and_the_batcher_keeps_serving():
    fn = Recorder()
    batcher = MicroBatcher(fn, max_batch_size=3, max_wait_ms=60_000)

    async def main():
        batcher.start()
        try:
            first = await asyncio.gather(*(batcher.submit("k", p, len(p)) for p in ([1], ["boom"], [2])), return_exceptions=True)
            after = await batcher.submit("k", [7, 8, 9], 3)
            return first, after
        finally:
            await batcher.stop()

    first, after = asyncio.run(main())
    assert all(isinstance(e, RuntimeError) and "the model broke" in str(e) for e in first)
    assert after == [14, 16, 18]


def test_a_request_larger_than_the_batch_runs_alone_and_whole():
    fn = Recorder()
    out = run(MicroBatcher(fn, max_batch_size=2, max_wait_ms=0), [("k", [1, 2, 3, 4, 5])])
    assert out == [[2, 4, 6, 8, 10]]
    assert fn.calls == [("k", [[1, 2, 3, 4, 5]])]


def test_a_job_that_would_overflow_the_batch_opens_the_next_one():
    fn = Recorder()
    out = run(MicroBatcher(fn, max_batch_size=3, max_wait_ms=0), [("k", [1, 2]), ("k", [3, 4]), ("k", [5])])
    assert out == [[2, 4], [6, 8], [10]]
    assert [len(payloads) for _, payloads in fn.calls] == [1, 2]  # [1, 2] alone; [3, 4] + [5] fill the next batch


def test_submitting_to_a_stopped_batcher_is_refused():
    async def main():
        await MicroBatcher(Recorder()).submit("k", [1], 1)

    with pytest.raises(RuntimeError, match="not running"):
        asyncio.run(main())


def test_max_batch_size_below_one_is_refused():
    with pytest.raises(ValueError, match="max_batch_size must be >= 1"):
        MicroBatcher(Recorder(), max_batch_size=0)
