"""What every reader yields (`RawRow`) and the error it raises for a file it cannot read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class SourceFileError(ValueError):
    """A file that cannot be read as configured. The message names the file and, where there is
    one, the line and byte, and says which source key would fix it. A ValueError, so the CLI prints
    it as one line."""


@dataclass(frozen=True)
class RawRow:
    file: str
    line: int
    values: dict[Any, Any] | None  # column name (or position when header is false) -> value
    error: str | None = None  # why the record could not be read; values is then None
    raw: str = ""  # the record's text when it could not be parsed, for the reject table
    config: str | None = None  # hf: the dataset configuration the row came from (e.g. a subject)
