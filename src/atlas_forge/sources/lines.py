"""jsonl and text: one record per line (blank lines skipped). Decoded through sources.codecs
(`encoding:`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from atlas_forge.sources.base import RawRow
from atlas_forge.sources.codecs import TextFile, rejects_if_undecodable
from atlas_forge.sources.files import per_file
from atlas_forge.sources.registry import register


def read_jsonl(path: str, encoding: str | None = None) -> Iterator[RawRow]:
    tf = TextFile(path, encoding)
    yield from rejects_if_undecodable(tf, _read_jsonl(tf))


def _read_jsonl(tf: TextFile) -> Iterator[RawRow]:
    path = tf.path
    for line in tf.lines():
        text = line.text.rstrip("\r\n")
        if not text.strip():
            continue
        if line.error:
            yield RawRow(path, line.number, None, line.error, text)
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            yield RawRow(path, line.number, None, f"unparseable line: {e.msg} at column {e.colno}", text)
            continue
        if not isinstance(obj, dict):
            kind = type(obj).__name__
            yield RawRow(path, line.number, None, f"unparseable line: not a JSON object (a {kind})", text)
            continue
        yield RawRow(path, line.number, obj)


def read_text(path: str, encoding: str | None = None) -> Iterator[RawRow]:
    tf = TextFile(path, encoding)
    yield from rejects_if_undecodable(tf, _read_text(tf))


def _read_text(tf: TextFile) -> Iterator[RawRow]:
    for line in tf.lines():
        text = line.text.rstrip("\r\n")
        if not text.strip():
            continue
        if line.error:
            yield RawRow(tf.path, line.number, None, line.error, text)
            continue
        yield RawRow(tf.path, line.number, {"text": text})


@register("jsonl", text=True)
@per_file
def _read_jsonl_file(cfg: Any, path: str) -> Iterator[RawRow]:
    yield from read_jsonl(path, cfg.encoding)


@register("text", text=True)
@per_file
def _read_text_file(cfg: Any, path: str) -> Iterator[RawRow]:
    yield from read_text(path, cfg.encoding)
