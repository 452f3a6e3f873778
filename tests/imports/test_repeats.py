"""The search for repeated match keys while rows are staged: every repeated key is a candidate, whatever the batches."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from tasks.imports import repeats
from tasks.imports.repeats import RepeatedKeys, supported


def batch(emails: list[str | None], kind: pa.DataType | None = None) -> pa.RecordBatch:
    return pa.record_batch({"email": pa.array(emails, kind or pa.string())})


def test_a_keys_slot_depends_on_its_value_alone_whatever_the_batch_or_offset():
    keys = RepeatedKeys(["email"], 1_000)
    values = ["ann@example.com", None, "", "bob@example.com", "zoë@example.com"]
    alone = [keys.slots(batch([v])).to_pylist()[0] for v in values]
    sliced = keys.slots(batch(["x", *values, "y"]).slice(1, len(values)))  # the offsets do not start at zero
    assert sliced.to_pylist() == alone and alone[1] is None
    assert len({s for s in alone if s is not None}) == 4  # 2^16 slots: these four do not happen to share one


def test_keys_repeated_across_batches_or_within_one_are_candidates_and_empty_keys_never():
    keys = RepeatedKeys(["email"], 1_000)
    first = keys.slots(batch(["a@x.com", "b@x.com", "c@x.com", None, "d@x.com", "d@x.com"]))
    second = keys.slots(batch(["e@x.com", "A@x.com", "b@x.com", None], pa.large_string()))
    found = set(keys.repeated().tolist())

    assert first[1].as_py() in found and first[4].as_py() in found  # again in the next batch; twice in one batch
    assert second[2].as_py() == first[1].as_py()  # string and large_string hash alike
    assert not {first[i].as_py() for i in (0, 2)} & found  # a@x.com and A@x.com differ, as in SQL


def test_several_key_columns_and_whole_numbers_hash_together():
    keys = RepeatedKeys(["id", "email"], 1_000)
    keys.slots(pa.record_batch({"id": pa.array([1, 2], pa.int64()), "email": ["a@x.com", "a@x.com"]}))
    again = keys.slots(pa.record_batch({"id": pa.array([2, 3], pa.int64()), "email": ["a@x.com", "a@x.com"]}))
    assert again[0].as_py() in set(keys.repeated().tolist())


def test_the_bitsets_grow_with_the_file_up_to_their_cap():
    assert RepeatedKeys(["email"], 10)._seen.nbytes == (1 << repeats.MIN_SLOT_BITS) // 8
    assert RepeatedKeys(["email"], 10_000_000)._seen.nbytes == (1 << repeats.MAX_SLOT_BITS) // 8 == 16 * 1024**2


@pytest.mark.parametrize(
    ("kind", "ok"),
    [(pa.string(), True), (pa.int64(), True), (pa.timestamp("us"), True), (pa.date32(), True), (pa.float64(), False), (pa.bool_(), False)],
)
def test_only_keys_that_hash_as_sql_compares_them_are_searched(kind, ok):
    assert supported([kind]) is ok  # -0.0 = 0.0 in SQL, not in their bytes


def test_every_slot_set_is_listed():
    keys = RepeatedKeys(["email"], 10)
    keys._again[[0, 5]] = [0b1000_0001, 0b0000_0100]
    assert keys.repeated().tolist() == [0, 7, 42]
    assert keys.repeated().dtype == np.int64
