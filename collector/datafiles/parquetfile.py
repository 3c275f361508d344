"""The Parquet reader: a row group at a time with pyarrow; its offsets count rows, not bytes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from collector.datafiles.rows import RECORD_TOO_LARGE, Row

PARQUET_BATCH = 1024  # rows converted to Python at a time


def parquet_rows(path: Path, offset: int, limit: int) -> Iterator[Row]:
    """The rows of a Parquet file after the first `offset`; `end` is the rows read so far.

    Row groups wholly before `offset` are skipped from the footer's counts, without reading
    them. A file pyarrow cannot read is one `malformed_parquet` row, past everything. A row
    whose text and binary values add up to more than `limit` bytes is `record_too_large`,
    found from the Arrow batch before it is converted to Python (pyarrow has decoded the
    batch by then: Parquet pages are not read value by value).
    """
    import pyarrow  # here: only Parquet members need it
    import pyarrow.parquet

    position = 0
    try:
        parquet = pyarrow.parquet.ParquetFile(path)
        for group in range(parquet.num_row_groups):
            rows = parquet.metadata.row_group(group).num_rows
            if position + rows <= offset:
                position += rows
                continue
            for batch in parquet.iter_batches(batch_size=PARQUET_BATCH, row_groups=[group]):
                sizes = _row_sizes(batch)
                kept = [size <= limit for size in sizes]
                values = iter(batch.to_pylist() if all(kept) else batch.filter(kept).to_pylist())
                for size, keep in zip(sizes, kept, strict=True):
                    value = next(values) if keep else None
                    position += 1
                    if position <= offset:
                        continue
                    if keep:
                        yield Row(value, position)
                    else:
                        detail = f"a row of {size} bytes, over {limit}"
                        yield Row(None, position, RECORD_TOO_LARGE, detail)
    except (pyarrow.ArrowException, OSError) as error:
        yield Row(None, max(position, offset) + 1, "malformed_parquet", str(error)[:300])


def _row_sizes(batch: Any) -> list[int]:
    """The bytes of each row's string and binary values (top-level columns) in an Arrow batch."""
    import pyarrow
    import pyarrow.compute

    sizes = [0] * batch.num_rows
    for column in batch.columns:
        kind = column.type
        if not (
            pyarrow.types.is_string(kind)
            or pyarrow.types.is_large_string(kind)
            or pyarrow.types.is_binary(kind)
            or pyarrow.types.is_large_binary(kind)
        ):
            continue
        lengths = pyarrow.compute.binary_length(column).fill_null(0).to_pylist()
        sizes = [total + length for total, length in zip(sizes, lengths, strict=True)]
    return sizes
