"""xlsx: Excel workbooks through openpyxl, one record per non-blank row of one sheet."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from atlas_forge.sources.base import RawRow, SourceFileError
from atlas_forge.sources.files import check_header, per_file
from atlas_forge.sources.registry import register


@contextlib.contextmanager
def _workbook(path: str) -> Iterator[Any]:
    """An openpyxl workbook (read-only, cached cell values), or SourceFileError naming the file."""
    import openpyxl  # only xlsx sources pay for the import

    with open(path, "rb") as fh:
        if fh.read(8).startswith(b"\xd0\xcf\x11\xe0"):
            raise SourceFileError(
                f"{path}: byte 0: a legacy Excel file (.xls, BIFF), which kind xlsx does not read: "
                "save it as .xlsx or export it as CSV"
            )
        fh.seek(0)
        try:
            # A file object skips openpyxl's check of the file name's extension; the content decides.
            wb = openpyxl.load_workbook(fh, read_only=True, data_only=True)
        except Exception as e:  # zipfile, XML and KeyError failures all mean "not a workbook"
            raise SourceFileError(f"{path}: not a readable .xlsx workbook ({type(e).__name__}: {e})") from e
        try:
            yield wb
        finally:
            wb.close()


def _worksheet(path: str, wb: Any, sheet: str | int | None) -> Any:
    names = wb.sheetnames
    if sheet is None:
        return wb.worksheets[0]
    if isinstance(sheet, int):
        if not 0 <= sheet < len(names):
            raise SourceFileError(f"{path}: no sheet at index {sheet} (sheets: {', '.join(names)})")
        return wb.worksheets[sheet]
    if sheet not in names:
        raise SourceFileError(f"{path}: no sheet {sheet!r} (sheets: {', '.join(names)})")
    return wb[sheet]


def _sheet_rows(path: str, ws: Any) -> Iterator[tuple[int, list[Any], list[Any]]]:
    """(row number, cells, values without trailing empties) per non-blank row of a sheet."""
    # Read-only mode trusts the <dimension> a writer stored, and some writers store a wrong one,
    # which would cut rows off silently: read what the sheet actually holds instead.
    ws.reset_dimensions()
    rows = ws.iter_rows(min_row=1)
    number = 0
    while True:
        try:
            cells = next(rows)
        except StopIteration:
            return
        except Exception as e:  # the sheet's XML is parsed lazily: a damaged part fails here
            raise SourceFileError(
                f"{path} sheet {ws.title!r}: after row {number}: unreadable sheet data "
                f"({type(e).__name__}: {e})"
            ) from e
        number += 1
        # Read-only rows pad the missing ones; a real cell knows its own row, which is authoritative.
        number = next((c.row for c in cells if getattr(c, "row", None)), number)
        values = [c.value for c in cells]
        while values and (values[-1] is None or values[-1] == ""):
            values.pop()
        if values:  # a blank row is not a record, like a blank line
            yield number, list(cells), values


def _header_names(values: list[Any]) -> list[str]:
    return ["" if v is None else str(v).strip() for v in values]


def read_xlsx(path: str, sheet: str | int | None = None, header: bool = True) -> Iterator[RawRow]:
    """An Excel workbook through openpyxl, one record per non-blank sheet row; `line` is the row.

    The header is the first non-blank row. A row with cells beyond the header's columns, or
    holding an Excel error value (#N/A, #DIV/0!, ...), is rejected with the cell named.
    """
    with _workbook(path) as wb:
        ws = _worksheet(path, wb, sheet)
        columns: list[str] | None = None
        for number, cells, values in _sheet_rows(path, ws):
            if header and columns is None:
                columns = _header_names(values)
                continue
            raw = "\t".join("" if v is None else str(v) for v in values)
            errors = [c for c in cells if getattr(c, "data_type", "") == "e"]
            if errors:
                where = f"cell {errors[0].coordinate}"
                yield RawRow(path, number, None, f"excel error value {errors[0].value} in {where}", raw)
            elif columns is None:
                yield RawRow(path, number, dict(enumerate(values)))
            elif len(values) > len(columns):
                reason = f"unparseable line: {len(values)} cells, header has {len(columns)}"
                yield RawRow(path, number, None, reason, raw)
            else:
                # Excel drops trailing empty cells: a short row is complete, its missing cells empty.
                values += [None] * (len(columns) - len(values))
                yield RawRow(path, number, dict(zip(columns, values, strict=True)))


def xlsx_header(path: str, sheet: str | int | None = None) -> list[str]:
    """The header's column names (first non-blank row) of the sheet an xlsx source reads."""
    with _workbook(path) as wb:
        ws = _worksheet(path, wb, sheet)
        for _number, _cells, values in _sheet_rows(path, ws):
            return _header_names(values)
        raise SourceFileError(f"{path} sheet {ws.title!r}: row 1: empty sheet; expected a header row")


@register("xlsx")
@per_file
def _read_xlsx_file(cfg: Any, path: str) -> Iterator[RawRow]:
    if cfg.header:
        check_header(cfg, path, xlsx_header(path, cfg.sheet))
    yield from read_xlsx(path, cfg.sheet, cfg.header)
