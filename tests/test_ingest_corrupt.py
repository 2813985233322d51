"""Corrupt and oddly encoded files through the real ingest (readers + mapping), as Darija data
arrives: exported from Windows in cp1256, saved by Excel as UTF-16 or .xlsx, cut off mid-transfer.

Every case ends one of two ways, and the test says which:
- an error that names the file and the line and byte (or cell) and says what to set, or
- rows, with every unreadable record in the rejects with a reason, `read = ingested + rejected`,
  and the line of every record accounted for (no row lost silently).
"""

from __future__ import annotations

import io
import json
import random
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import openpyxl
import polars as pl
import pytest

from atlas_forge import ingest, records
from atlas_forge.cli import main

AR = ["زوين بزاف", "خايب بزاف", "مزيان", "واش كاين شي حاجة", "عادي"]


def _sentiment(path: Path, **kw) -> dict:
    return {
        "id": "s",
        "kind": "csv",
        "path": str(path),
        "role": "native",
        "task": "sentiment",
        "lang": "ary_Arab",
        "columns": {"text": "text", "label": "label"},
        "labels": {"1": "positive", "-1": "negative"},
        **kw,
    }


def _raw(path: Path, kind: str, **kw) -> dict:
    return {
        "id": "r",
        "kind": kind,
        "path": str(path),
        "role": "raw",
        "task": "raw",
        "lang": "ary_Arab",
        "columns": {"text": "text"},
        **kw,
    }


def _csv(rows: list[tuple[str, str]], header: str = "text,label", nl: str = "\n") -> str:
    return nl.join([header, *(f"{t},{lab}" for t, lab in rows)]) + nl


