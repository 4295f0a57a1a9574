"""The supervisor's restart rule for crashed children: exponential backoff, a
reset once a child has run stably, and a cap that turns a crash loop into a
give-up instead of an endless restart storm."""

from __future__ import annotations

from stream.serve.children import RestartPolicy

POLICY = RestartPolicy(initial_s=0.5, max_s=4.0, max_restarts=5, window_s=60.0, stable_s=30.0)


def test_delays_double_up_to_the_maximum():
    backoff = POLICY.backoff()
    delays = [backoff.next_delay(now=t, ran_s=0.1) for t in range(5)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0]


def test_more_restarts_than_the_cap_within_the_window_gives_up():
    backoff = POLICY.backoff()
    assert all(backoff.next_delay(now=t, ran_s=0.1) is not None for t in range(5))
    assert backoff.next_delay(now=5.0, ran_s=0.1) is None
    # Once the early crashes leave the window, restarts are allowed again.
    assert backoff.next_delay(now=61.0, ran_s=0.1) is not None


def test_a_child_that_ran_stably_restarts_after_the_initial_delay_again():
    backoff = POLICY.backoff()
    for t in range(3):
        backoff.next_delay(now=t, ran_s=0.1)
    assert backoff.next_delay(now=100.0, ran_s=POLICY.stable_s) == POLICY.initial_s
