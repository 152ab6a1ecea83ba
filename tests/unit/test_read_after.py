"""``X-Ringlog-After``: a position list (as every ``X-Ringlog-Position`` writes one) or
``head``, read back exactly; anything else refused with the part that is wrong."""

from __future__ import annotations

import pytest

from ringlog.streams.head import HEAD, PositionRefused, ReadAfter, positions_text


def test_a_position_list_reads_back_what_was_written() -> None:
    positions = {("p.calls", 3): 1235, ("p.abt", 0): 7, ("a/b.c", 11): 0}
    assert ReadAfter.parse(positions_text(positions)) == ReadAfter(positions)
    assert positions_text(positions) == "a/b.c/11:0,p.abt/0:7,p.calls/3:1235"


def test_a_partition_named_twice_keeps_the_further_offset() -> None:
    assert ReadAfter.parse("t/1:9, t/1:4").positions == {("t", 1): 9}


@pytest.mark.parametrize("blank", [None, "", "  "])
def test_nothing_asks_for_own_writes_only(blank: str | None) -> None:
    assert ReadAfter.parse(blank) == ReadAfter()
    assert not ReadAfter.parse(blank).head


@pytest.mark.parametrize("head", ["head", "HEAD", " Head "])
def test_head_asks_for_the_end_of_the_log(head: str) -> None:
    assert ReadAfter.parse(head) == HEAD


@pytest.mark.parametrize(
    "bad", ["calls", "calls/1", "calls/x:1", "calls/1:-4", "/1:4", "calls/1:4,,", "calls:1/4"]
)
def test_anything_else_is_refused_naming_the_part(bad: str) -> None:
    with pytest.raises(PositionRefused, match="topic/partition:next_offset"):
        ReadAfter.parse(bad)
