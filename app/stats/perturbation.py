"""The cell-key method (docs/statistics.md): a fixed perturbation table, bounded noise, small cells suppressed.

Every resident has a record key in 0..255 held by the population database; for a cell the database answers
its count ``n`` and the sum of its residents' keys. The **cell key** is that sum mod 256, so the same residents
always have the same cell key, whatever query reached them. The published count is a pure function of
``(n, cell key)``:

* ``n == 0``: 0 (only ``total`` can be empty; empty cells are not listed);
* ``1 <= n < k``: suppressed (``count: null``);
* ``n >= k``: ``n + noise(n, cell key)``, the noise read from the table below, in ``[-d, d]`` and never taking
  the count below ``k``.

The table has one base row of 256 entries laid out by noise value: the share of each noise ``j`` in
``[-d, d]`` is proportional to ``2 ** (d - |j|)`` (for d = 2: 10% each at ±2, 20% each at ±1, 40% at 0), so the
noise is symmetric and zero on average for every count of ``k + d`` or more. The rows for ``k <= n < k + d``
are the base row with each entry raised to at least ``k - n`` (those rows are biased upwards: a published
count is never below ``k``). ``k`` and ``d`` are ``DANCU_STATS__THRESHOLD`` and ``DANCU_STATS__MAX_NOISE``.
"""

from __future__ import annotations

KEY_RANGE = 256


def base_row(max_noise: int) -> tuple[int, ...]:
    """The 256 noises of the unconstrained row, ascending (cell key ``c`` gets entry ``c``)."""
    if max_noise == 0:
        return (0,) * KEY_RANGE
    values = range(-max_noise, max_noise + 1)
    weights = [2 ** (max_noise - abs(j)) for j in values]
    total = sum(weights)
    slots = {j: (KEY_RANGE * w) // total for j, w in zip(values, weights, strict=True)}
    slots[0] += KEY_RANGE - sum(slots.values())  # what rounding left over goes to "no noise"
    return tuple(j for j in values for _ in range(slots[j]))


class PerturbationTable:
    """The table for threshold ``k`` (counts 1..k-1 suppressed, none published below k) and noise bound ``d``
    (every published count within d of the true one)."""

    __slots__ = ("_base", "max_noise", "threshold")

    def __init__(self, threshold: int, max_noise: int) -> None:
        if threshold < 1 or max_noise < 0:
            raise ValueError("the threshold must be at least 1 and the noise bound at least 0")
        self.threshold = threshold
        self.max_noise = max_noise
        self._base = base_row(max_noise)

    def noise(self, count: int, cell_key: int) -> int:
        """The table's entry for a count of at least ``threshold``."""
        return max(self._base[cell_key % KEY_RANGE], self.threshold - count)

    def publish(self, count: int, key_sum: int) -> int | None:
        """The published count of a cell of ``count`` residents whose record keys sum to ``key_sum``;
        None when it is suppressed."""
        if count == 0:
            return 0
        if count < self.threshold:
            return None
        return count + self.noise(count, key_sum % KEY_RANGE)
