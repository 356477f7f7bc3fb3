"""common.retry: which outcomes are tried again, and what the caller gets at the end."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from common.retry import backoff_s, retrying, retrying_sync, transient


@dataclass
class Answer:
    status: int
    headers: dict = field(default_factory=lambda: {"Retry-After": "0"})


def script(*outcomes):
    """A call that gives `outcomes` in turn (an exception is raised); its calls counted."""
    calls = []

    def call():
        calls.append(1)
        outcome = outcomes[len(calls) - 1]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return call, calls


def test_no_answer_and_later_are_retried_a_refusal_is_not():
    call, calls = script(ConnectionRefusedError(), Answer(503), Answer(200))
    assert retrying_sync(attempts=5)(call).status == 200 and len(calls) == 3
    call, calls = script(Answer(409), Answer(200))
    assert retrying_sync(attempts=5)(call).status == 409 and len(calls) == 1


def test_out_of_attempts_the_last_answer_or_error_comes_back():
    call, calls = script(Answer(429), Answer(502), Answer(504))
    assert retrying_sync(attempts=3)(call).status == 504 and len(calls) == 3
    call, calls = script(Answer(503), ConnectionResetError("gone"))
    with pytest.raises(ConnectionResetError):
        retrying_sync(attempts=2)(call)  # the error itself, not a wrapper


async def test_the_async_policy_and_its_own_rule():
    outcomes = iter([Answer(0), Answer(503), Answer(201)])
    seen = []

    async def call():
        return next(outcomes)

    reply = await retrying(attempts=5, on_retry=lambda state: seen.append(state.attempt_number))(
        call)
    assert reply.status == 201 and seen == [1, 2]
    assert transient(Answer(0)) and transient(Answer(429)) and not transient(Answer(500))


def test_backoff_is_capped_and_retry_after_wins():
    assert all(backoff_s(n) <= 8.0 * 1.2 for n in range(20))  # the cap, with its jitter
    assert backoff_s(10, cap_s=0.5) <= 0.5 * 1.2
    assert backoff_s(3, "2") == 2.0 and backoff_s(3, "junk") <= 8.0 * 1.2
    assert backoff_s(0, "3600") == 16.0  # twice the cap at most
