"""Safe extraction against hand-built hostile archives, and the streaming member readers."""

from __future__ import annotations

import json
import stat
import struct
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from collector.datafiles.csvfile import CsvFile
from collector.datafiles.extract import ExtractLimits, UnsafeArchive, extract_zip
from collector.datafiles.formats import read_rows
from collector.datafiles.jsonfile import json_error_reason
from collector.datafiles.rows import Row, bounded_lines


def make_zip(path: Path, entries: list[tuple[str | zipfile.ZipInfo, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for name, data in entries:
            bundle.writestr(name, data)
    return path


def refuse(archive: Path, target: Path, reason: str, **limits: int | float) -> UnsafeArchive:
    with pytest.raises(UnsafeArchive) as caught:
        extract_zip(archive, target, ExtractLimits(**limits))  # type: ignore[arg-type]
    assert caught.value.reason == reason, caught.value
    assert not target.exists()
    assert not target.with_name(target.name + ".partial").exists()
    return caught.value


# --- extraction -----------------------------------------------------------------------------


def test_a_plain_archive_extracts_with_its_folders(tmp_path: Path) -> None:
    archive = make_zip(
        tmp_path / "ok.zip",
        [("Resume/Resume.csv", b"ID,Category\n1,HR\n"), ("data/data/HR/1.pdf", b"%PDF")],
    )
    members = extract_zip(archive, tmp_path / "out")
    assert [(m.name, m.size) for m in members] == [
        ("Resume/Resume.csv", 17),
        ("data/data/HR/1.pdf", 4),
    ]
    assert (tmp_path / "out/Resume/Resume.csv").read_bytes() == b"ID,Category\n1,HR\n"


def test_only_selected_entries_are_written(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "a.zip", [("a.csv", b"x\n1\n"), ("b.pdf", b"%PDF" * 100)])
    members = extract_zip(archive, tmp_path / "out", select=lambda name: name.endswith(".csv"))
    assert [m.name for m in members] == ["a.csv"]
    assert not (tmp_path / "out/b.pdf").exists()


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../evil.csv", "zip_slip"),
        ("data/../../evil.csv", "zip_slip"),
        ("..\\..\\evil.csv", "zip_slip"),
        ("/etc/cron.d/evil", "absolute_path"),
        ("C:\\Windows\\evil.dll", "absolute_path"),
        ("\\\\server\\share\\evil", "absolute_path"),
        ("ok/\x1bevil.csv", "unsafe_name"),
    ],
)
def test_entries_that_escape_the_target_refuse_the_whole_archive(
    tmp_path: Path, name: str, reason: str
) -> None:
    archive = make_zip(tmp_path / "slip.zip", [("fine.csv", b"a\n1\n"), (name, b"owned")])
    error = refuse(archive, tmp_path / "out", reason)
    assert repr(name) in str(error)
    assert not (tmp_path / "evil.csv").exists()


def test_a_symlink_entry_is_refused(tmp_path: Path) -> None:
    link = zipfile.ZipInfo("link.csv")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    archive = make_zip(tmp_path / "link.zip", [(link, b"/etc/passwd")])
    refuse(archive, tmp_path / "out", "symlink")


def test_a_duplicate_entry_cannot_overwrite_another(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "dup.zip", [("a.csv", b"good"), ("A.csv", b"evil")])
    refuse(archive, tmp_path / "out", "duplicate_entry")
    with pytest.warns(UserWarning, match="Duplicate name"):
        archive = make_zip(tmp_path / "dup2.zip", [("a.csv", b"good"), ("a.csv", b"evil")])
    refuse(archive, tmp_path / "out", "duplicate_entry")


def test_an_encrypted_entry_is_refused(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "enc.zip", [("secret.csv", b"x")])
    raw = bytearray(archive.read_bytes())
    for signature, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        where = raw.index(signature) + flags_at
        struct.pack_into("<H", raw, where, struct.unpack_from("<H", raw, where)[0] | 0x1)
    archive.write_bytes(bytes(raw))
    refuse(archive, tmp_path / "out", "encrypted_entry")


def test_too_many_entries_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "many.zip", [(f"f{i}.csv", b"x") for i in range(30)])
    refuse(archive, tmp_path / "out", "too_many_entries", max_entries=20)


