"""The file's repeated match keys, found while its rows stream to the staging table.

Folding the duplicates inside a file needs the rows whose match key repeats.
Grouping the whole stage by the key in SQL was the merge's costliest step but
one on a large file (10M contacts: 12.8 s, a 10M-group hash table spilling to
disk), while a few percent of the rows repeat. So the load hashes each batch's
key on its way to the stage into one of up to 2^27 slots, keeps two bitsets
(slots seen once, slots seen again) and writes each row's slot beside it.
After the last row, the slots seen again are the candidates: every repeated
key is among them (the same key always lands in the same slot), with some keys
that only share a slot with another, which the grouping in SQL then tells
apart. Memory is fixed: two bitsets of at most 16 MB each.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

#: The staging table's column for each row's slot (NULL where a key value is empty: such rows never fold).
SLOT = "__slot__"
MIN_SLOT_BITS = 16
MAX_SLOT_BITS = 27
SLOTS_PER_ROW = 64  # at most one row in 64 shares its slot by chance, up to the cap (10M rows: one in 13)

_P = np.uint64(0x100000001B3)  # FNV-1a's 64-bit prime: combines several key columns' hashes
_MIX = (np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53))  # MurmurHash3's finaliser: every bit counts


def supported(types: list[pa.DataType]) -> bool:
    """Whether keys of these Arrow types hash as SQL compares them (text byte for byte, whole numbers, dates, timestamps)."""
    return all(
        pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_integer(t) or pa.types.is_date(t) or pa.types.is_timestamp(t)
        for t in types
    )


class RepeatedKeys:
    """Slots of the keys seen so far; ``slots`` marks a batch's keys, ``repeated`` lists the candidates at the end."""

    def __init__(self, columns: list[str], expected_rows: int) -> None:
        self.columns = columns
        bits = min(max(int(expected_rows * SLOTS_PER_ROW - 1).bit_length(), MIN_SLOT_BITS), MAX_SLOT_BITS)
        self._shift = np.uint64(64 - bits)
        self._seen = np.zeros((1 << bits) // 8, np.uint8)
        self._again = np.zeros((1 << bits) // 8, np.uint8)

    def slots(self, batch: pa.RecordBatch) -> pa.Array:
        """Each row's slot (int32; null where a key value is null), remembering which slots came up before."""
        names = batch.schema.names
        keys = [batch.column(names.index(c)) for c in self.columns]
        valid = np.ones(batch.num_rows, bool)
        for key in keys:
            if key.null_count:
                valid &= pc.is_valid(key).to_numpy(zero_copy_only=False)
        hashed = np.zeros(batch.num_rows, np.uint64)
        for key in keys:
            hashed = hashed * _P + self._hash(key)
        slots = (_finalise(hashed) >> self._shift).astype(np.int64)
        self._mark(slots[valid])
        return pa.array(slots.astype(np.int32), mask=~valid)

    def repeated(self) -> np.ndarray:
        """The slots that came up more than once, ascending."""
        found = np.flatnonzero(self._again)
        bits = np.unpackbits(self._again[found], bitorder="little").reshape(-1, 8)
        rows, offsets = np.nonzero(bits)
        return (found[rows] * 8 + offsets).astype(np.int64)

    def _mark(self, slots: np.ndarray) -> None:
        byte, bit = slots >> 3, np.left_shift(1, slots & 7).astype(np.uint8)
        ordered = np.sort(slots)
        within = ordered[1:][ordered[1:] == ordered[:-1]]  # a key twice in this batch
        again = np.concatenate([slots[(self._seen[byte] & bit) != 0], within])
        np.bitwise_or.at(self._again, again >> 3, np.left_shift(1, again & 7).astype(np.uint8))
        np.bitwise_or.at(self._seen, byte, bit)

    @staticmethod
    def _hash(key: pa.Array) -> np.ndarray:
        """64-bit hashes of the values: text by its UTF-8 bytes, numbers and dates by their value (pandas' SipHash)."""
        if pa.types.is_string(key.type) or pa.types.is_large_string(key.type):
            values = key.to_numpy(zero_copy_only=False)
        else:
            whole = (
                key.cast(pa.int64()) if pa.types.is_integer(key.type) else key.view(pa.int64() if key.type.bit_width == 64 else pa.int32())
            )
            values = pc.fill_null(whole, 0).to_numpy()
        return pd.util.hash_array(values, categorize=False)


def _finalise(hashed: np.ndarray) -> np.ndarray:
    """Spread every input bit over the top bits the slot is taken from."""
    hashed = hashed ^ (hashed >> np.uint64(33))
    hashed = hashed * _MIX[0]
    hashed = hashed ^ (hashed >> np.uint64(33))
    hashed = hashed * _MIX[1]
    return hashed ^ (hashed >> np.uint64(33))
