"""event_log.Batch.after: what a stream's reader sends from what its process delivered, and when
it reads the log instead (pure)."""

from __future__ import annotations

from agents.v1 import run_pb2

from services.api.event_log import Batch


def events(*seqs: int) -> list[run_pb2.RunEvent]:
    return [run_pb2.RunEvent(type="message.delta", seq=seq, text=str(seq)) for seq in seqs]


def seqs(sent: list[run_pb2.RunEvent] | None) -> list[int] | None:
    return None if sent is None else [e.seq for e in sent]


def test_events_that_follow_the_last_one_sent_are_sent() -> None:
    assert seqs(Batch(events(3, 4, 5), read_log=False).after(2)) == [3, 4, 5]


def test_events_the_log_already_gave_are_dropped() -> None:
    assert seqs(Batch(events(3, 4, 5), read_log=False).after(4)) == [5]
    assert seqs(Batch(events(3, 4), read_log=False).after(4)) == []


def test_a_gap_anywhere_reads_the_log() -> None:
    # 4 was committed through another api process, whose notification has not come yet.
    assert Batch(events(3, 5), read_log=False).after(2) is None
    assert Batch(events(4), read_log=False).after(2) is None


def test_commits_delivered_out_of_order_read_the_log() -> None:
    assert Batch(events(5, 6, 3, 4), read_log=False).after(2) is None


def test_a_commit_elsewhere_reads_the_log() -> None:
    assert Batch(events(3), read_log=True).after(2) is None
    assert Batch([], read_log=True).after(2) is None
