"""The canonical record shared by every table between phases (see DESIGN.md).

`meta` is a JSON string rather than a polars struct: task-specific fields differ per source,
and a struct column would force one union schema on every table and break concatenation.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import polars as pl

MESSAGE = pl.Struct({"role": pl.String, "content": pl.String})

SCHEMA: dict[str, pl.DataType] = {
    "id": pl.String(),
    "source": pl.String(),
    "task": pl.String(),
    "messages": pl.List(MESSAGE),
    "lang": pl.String(),
    "meta": pl.String(),
}
REJECT_SCHEMA: dict[str, pl.DataType] = {**SCHEMA, "reason": pl.String(), "phase": pl.String()}
ROLES = frozenset({"user", "assistant"})

# What a source is for (a params source's `role`), declared once here: ingest's typed config, the
# params schema (rules/schemas/params.schema.yaml, checked equal by a test) and the CLI use this list.
# native: Darija data instructions are built from; eval: benchmark items; chat / eval_chat: English
# chats to translate / to evaluate on; raw: text for the tokenizer and base model; darija_chat: rows
# that are already Darija chat (e.g. MBZUAI-Paris/Darija-SFT-Mixture): ingested, then straight to
# filter and mixture (no split, instruct or translate); generate_docs: documents/posts the generate
# phase asks an LLM about; story: long texts cut into completions; identity: hand-written pairs about
# the assistant, repeated (all three: rules/generate.smk)
SOURCE_ROLES: tuple[str, ...] = (
    "native",
    "eval",
    "chat",
    "eval_chat",
    "raw",
    "darija_chat",
    "generate_docs",
    "story",
    "identity",
)


class RecordSchemaError(ValueError):
    """A table does not follow the canonical schema; the message names file, column and phase."""

    def __init__(self, path: str, phase: str, column: str, problem: str):
        self.path, self.phase, self.column, self.problem = path, phase, column, problem
        super().__init__(f"{path}: column '{column}' {problem} (phase: {phase})")


def record_id(source: str, key: str) -> str:
    """Stable id from the source id and the row's key, so ids survive reruns and reorders."""
    return hashlib.sha256(f"{source}\x1f{key}".encode()).hexdigest()[:16]


def make_record(
    source: str,
    key: str,
    task: str,
    messages: Iterable[Mapping[str, str]],
    lang: str,
    meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "id": record_id(source, key),
        "source": source,
        "task": task,
        "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
        "lang": lang,
        "meta": dump_meta(meta or {}),
    }


def dump_meta(meta: Mapping[str, Any]) -> str:
    # sort_keys: byte-identical output for identical content
    return json.dumps(meta, ensure_ascii=False, sort_keys=True)


def load_meta(meta: str | None) -> dict[str, Any]:
    return json.loads(meta) if meta else {}


def empty(rejects: bool = False) -> pl.DataFrame:
    return pl.DataFrame(schema=REJECT_SCHEMA if rejects else SCHEMA)


def from_rows(rows: list[dict[str, Any]], rejects: bool = False) -> pl.DataFrame:
    schema = REJECT_SCHEMA if rejects else SCHEMA
    if not rows:
        return pl.DataFrame(schema=schema)
    return pl.DataFrame(rows, schema=schema)


def reject(df: pl.DataFrame, reason: str | pl.Expr, phase: str) -> pl.DataFrame:
    """Turn rows into rejects: their canonical fields plus why and where they were dropped."""
    reason_expr = reason if isinstance(reason, pl.Expr) else pl.lit(reason)
    return df.select(list(SCHEMA)).with_columns(
        reason_expr.cast(pl.String).alias("reason"), pl.lit(phase).alias("phase")
    )


def validate(df: pl.DataFrame, path: str, phase: str, rejects: bool = False) -> pl.DataFrame:
    """Check columns, types and message roles; return the table with columns in canonical order."""
    schema = REJECT_SCHEMA if rejects else SCHEMA
    for col, dtype in schema.items():
        if col not in df.columns:
            raise RecordSchemaError(path, phase, col, "is missing")
        if df.schema[col] != dtype:
            raise RecordSchemaError(path, phase, col, f"has type {df.schema[col]}, expected {dtype}")
    extra = [c for c in df.columns if c not in schema]
    if extra:
        raise RecordSchemaError(path, phase, extra[0], "is not part of the canonical schema")
    for col in ("id", "source", "task", "lang"):
        nulls = df[col].null_count()
        if nulls:
            row = df.with_row_index().filter(pl.col(col).is_null())["index"][0]
            raise RecordSchemaError(path, phase, col, f"has {nulls} null value(s), first at row {row}")
    if df.height:
        roles = df.select(pl.col("messages").explode().struct.field("role").alias("r"))["r"]
        bad = roles.drop_nulls().filter(~roles.drop_nulls().is_in(list(ROLES)))
        if bad.len():
            raise RecordSchemaError(
                path, phase, "messages", f"has role '{bad[0]}'; allowed roles are user/assistant"
            )
    return df.select(list(schema))
