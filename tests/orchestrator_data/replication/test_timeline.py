"""A position recorded before a failover against the new primary's timeline history (no server needed;
tests/orchestrator_data/replication/test_follow.py runs it on a real failover)."""

from __future__ import annotations

from orchestrator_data.replication.timeline import Position, SwitchPoint, lsn_to_int, parse_history, verdict

# what PostgreSQL writes to pg_wal/00000003.history: one line per ancestor, tab-separated
HISTORY_3 = "1\t0/3000158\tno recovery target specified\n\n2\t0/5A000A0\tno recovery target specified\n"


def test_a_history_file_reads_as_the_switch_point_of_each_ancestor():
    assert parse_history(HISTORY_3) == [SwitchPoint(1, "0/3000158"), SwitchPoint(2, "0/5A000A0")]
    assert lsn_to_int("16/B374D848") == (0x16 << 32) | 0xB374D848


def test_a_position_before_the_branch_point_is_kept_one_after_it_was_lost():
    now = Position(3, "0/6000000")
    kept = verdict(Position(2, "0/5A000A0"), now, parse_history(HISTORY_3))
    assert not kept.lost and kept.timeline_changed and kept.switch == SwitchPoint(2, "0/5A000A0")
    assert kept.why.endswith("everything recorded is in this history")
    lost = verdict(Position(2, "0/5A000A8"), now, parse_history(HISTORY_3))
    assert lost.lost and "commits after the branch point were lost" in lost.why
    older = verdict(Position(1, "0/3000200"), now, parse_history(HISTORY_3))  # two failovers ago, past its switch
    assert older.lost and older.switch == SwitchPoint(1, "0/3000158")


def test_same_timeline_is_kept_and_an_unknown_history_is_treated_as_lost():
    assert not verdict(Position(3, "0/1"), Position(3, "0/2"), None).lost
    unknown = verdict(Position(2, "0/1"), Position(3, "0/2"), None)
    assert unknown.lost and "unreadable" in unknown.why
    stranger = verdict(Position(7, "0/1"), Position(3, "0/2"), parse_history(HISTORY_3))
    assert stranger.lost and "not an ancestor" in stranger.why


def test_an_unreadable_history_is_unknown_and_the_transaction_goes_on(engine):
    """The session's server is on timeline 1: a history file for timeline 2 is not there, as it is not
    readable without the privilege; the caller's next statement still runs."""
    import sqlalchemy as sa

    from orchestrator_data.replication.timeline import current_position, read_history

    with engine.connect() as conn:
        assert read_history(conn, 1) == []
        assert read_history(conn, 2) is None
        here = current_position(conn)
        assert here is not None and here.timeline >= 1 and "/" in here.lsn
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1