def test_a_zip_bomb_is_stopped_by_its_compression_ratio(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "bomb.zip", [("bomb.csv", b"\0" * (20 * 1024 * 1024))])
    assert archive.stat().st_size < 100_000
    error = refuse(archive, tmp_path / "out", "compression_ratio")
    assert "zip bomb" in str(error)


def test_the_total_uncompressed_size_is_limited(tmp_path: Path) -> None:
    entries = [(f"part{i}.csv", bytes(range(256)) * 4096) for i in range(4)]  # 1 MiB each
    archive = make_zip(tmp_path / "big.zip", entries)
    refuse(archive, tmp_path / "out", "too_large", max_total_bytes=3 * 1024 * 1024)


def test_one_entry_over_the_entry_limit_is_refused(tmp_path: Path) -> None:
    data = bytes(range(256)) * 16384
    archive = make_zip(tmp_path / "one.zip", [("big.csv", data)])
    refuse(archive, tmp_path / "out", "entry_too_large", max_entry_bytes=1024 * 1024)


def test_a_header_that_lies_about_the_size_is_caught(tmp_path: Path) -> None:
    """A bomb that declares a tiny size: the bytes written never exceed the declared size (they
    are counted as they stream), and the CRC of the cut entry refuses the archive."""
    archive = make_zip(tmp_path / "liar.zip", [("bomb.csv", b"A" * 5_000_000)])
    raw = bytearray(archive.read_bytes())
    # Rewrite the uncompressed size to 1000 bytes in the local header and central directory.
    local = raw.index(b"PK\x03\x04")
    struct.pack_into("<I", raw, local + 22, 1000)
    central = raw.index(b"PK\x01\x02")
    struct.pack_into("<I", raw, central + 24, 1000)
    archive.write_bytes(bytes(raw))
    error = refuse(archive, tmp_path / "out", "bad_archive")
    assert "CRC" in str(error) or "size" in str(error).lower()


def test_not_a_zip_is_a_clear_error(tmp_path: Path) -> None:
    archive = tmp_path / "page.zip"
    archive.write_bytes(b"<html>Please accept the dataset rules</html>")
    refuse(archive, tmp_path / "out", "bad_archive")


# --- readers --------------------------------------------------------------------------------


def rows(path: Path, kind: str, offset: int = 0) -> list[Row]:
    return list(read_rows(path, kind, offset))


def test_csv_rows_may_span_lines_and_resume_from_any_row_offset(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_bytes(
        b'\xef\xbb\xbfCategory,Resume\r\n"HR","line one\r\nline two"\r\n'
        b'"Data Science","a, b\r\n\r\nc"\r\nSales,plain\r\n'
    )
    full = rows(path, "csv")
    assert [r.value for r in full] == [
        {"Category": "HR", "Resume": "line one\r\nline two"},
        {"Category": "Data Science", "Resume": "a, b\r\n\r\nc"},
        {"Category": "Sales", "Resume": "plain"},
    ]
    resumed = rows(path, "csv", full[0].end)
    assert resumed == full[1:]
    assert full[-1].end == path.stat().st_size


def test_invalid_utf8_is_counted_per_row_and_the_rest_is_read(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_bytes(b'ID,Text\n1,good\n2,"bad \xff\xfe\nstill bad"\n3,fine\n')
    result = rows(path, "csv")
    assert [(r.value, r.error) for r in result] == [
        ({"ID": "1", "Text": "good"}, ""),
        (None, "invalid_utf8"),
        ({"ID": "3", "Text": "fine"}, ""),
    ]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"a": "caf\xe9"}', "invalid_utf8"),  # Latin-1 inside a JSON string
        (b'{"a": "\xff\xfe"}', "invalid_utf8"),
        (b'{"a": "\xed\xa0\x80"}', "invalid_utf8"),  # an encoded surrogate is not UTF-8
        (b'{"a": 1,,}', "malformed_json"),
        (b'{"a": "caf\xc3\xa9",}', "malformed_json"),  # valid UTF-8, bad JSON
    ],
)
def test_a_line_that_fails_to_decode_is_classified_from_its_bytes(
    tmp_path: Path, line: bytes, reason: str
) -> None:
    """Whatever exception the JSON library raises for it (msgspec changed it in 0.23)."""
    assert json_error_reason(line) == reason
    path = tmp_path / "t.jsonl"
    path.write_bytes(line + b'\n{"a": 2}\n')
    assert [(r.value, r.error) for r in rows(path, "jsonl")] == [(None, reason), ({"a": 2}, "")]
    path = tmp_path / "t.json"
    path.write_bytes(b"[" + line + b', {"a": 2}]')
    assert rows(path, "json")[0].error == reason


