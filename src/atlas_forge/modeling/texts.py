"""The text a tiny model's tokenizer and pre-training read: shared by the `tokenizer` and
`base_model` phases, so both see the same documents in the same order."""

from __future__ import annotations

import hashlib
import json

from atlas_forge import io

PHASE = "base_model"  # the phase named in a bad table's error (tokenizer and base_model read the same)


def load_texts(paths: list[str], parallel_texts: bool = False) -> list[str]:
    """Every non-empty message content of the canonical tables, in file and row order. With
    parallel_texts, a row whose meta.texts holds two or more versions gives one document of all of
    them instead, one per line; the order alternates with the row id so both directions are seen."""
    return [text for text, _ in documents(paths, parallel_texts)]


def parallel_documents(paths: list[str]) -> list[str]:
    """Only the documents parallel_texts makes (rows with two or more versions), in row order."""
    return [text for text, parallel in documents(paths, True) if parallel]


def documents(paths: list[str], parallel_texts: bool):
    df = io.read_tables(paths, PHASE)
    metas = df["meta"].to_list() if parallel_texts and "meta" in df.columns else [None] * df.height
    for rid, messages, meta in zip(df["id"].to_list(), df["messages"].to_list(), metas, strict=True):
        versions = _parallel_versions(meta)
        if len(versions) >= 2:
            flip = int(hashlib.sha256(str(rid).encode()).hexdigest(), 16) % 2
            yield "\n".join(reversed(versions) if flip else versions), True
            continue
        for m in messages or []:
            content = (m.get("content") or "").strip()
            if content:
                yield content, False


def _parallel_versions(meta) -> list[str]:
    if not meta:
        return []
    if isinstance(meta, str):
        meta = json.loads(meta)
    found = meta.get("texts") or {}
    return [found[k].strip() for k in sorted(found) if isinstance(found[k], str) and found[k].strip()]
