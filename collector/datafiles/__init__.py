"""Third-party data files, read safely: the archives they come in and the records inside them.

Everything here is synchronous and file-bound (sources call it from a worker thread), and knows
nothing of sources, cursors or batches: a reader takes a byte offset (a row count for Parquet)
and yields each record with the offset after it, which the caller saves to resume there.

- `extract`: safe extraction of a zip that is treated as hostile (`extract_zip`, `UnsafeArchive`);
- `rows`: what every reader shares: the `Row` it yields, the record-size rule
  (`max_record_bytes`, `record_too_large`), lines cut at that size, Git LFS pointers;
- `csvfile`: the one resumable CSV reader (the inbox's and the dataset sources');
- `jsonfile`: JSON Lines, and JSON arrays cut into items without loading the document;
- `parquetfile`: Parquet, a row group at a time;
- `formats`: which reader reads a file, by its name (`member_kind`, `read_rows`).
"""