def test_a_ragged_csv_row_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("a,b\n1,2\n1,2,3\n")
    assert [r.error for r in rows(path, "csv")] == ["", "csv_ragged_row"]


def test_repeated_csv_header_names_are_made_unique_so_no_column_is_lost(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("name,skill,skill,skill\nAda,math,code,looms\n")
    assert [r.value for r in rows(path, "csv")] == [
        {"name": "Ada", "skill": "math", "skill_2": "code", "skill_3": "looms"}
    ]


def test_a_csv_header_that_is_not_a_record_is_one_drop_reported_once(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_bytes(b"ID,\xff bad\n1,a\n2,b\n")
    [row] = rows(path, "csv")
    assert (row.value, row.error, row.end) == (None, "csv_bad_header", len(b"ID,\xff bad\n"))
    assert rows(path, "csv", row.end) == []  # resumed past it: not counted again


def test_a_csv_header_still_being_written_waits_when_the_file_is_unsettled(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_bytes(b"ID,Te")
    with path.open("rb") as handle:
        table = CsvFile(handle, 1000, settled=False)
        assert (table.start, list(table.rows())) == (0, [])
    path.write_bytes(b"ID,Text\n1,a\n2,b")
    with path.open("rb") as handle:
        table = CsvFile(handle, 1000, settled=False)
        assert table.start == len(b"ID,Text\n")
        assert [r.value for r in table.rows()] == [{"ID": "1", "Text": "a"}]  # 2,b: unfinished


def test_a_huge_csv_field_is_read(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    html = "<li>" + "x" * 300_000 + "</li>"
    path.write_text(f'ID,Resume_html\n1,"{html}"\n')
    [row] = rows(path, "csv")
    assert row.value == {"ID": "1", "Resume_html": html}


def test_jsonl_truncated_and_malformed_lines_are_counted_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": 2,,}\n[1, 2]\n\n{"a": 3}\n{"a": 4, "b": "cut he')
    result = rows(path, "jsonl")
    assert [(r.value, r.error) for r in result] == [
        ({"a": 1}, ""),
        (None, "malformed_json"),
        (None, "not_an_object"),
        ({"a": 3}, ""),
        (None, "truncated_json"),
    ]
    assert rows(path, "jsonl", result[2].end)[0].value == {"a": 3}


def test_jsonl_white_space_around_a_value_and_blank_lines_are_no_error(tmp_path: Path) -> None:
    """A value with spaces, tabs, a CR, a form feed or a vertical tab around it is read; a
    blank or white line is skipped, not counted; the offsets still land after each line."""
    path = tmp_path / "w.jsonl"
    lines = [b'  {"a": 1}\t\r\n', b"\n", b" \t \r\n", b'\x0c{"a": 2}\x0b\n', b'{"a": 3}']
    path.write_bytes(b"".join(lines))
    result = rows(path, "jsonl")
    assert [(r.value, r.error) for r in result] == [({"a": 1}, ""), ({"a": 2}, ""), ({"a": 3}, "")]
    ends = [sum(len(line) for line in lines[: i + 1]) for i in (0, 3, 4)]
    assert [r.end for r in result] == ends


def test_a_jsonl_line_at_the_limit_is_read_and_one_byte_over_it_is_not(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    at_limit = b'{"a": "' + b"x" * 91 + b'"}'  # 100 bytes, then its newline
    over = b'{"a": "' + b"y" * 92 + b'"}'
    path.write_bytes(at_limit + b"\n" + over + b"\n" + at_limit)
    found = list(read_rows(path, "jsonl", max_record_bytes=100))
    assert [(r.error, r.end) for r in found] == [("", 101), ("record_too_large", 203), ("", 303)]


def test_a_json_array_is_streamed_item_by_item_and_resumes(tmp_path: Path) -> None:
    items = [{"t": 'quote " and ] bracket'}, {"nested": {"list": [1, {"x": "}"}]}}, {"u": "é"}]
    path = tmp_path / "a.json"
    path.write_text(json.dumps(items, ensure_ascii=False, indent=1), encoding="utf-8")
    full = rows(path, "json")
    assert [r.value for r in full] == items
    assert rows(path, "json", full[0].end) == full[1:]
    assert rows(path, "json", full[-1].end) == []


def test_json_items_split_across_read_chunks_are_joined(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = [{"t": 'esc \\" q', "n": [1, 2, {"d": "]}"}]}, {"u": "é" * 9}, {"v": None}]
    path = tmp_path / "a.json"
    path.write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    expected = [r.value for r in rows(path, "json")]
    for size in (1, 2, 3, 7, 13):
        monkeypatch.setattr("collector.datafiles.jsonfile.CHUNK", size)
        assert [r.value for r in rows(path, "json")] == expected == items


def test_a_truncated_json_array_keeps_its_complete_items(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text('[{"a": 1}, {"a": 2}, {"a": 3, "b": "cu')
    result = rows(path, "json")
    assert [(r.value, r.error) for r in result] == [
        ({"a": 1}, ""),
        ({"a": 2}, ""),
        (None, "truncated_json"),
    ]


def test_a_json_object_document_is_one_row(tmp_path: Path) -> None:
    path = tmp_path / "resume.json"
    path.write_text('{"basics": {"name": "A"}, "work": []}')
    [row] = rows(path, "json")
    assert row.value == {"basics": {"name": "A"}, "work": []}
    assert rows(path, "json", row.end) == []


def test_a_git_lfs_pointer_is_reported_not_parsed(tmp_path: Path) -> None:
    path = tmp_path / "master_resumes.jsonl"
    path.write_text(
        "version https://git-lfs.github.com/spec/v1\n"
        "oid sha256:e7502eedaf0cba4bdd21d85813cb0d09b134b4abb53355c97c75cc76b5425ae4\n"
        "size 4588\n"
    )
    for kind in ("jsonl", "csv", "json"):
        [row] = rows(path, kind)
        assert row.error == "lfs_pointer"


def write_parquet(path: Path, table: list[dict[str, object]], group: int) -> Path:
    import pyarrow
    import pyarrow.parquet

    pyarrow.parquet.write_table(pyarrow.Table.from_pylist(table), path, row_group_size=group)
    return path


def test_a_parquet_file_is_read_row_by_row_and_resumes_at_a_row(tmp_path: Path) -> None:
    table = [{"n": i, "text": f"row {i}", "tags": ["a", "b"][: i % 3]} for i in range(25)]
    path = write_parquet(tmp_path / "data.parquet", table, group=10)
    everything = rows(path, "parquet")
    assert [r.value for r in everything] == table
    assert [r.end for r in everything] == list(range(1, 26))
    # From row 12 on: the first row group is skipped unread, the second is read from its third.
    assert [r.value for r in rows(path, "parquet", 12)] == table[12:]
    assert rows(path, "parquet", 25) == []


def test_a_file_that_is_not_parquet_is_one_clear_drop(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    path.write_bytes(b"PAR1 but not really")
    [row] = rows(path, "parquet")
    assert row.value is None and row.error == "malformed_parquet" and row.end == 1


# --- records over max_record_bytes ----------------------------------------------------------


def test_a_record_over_the_limit_is_one_drop_in_every_format_and_its_neighbours_are_kept(
    tmp_path: Path,
) -> None:
    big = "x" * 5000
    files = {
        "jsonl": f'{{"n": 1}}\n{{"t": "{big}"}}\n{{"n": 2}}\n',
        "csv": f'n,t\n1,a\n2,"{big}\nstill ""the"" same record"\n3,c\n',
        "json": json.dumps([{"n": 1}, {"t": big}, {"n": 2}]),
    }
    for kind, text in files.items():
        path = tmp_path / f"data.{kind}"
        path.write_text(text)
        found = list(read_rows(path, kind, max_record_bytes=1000))
        assert [r.error for r in found] == ["", "record_too_large", ""], kind
        assert found[-1].end == path.stat().st_size or kind == "json", kind


def test_a_parquet_row_over_the_limit_is_one_drop_before_it_becomes_python(
    tmp_path: Path,
) -> None:
    table = [{"n": i, "t": "y" * (5000 if i == 3 else 10)} for i in range(6)]
    path = write_parquet(tmp_path / "data.parquet", table, group=4)
    found = list(read_rows(path, "parquet", max_record_bytes=1000))
    assert [r.error for r in found] == ["", "", "", "record_too_large", "", ""]
    assert [r.value["n"] for r in found if r.value] == [0, 1, 2, 4, 5]
    assert [r.end for r in found] == [1, 2, 3, 4, 5, 6]
    assert [
        r.value["n"] for r in read_rows(path, "parquet", 4, max_record_bytes=1000) if r.value
    ] == [4, 5]


def test_a_huge_line_is_read_past_without_being_held(tmp_path: Path) -> None:
    path = tmp_path / "huge.jsonl"
    with path.open("wb") as handle:
        handle.write(b'{"n": 1}\n')
        for _ in range(64):  # 64 MiB on one line
            handle.write(b"z" * 1024 * 1024)
        handle.write(b'\n{"n": 2}\n')
    tracemalloc.start()
    try:
        found = list(read_rows(path, "jsonl", max_record_bytes=1024 * 1024))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [r.value for r in found] == [{"n": 1}, None, {"n": 2}]
    assert found[1].error == "record_too_large"
    assert peak < 4 * 1024 * 1024  # a MiB read at a time, not the 64 MiB line


def test_bounded_lines_counts_the_quotes_of_a_line_it_reads_past(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_bytes(b'a\n"' + b"q" * 3000 + b'"" more\nlast')
    with path.open("rb") as handle:
        lines = list(bounded_lines(handle, 100))
    assert lines == [(b"a\n", 2, True, 0), (None, 3000 + 9, True, 3), (b"last", 4, False, 0)]


def test_a_dataset_batch_ends_at_batch_bytes_but_parquet_rows_count_as_rows(
    tmp_path: Path,
) -> None:
    from collector.sources.datasets import read_chunk

    table = [{"n": n, "pad": "p" * 80} for n in range(10)]
    lines = tmp_path / "data.jsonl"
    lines.write_text("".join(json.dumps(row) + "\n" for row in table))
    size = len(json.dumps(table[0])) + 1
    parquet = write_parquet(tmp_path / "data.parquet", table, group=10)
    for path, first in ((lines, 3), (parquet, 10)):
        chunk = read_chunk("hf", "o/d", path.name, path, 0, 0, 100, {}, batch_bytes=3 * size - 10)
        assert [r.payload["n"] for r in chunk.records] == list(range(first)), path.name
        rest = read_chunk("hf", "o/d", path.name, path, chunk.offset, chunk.row, 100, {})
        assert [r.payload["n"] for r in rest.records] == list(range(first, 10))
