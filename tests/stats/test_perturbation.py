"""The perturbation table (app.stats.perturbation; docs/statistics.md): bounded, never below k, symmetric."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.stats.perturbation import KEY_RANGE, PerturbationTable, base_row


@given(
    k=st.integers(1, 50), d=st.integers(0, 10), count=st.integers(0, 10_000), key_sum=st.integers(0, 10**7)
)
def test_published_counts_are_bounded_and_never_small(k: int, d: int, count: int, key_sum: int) -> None:
    published = PerturbationTable(k, d).publish(count, key_sum)
    if count == 0:
        assert published == 0
    elif count < k:
        assert published is None
    else:
        assert published is not None
        assert published >= k
        assert abs(published - count) <= d


@pytest.mark.parametrize("d", [0, 1, 2, 3, 5])
def test_the_base_row_is_symmetric_and_fills_the_key_range(d: int) -> None:
    row = base_row(d)
    assert len(row) == KEY_RANGE
    shares = Counter(row)
    assert set(shares) == set(range(-d, d + 1))
    assert all(shares[j] == shares[-j] for j in range(1, d + 1))
    assert sum(row) == 0  # no bias away from the threshold


def test_the_default_table() -> None:
    shares = Counter(base_row(2))
    assert shares == {0: 104, 1: 51, -1: 51, 2: 25, -2: 25}
    table = PerturbationTable(10, 2)
    assert [table.publish(n, 0) for n in range(9, 14)] == [None, 10, 10, 10, 11]  # cell key 0: noise -2
    assert table.publish(1000, 256 * 7 + 255) == 1002  # cell key 255: noise +2


def test_a_bad_table_is_refused() -> None:
    with pytest.raises(ValueError, match="threshold"):
        PerturbationTable(0, 2)
