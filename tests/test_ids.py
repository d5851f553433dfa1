"""Profile, merge and conflict ids: time-ordered, and never repeated across a fork."""

from __future__ import annotations

import os

import pytest

from identity_graph.resolver import MonotonicIds, _TimeOrderedIds


def test_ids_made_in_a_later_millisecond_sort_later_and_none_repeats() -> None:
    make = _TimeOrderedIds()
    ids = [make() for _ in range(3 * _TimeOrderedIds.BLOCK)]  # several blocks of random bits
    times = [i[:12] for i in ids]
    assert times == sorted(times)
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


# from Python 3.12, forking a process with threads warns (other tests leave idle workers)
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    make = _TimeOrderedIds()
    make()  # the parent holds a block of random bits when it forks
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: one id to the parent, then out without pytest's teardown
        status = 1
        try:
            os.write(write, make().encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    parent = make()
    assert status == 0 and len(child) == 32
    assert child[12:] != parent[12:]


def test_change_ids_sort_in_the_order_they_were_made_even_within_a_millisecond() -> None:
    make = MonotonicIds()
    ids = [make() for _ in range(50_000)]  # many per millisecond
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
