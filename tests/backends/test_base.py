"""What every adapter's ``get_many`` asks its store for: well-formed IDs, each once, in chunks."""

from __future__ import annotations

from app.backends.base import chunks, ids_to_ask, may_be_a_household, may_be_on_record

A, B, C = "052068000108", "001099000001", "079188000002"


def test_only_well_formed_ids_are_asked_for_each_once_in_order() -> None:
    asked = ids_to_ask([B, "x", A, B, "1" * 13, 52, None, A, C])
    assert asked == [B, A, C]


def test_chunks_keep_the_order_and_the_size() -> None:
    assert list(chunks([A, B, C], 2)) == [[A, B], [C]]
    assert list(chunks([A, B], 2)) == [[A, B]]
    assert list(chunks([], 2)) == []


def test_malformed_ids_and_household_codes_are_never_on_record() -> None:
    assert may_be_on_record(A)
    assert not any(may_be_on_record(v) for v in ("05206800010", "05206800010x", 52068000108, None, " " + A))
    assert may_be_a_household("HO-52_0001")
    assert not any(may_be_a_household(v) for v in ("", "a/b", "x" * 65, 1, None))
