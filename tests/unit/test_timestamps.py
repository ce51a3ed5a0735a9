"""set_timestamp sets what Timestamp.FromDatetime would, for every kind of moment we keep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from shop_common.serving import set_timestamp

MOMENTS = [
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(2026, 11, 27, 5, 30, 1, 123456, tzinfo=UTC),
    datetime(2026, 11, 27, 5, 30, 1, 999999, tzinfo=UTC),
    datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),  # before the epoch
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2026, 3, 29, 2, 30, tzinfo=timezone(timedelta(hours=-7, minutes=-30))),
]


@pytest.mark.parametrize("moment", MOMENTS, ids=str)
def test_sets_what_from_datetime_sets(moment: datetime) -> None:
    ours, theirs = Timestamp(), Timestamp()
    set_timestamp(ours, moment)
    theirs.FromDatetime(moment)
    assert (ours.seconds, ours.nanos) == (theirs.seconds, theirs.nanos)
    assert ours.ToDatetime(tzinfo=UTC) == moment


def test_overwrites_an_earlier_value() -> None:
    target = Timestamp(seconds=99, nanos=5)
    set_timestamp(target, datetime(1970, 1, 1, 0, 0, 2, tzinfo=UTC))
    assert (target.seconds, target.nanos) == (2, 0)