def _xlsx(rows: list[list], title: str = "Sheet1") -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = title
    for r in rows:
        ws.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _xlsx_with_broken_sheet() -> bytes:
    """A valid zip and workbook whose sheet XML stops mid-element (a cut-off save)."""
    good = zipfile.ZipFile(io.BytesIO(_xlsx([["text", "label"], [AR[0], 1], [AR[1], -1]])))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for item in good.infolist():
            data = good.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = data[: len(data) // 2]
            z.writestr(item, data)
    return out.getvalue()


def _xlsx_with_wrong_dimension() -> bytes:
    """A sheet whose stored <dimension> claims A1:A1 (some writers get it wrong) over 4 rows."""
    good = zipfile.ZipFile(io.BytesIO(_xlsx([["text", "label"], [AR[0], 1], [AR[1], -1], [AR[2], 1]])))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for item in good.infolist():
            data = good.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data, n = re.subn(rb'<dimension ref="[A-Z0-9:]+"', b'<dimension ref="A1:A1"', data)
                assert n == 1
            z.writestr(item, data)
    return out.getvalue()


@dataclass
class Case:
    name: str
    content: bytes
    spec: Callable[[Path], dict]
    suffix: str = ".csv"
    # outcome 1: an error whose message matches every pattern (the file's path is always checked)
    error: list[str] = field(default_factory=list)
    # outcome 2: (line, reason pattern or None when ingested) for every record, in file order
    rows: list[tuple[int, str | None]] = field(default_factory=list)


CASES = [
    Case(
        "truncated_quote_at_eof",
        _csv([(AR[0], "1")]).encode() + f'"{AR[1]},1\n{AR[2]},-1\n{AR[3]},1\n'.encode(),
        _sentiment,
        # the unclosed quote on line 3 swallows lines 3-5 into one record; the reason says so
        rows=[
            (2, None),
            (3, r"1 fields, header has 2; a quote opened on line 3 runs to line 5, merging lines 3-5"),
        ],
    ),
    Case(
        "wrong_field_counts",
        _csv([(AR[0], "1"), (AR[1], "1,extra"), (AR[2], "-1")]).encode() + f"{AR[3]}\n".encode(),
        _sentiment,
        rows=[(2, None), (3, "3 fields, header has 2"), (4, None), (5, "1 fields, header has 2")],
    ),
    Case(
        "nul_in_header",
        b"te\x00xt,label\n" + _csv([(AR[0], "1")], header="").encode()[1:],
        _sentiment,
        error=[r"line 1: unreadable header: NUL byte at line 1, column 3, byte offset 2"],
    ),
    Case(
        "nul_in_body",
        _csv([(AR[0], "1")]).encode() + b"ab\x00c,1\n" + f"{AR[2]},-1\n".encode(),
        _sentiment,
        # "text,label\n" is 11 bytes, the first row 20 (two-byte Arabic letters): the NUL is byte 33
        rows=[(2, None), (3, r"NUL byte at line 3, column 3, byte offset 33"), (4, None)],
    ),
    Case(
        "utf16le_without_bom_or_encoding",
        _csv([(AR[0], "1"), (AR[1], "-1")]).encode("utf-16-le"),
        _sentiment,
        error=[r"line 1, byte 1: NUL byte", "UTF-16-LE without a byte-order mark", "encoding: utf-16-le"],
    ),
    Case(
        "utf16le_without_bom_encoding_set",
        _csv([(AR[0], "1"), (AR[1], "-1")]).encode("utf-16-le"),
        lambda p: _sentiment(p, encoding="utf-16"),
        rows=[(2, None), (3, None)],
    ),
    Case(
        "utf16be_without_bom_encoding_set",
        _csv([(AR[0], "1"), (AR[1], "-1")]).encode("utf-16-be"),
        lambda p: _sentiment(p, encoding="utf-16"),
        rows=[(2, None), (3, None)],
    ),
    Case(
        "utf16le_bom_crlf",  # what Excel's "Unicode text" export writes
        _csv([(AR[0], "1"), (AR[1], "-1")], header="text\tlabel", nl="\r\n")
        .replace(",", "\t")
        .encode("utf-16"),
        lambda p: _sentiment(p, kind="tsv"),
        suffix=".txt",
        rows=[(2, None), (3, None)],
    ),
    Case(
        "utf16be_bom",
        b"\xfe\xff" + _csv([(AR[0], "1")]).encode("utf-16-be"),
        _sentiment,
        rows=[(2, None)],
    ),
    Case(
        "utf8_bom",  # the BOM must not end up inside the first column's name
        b"\xef\xbb\xbf" + _csv([(AR[0], "1"), (AR[1], "-1")]).encode(),
        _sentiment,
        rows=[(2, None), (3, None)],
    ),
    Case(
        "utf32le_bom_jsonl",
        "\ufeff".encode("utf-32-le")
        + "".join(json.dumps({"text": t}) + "\n" for t in AR[:2]).encode("utf-32-le"),
        lambda p: _raw(p, "jsonl"),
        suffix=".jsonl",
        rows=[(1, None), (2, None)],
    ),
    Case(
        "bom_contradicts_encoding",
        _csv([(AR[0], "1")]).encode("utf-16"),
        lambda p: _sentiment(p, encoding="cp1256"),
        error=[r"line 1, byte 0: starts with a UTF-16-LE byte-order mark", "encoding: cp1256"],
    ),
    Case(
        "cp1256_without_encoding",
        _csv([(AR[0], "1"), (AR[1], "-1"), (AR[2], "1")]).encode("cp1256"),
        _sentiment,
        error=[
            r"none of its 3 records decodes as utf-8",
            r"byte 0x[0-9a-f]+ at line 2, column 1, byte offset 11",
            r"set `encoding: cp1256`",
        ],
    ),
    Case(
        "cp1256_with_encoding",
        _csv([(AR[0], "1"), (AR[1], "-1"), (AR[2], "1")]).encode("cp1256"),
        lambda p: _sentiment(p, encoding="cp1256"),
        rows=[(2, None), (3, None), (4, None)],
    ),
    Case(
        "cp1256_arabic_header_without_encoding",
        _csv([(AR[0], "1")], header="النص,label").encode("cp1256"),
        lambda p: _sentiment(p, columns={"text": "النص", "label": "label"}),
        error=[r"line 1: unreadable header: byte 0x[0-9a-f]+ at line 1, column 1, byte offset 0", "cp1256"],
    ),
    Case(
        "invalid_utf8_mid_file",
        _csv([(AR[0], "1")]).encode() + b"caf\xe9 \xff,1\n" + _csv([(AR[1], "-1")], header="").encode()[1:],
        _sentiment,
        rows=[
            (2, None),
            (3, r"encoding: byte 0xe9 at line 3, column 4, byte offset 34 is not valid utf-8"),
            (4, None),
        ],
    ),
    Case(
        "invalid_utf8_in_quoted_multiline_record",
        _csv([(AR[0], "1")]).encode()
        + b'"first\nsec\xffond",1\n'
        + _csv([(AR[1], "-1")], header="").encode()[1:],
        _sentiment,
        rows=[(2, None), (3, r"encoding: byte 0xff at line 4"), (5, None)],
    ),
    Case("empty_file", b"", _sentiment, error=[r"line 1: empty file \(0 bytes\); expected a header line"]),
    Case(
        "empty_jsonl", b"", lambda p: _raw(p, "jsonl"), suffix=".jsonl", error=["source 'r': no records in"]
    ),
    Case("only_a_bom", b"\xef\xbb\xbf", _sentiment, error=[r"line 1: empty file"]),
    Case("header_only", b"text,label\r\n", _sentiment, error=["source 's': no records in", "header-only"]),
    Case(
        "binary_garbage_as_csv",
        random.Random(13).randbytes(8192),
        _sentiment,
        error=[r"line \d+, byte \d+: byte 0x[0-9a-f]{2}; not utf-8 text", "control characters"],
    ),
    Case(
        "binary_garbage_as_text",
        random.Random(14).randbytes(8192),
        lambda p: _raw(p, "text"),
        suffix=".txt",
        error=[r"line \d+, byte \d+: byte 0x[0-9a-f]{2}; not utf-8 text"],
    ),
    Case(
        "bad_json_lines",
        (
            json.dumps({"text": AR[0]})
            + "\n{not json\n"
            + '{"text": "cut off\n\n'
            + json.dumps({"text": AR[1]})
            + "\n"
        ).encode(),
        lambda p: _raw(p, "jsonl"),
        suffix=".jsonl",
        rows=[
            (1, None),
            (2, r"unparseable line: Expecting property name .* at column 2"),
            (3, "Unterminated string"),
            (5, None),
        ],
    ),
    Case(
        "json_not_objects",
        ("[1, 2]\n" + '"a string"\n' + "42\n" + "null\n" + json.dumps({"text": AR[0]}) + "\n").encode(),
        lambda p: _raw(p, "jsonl"),
        suffix=".jsonl",
        rows=[
            (1, r"not a JSON object \(a list\)"),
            (2, r"not a JSON object \(a str\)"),
            (3, r"not a JSON object \(a int\)"),
            (4, r"not a JSON object \(a NoneType\)"),
            (5, None),
        ],
    ),
    Case(
        "nul_in_jsonl",
        (json.dumps({"text": AR[0]}) + "\n").encode() + b'{"text": "a\x00b"}\n',
        lambda p: _raw(p, "jsonl"),
        suffix=".jsonl",
        rows=[(1, None), (2, r"NUL byte at line 2, column 12, byte offset \d+")],
    ),
    Case(
        "mixed_line_endings_csv",  # \r\n, \n, a lone \r (old Mac), and a \r inside quotes
        f'text,label\r\n{AR[0]},1\n{AR[1]},-1\r{AR[2]},1\r\n"{AR[3]}\r{AR[4]}",-1\rlast,1'.encode(),
        _sentiment,
        rows=[(2, None), (3, None), (4, None), (5, None), (7, None)],
    ),
    Case(
        "mixed_line_endings_text",
        f"{AR[0]}\r\n{AR[1]}\r{AR[2]}\n\r\n{AR[3]}".encode(),
        lambda p: _raw(p, "text"),
        suffix=".txt",
        rows=[(1, None), (2, None), (3, None), (5, None)],
    ),
    Case(
        "xlsx_given_as_csv",
        _xlsx([["text", "label"], [AR[0], 1]]),
        _sentiment,
        error=[r"line 1, byte 0: not a text file, it is a zip archive", "kind: xlsx"],
    ),
    Case(
        "corrupt_xlsx_truncated",
        _xlsx([["text", "label"], [AR[0], 1]])[:700],
        lambda p: _sentiment(p, kind="xlsx"),
        suffix=".xlsx",
        error=[r"not a readable \.xlsx workbook \(BadZipFile"],
    ),
    Case(
        "corrupt_xlsx_sheet_xml",
        _xlsx_with_broken_sheet(),
        lambda p: _sentiment(p, kind="xlsx"),
        suffix=".xlsx",
        error=[r"sheet 'Sheet1': after row \d+: unreadable sheet data"],
    ),
    Case(
        "legacy_xls_as_xlsx",
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504),
        lambda p: _sentiment(p, kind="xlsx"),
        suffix=".xls",
        error=[r"byte 0: a legacy Excel file \(\.xls"],
    ),
    Case(
        "xlsx_bad_rows",  # blank rows skipped, extra cells and Excel error values rejected
        _xlsx(
            [["text", "label"], [AR[0], 1], [None, None], [AR[1], -1, "stray"], [AR[2], "#N/A"], [AR[3], -1]]
        ),
        lambda p: _sentiment(p, kind="xlsx"),
        suffix=".xlsx",
        rows=[(2, None), (4, "3 cells, header has 2"), (5, r"excel error value #N/A in cell B5"), (6, None)],
    ),
    Case(
        "xlsx_wrong_dimension",  # trusting the stored dimension would drop rows 2-4 without a word
        _xlsx_with_wrong_dimension(),
        lambda p: _sentiment(p, kind="xlsx", columns={"text": "text", "label": "label"}),
        suffix=".xlsx",
        rows=[(2, None), (3, None), (4, None)],
    ),
    Case(
        "corrupt_parquet",
        b"PAR1" + random.Random(3).randbytes(200) + b"PAR1",
        lambda p: _raw(p, "parquet"),
        suffix=".parquet",
        error=[r"not a readable Parquet file"],
    ),
    Case(
        "invisible_char_in_header",  # a zero-width space copied from a web page into a column name
        _csv([(AR[0], "1")], header="\u200btext,label").encode(),
        _sentiment,
        error=[r"has '\\u200btext' \(line 1, column 1\), which differs by invisible characters \(U\+200B\)"],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_corrupt_input_ends_in_named_error_or_reasoned_rejects(case: Case, tmp_path):
    assert bool(case.error) != bool(case.rows), "a case expects an error or rows, not both"
    path = tmp_path / f"{case.name}{case.suffix}"
    path.write_bytes(case.content)
    src = ingest.parse_source(case.spec(path))
    if case.error:
        with pytest.raises(ValueError) as info:
            ingest.ingest_rows(src, ingest.read_rows(src))
        message = str(info.value)
        assert str(path) in message, message
        for pattern in case.error:
            assert re.search(pattern, message), f"{pattern!r} not in: {message}"
        return
    out, rej, n_read = ingest.ingest_rows(src, ingest.read_rows(src))
    assert n_read == out.height + rej.height  # read = ingested + rejected
    assert n_read == len(case.rows)
    got = sorted(
        [(records.load_meta(m)["line"], None) for m in out["meta"]]
        + [(records.load_meta(m)["line"], r) for m, r in zip(rej["meta"], rej["reason"], strict=True)],
        key=lambda x: x[0],
    )
    assert [line for line, _ in got] == [line for line, _ in case.rows]  # every record's line accounted for
    for (line, reason), (_, pattern) in zip(got, case.rows, strict=True):
        if pattern is None:
            assert reason is None, f"line {line} rejected: {reason}"
        else:
            assert reason is not None and re.search(pattern, reason), (
                f"line {line}: {reason!r} !~ {pattern!r}"
            )
    assert (rej["phase"] == "ingest").all() if rej.height else True
    records.validate(out, "out", "ingest")
    records.validate(rej, "rej", "ingest", rejects=True)


def test_enough_kinds_of_corruption():
    assert len(CASES) >= 15
    assert sum(bool(c.error) for c in CASES) >= 5 and sum(bool(c.rows) for c in CASES) >= 5


def test_decoded_text_is_the_original(tmp_path):
    """Reading a file in its encoding gives back the text written, with no BOM or '\\r' left over."""
    rows = [(AR[0], "1"), (AR[1], "-1")]
    for name, data, extra in [
        ("cp1256", _csv(rows, nl="\r\n").encode("cp1256"), {"encoding": "cp1256"}),
        ("utf16", _csv(rows, nl="\r\n").encode("utf-16"), {}),
        ("utf8sig", _csv(rows).encode("utf-8-sig"), {"encoding": "utf-8"}),
        ("utf16be", _csv(rows).encode("utf-16-be"), {"encoding": "utf-16-be"}),
    ]:
        path = tmp_path / f"{name}.csv"
        path.write_bytes(data)
        src = ingest.parse_source(_sentiment(path, **extra))
        out, rej, _ = ingest.ingest_rows(src, ingest.read_rows(src))
        assert rej.height == 0, (name, rej["reason"].to_list())
        assert [m[0]["content"] for m in out["messages"].to_list()] == [AR[0], AR[1]], name
        assert [records.load_meta(m)["label"] for m in out["meta"]] == ["positive", "negative"], name


def test_xlsx_sheet_by_name_and_index(tmp_path):
    wb = openpyxl.Workbook()
    wb.active.title = "notes"
    wb.active.append(["nothing here"])
    ws = wb.create_sheet("data")
    ws.append([None])  # a blank first row: the header is the first non-blank one
    ws.append(["label", "text"])
    ws.append([1, AR[0]])
    ws.append([-1, AR[1]])
    path = tmp_path / "d.xlsx"
    wb.save(path)
    for sheet in ("data", 1):
        src = ingest.parse_source(_sentiment(path, kind="xlsx", sheet=sheet))
        out, rej, n = ingest.ingest_rows(src, ingest.read_rows(src))
        assert (n, out.height, rej.height) == (2, 2, 0)
        assert [records.load_meta(m)["line"] for m in out["meta"]] == [3, 4]
        assert [m[0]["content"] for m in out["messages"].to_list()] == AR[:2]
    src = ingest.parse_source(_sentiment(path, kind="xlsx", sheet="Data"))
    with pytest.raises(ValueError, match=r"no sheet 'Data' \(sheets: notes, data\)"):
        ingest.ingest_rows(src, ingest.read_rows(src))
    src = ingest.parse_source(_sentiment(path, kind="xlsx"))  # first sheet: no 'text' column
    with pytest.raises(ValueError, match=r"column 'text', not in the header of .*d\.xlsx \('nothing here'\)"):
        ingest.ingest_rows(src, ingest.read_rows(src))


def test_cli_prints_one_line_naming_file_and_byte(tmp_path, capsys):
    path = tmp_path / "u16.csv"
    path.write_bytes(_csv([(AR[0], "1")]).encode("utf-16-le"))
    out = tmp_path / "o.parquet"
    rc = main(
        [
            "ingest",
            "--params",
            json.dumps({"ingest": {"source": _sentiment(path)}}),
            "--out",
            str(out),
            "--rejects",
            str(tmp_path / "x.parquet"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2 and not out.exists()
    assert err.count("\n") == 0 and str(path) in err and "byte 1" in err and "encoding: utf-16-le" in err


def test_rejects_keep_the_unreadable_text(tmp_path):
    """A reject shows what was dropped: the undecodable line, best-effort decoded, NUL made visible."""
    path = tmp_path / "r.txt"
    path.write_bytes(f"{AR[0]}\n".encode() + b"caf\xe9\n" + b"a\x00b\n")
    src = ingest.parse_source(_raw(path, "text"))
    out, rej, n = ingest.ingest_rows(src, ingest.read_rows(src))
    assert (n, out.height, rej.height) == (3, 1, 2)
    assert [m[0]["content"] for m in rej["messages"].to_list()] == ["caf\ufffd", "a\ufffdb"]
    assert pl.Series(rej["reason"]).str.contains("line").all()
