"""ingest: read one source and map its columns onto the canonical record.

Every record the reader yields ends up either in the ingested table or in the rejects table with a
reason, so `read = ingested + rejected` holds and is checked. Record shapes per task are listed in
`_build`; `meta` always carries `file` and `line` so a row can be found again in its source.

Ids: `record_id(source, "<file>:<line>")`, or `record_id(source, "key:<value>")` when the source maps
a `key` column (stable across re-exports that reorder lines).
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import polars as pl

from atlas_forge import io, records, sources
from atlas_forge.config import ConfigError, parse
from atlas_forge.phase import PATH, Phase, by_id, entries

log = logging.getLogger(__name__)
PHASE = "ingest"

# task -> canonical fields its `columns` must map (translation maps language codes instead)
REQUIRED = {
    "sentiment": ("text", "label"),
    "summarization": ("text", "summary"),
    "mcq": ("question", "choices", "answer"),
    "raw": ("text",),
    # a benchmark in its Hub schema (DarijaMMLU, DarijaBench, ...): the whole row is kept as meta.doc;
    # `text` names the field decontamination matches (a `messages` field: its first turn)
    "benchmark": ("text",),
    # raw text the generate phase builds rows from: documents (MW-QA types), posts (MSM-MG types),
    # stories (segmented into completions); read like raw
    "document": ("text",),
    "post": ("text",),
    "story": ("text",),
}
OPTIONAL = {"sentiment": (), "summarization": (), "mcq": ("subject",), "raw": (), "chat": ("subset",),
            "benchmark": ()}
TASKS = ("translation", "sentiment", "summarization", "mcq", "chat", "raw", "benchmark", "document", "post",
         "story")


@dataclass(frozen=True)
class SourceConfig:
    id: str
    # the kinds a reader is registered for (atlas_forge.sources.registry)
    kind: Literal[sources.KINDS]
    role: Literal[records.SOURCE_ROLES]  # what the source is for: see records.SOURCE_ROLES
    task: str
    lang: str
    columns: dict[str, str | int]
    path: str = ""
    license: str = ""
    labels: dict[str, str] | None = None
    sep: str | None = None  # csv/tsv: overrides ',' or '\t'
    header: bool = True  # csv/tsv/xlsx: false -> `columns` values are 0-based positions
    quoting: bool | None = None  # csv/tsv: honour "..." quotes; default true for csv, false for tsv
    filter: dict[str, Any] | None = None  # keep only rows whose column equals the value
    # keep only rows whose column value is one of the listed ones ({dataset: [doda, madar]}); the
    # others are rejected with that reason, so read = ingested + rejected still holds
    select: dict[str, list[Any]] | None = None
    filter_steps: list[str] | None = None  # this source's filter steps (rules/filter.smk), else filter.steps
    # csv/tsv/jsonl/text: any Python text codec (cp1256, utf-16, ...); unset reads UTF-8. A
    # byte-order mark (UTF-8, UTF-16/32 LE/BE) always wins, so BOM files need no setting.
    encoding: str | None = None
    sheet: str | int | None = None  # xlsx: sheet name or 0-based index; default the first sheet
    name: str = ""  # hf: dataset id, or a local folder in the Hub layout (read from its own files)
    revision: str = ""  # hf: pinned revision
    split: str = "train"  # hf
    config: str | None = None  # hf: dataset configuration name

    def validate(self, section: str) -> None:
        where = f"{section} (source '{self.id}')"
        if self.task not in TASKS:
            raise ConfigError(f"{where}.task: {self.task!r} is not one of {', '.join(TASKS)}")
        if self.kind == "hf":
            if not self.name or not self.revision:
                raise ConfigError(
                    f"{where}.name/revision: hf sources need a dataset id and a pinned revision"
                )
        elif not self.path:
            raise ConfigError(f"{where}.path: required key is missing")
        if self.encoding is not None:
            if self.kind not in sources.TEXT_KINDS:
                raise ConfigError(
                    f"{where}.encoding: only text kinds ({', '.join(sources.TEXT_KINDS)}) take an "
                    f"encoding; {self.kind} files carry their own"
                )
            try:
                sources.check_encoding(self.encoding)
            except LookupError:
                raise ConfigError(
                    f"{where}.encoding: {self.encoding!r} is not a Python text codec "
                    "(e.g. utf-8, cp1256, utf-16, utf-16-le, latin-1)"
                ) from None
        if self.role == "darija_chat" and self.task != "chat":
            raise ConfigError(
                f"{where}.task: role darija_chat rows are chats (task: chat), not {self.task!r}"
            )
        for col, values in (self.select or {}).items():
            if not values:
                raise ConfigError(f"{where}.select.{col}: list at least one value to keep")
        if self.sheet is not None and self.kind != "xlsx":
            raise ConfigError(f"{where}.sheet: only xlsx sources have sheets, this one is {self.kind}")
        cols = set(self.columns) - {"key"}
        if self.task == "translation":
            if len(cols) < 2 or self.lang not in cols:
                raise ConfigError(
                    f"{where}.columns: translation maps >= 2 language codes including lang {self.lang}"
                )
        elif self.task == "chat":
            if "messages" not in cols and "user" not in cols:
                raise ConfigError(f"{where}.columns: chat needs 'messages' (or 'user' [+ 'assistant'])")
        else:
            missing = [c for c in REQUIRED[self.task] if c not in cols]
            if missing:
                raise ConfigError(f"{where}.columns.{missing[0]}: required for task {self.task}")
        if self.task == "sentiment" and not self.labels:
            raise ConfigError(f"{where}.labels: sentiment needs the raw -> canonical label mapping")
        if not self.header and self.kind in ("csv", "tsv", "xlsx"):
            bad = [k for k, v in self.columns.items() if not isinstance(v, int)]
            if bad:
                raise ConfigError(f"{where}.columns.{bad[0]}: header is false, expected a column position")


def parse_source(data: dict[str, Any]) -> SourceConfig:
    sid = data.get("id", "?") if isinstance(data, dict) else "?"
    return parse(SourceConfig, data, f"ingest.sources[{sid}]")


def _column(src: SourceConfig, col: str | int) -> str | int:
    # JSON turns integer keys (filter on a header-less column) into strings
    if not src.header and isinstance(col, str) and col.lstrip("-").isdigit():
        return int(col)
    return col


def read_rows(src: SourceConfig) -> Iterator[sources.RawRow]:
    """Every record of the source, read by the reader registered for its kind."""
    yield from sources.read_source(src)


class Reject(Exception):
    """A row that cannot become a record; the message is the reject reason."""


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _get(src: SourceConfig, values: dict, field_name: str) -> Any:
    col = src.columns[field_name]
    if col not in values:
        raise Reject(f"missing column: {col}")
    return values[col]


def _required_text(src: SourceConfig, values: dict, field_name: str) -> str:
    text = _text(_get(src, values, field_name))
    if not text:
        raise Reject(f"empty text: {field_name}")
    return text


def _messages(value: Any) -> list[dict[str, str]]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise Reject("bad messages: not a JSON list") from None
    if not isinstance(value, list) or not value:
        raise Reject("bad messages: not a non-empty list")
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or m.get("role") not in records.ROLES:
            raise Reject(f"bad messages: turn {i} has no user/assistant role")
        expected = "user" if i % 2 == 0 else "assistant"
        if m["role"] != expected:
            raise Reject(f"bad messages: turn {i} is {m['role']}, expected {expected}")
        content = _text(m.get("content"))
        if not content:
            raise Reject(f"empty text: turn {i}")
        out.append({"role": m["role"], "content": content})
    return out


def _build(src: SourceConfig, values: dict, where: dict) -> tuple[list[dict], str, dict]:
    """(messages, lang, meta) for one source row, or raise Reject."""
    task, meta = src.task, dict(where)
    if task == "translation":
        texts = {}
        for lang, col in src.columns.items():
            if lang != "key" and col in values and _text(values[col]):
                texts[lang] = _text(values[col])
        if src.lang not in texts:
            raise Reject(f"empty text: {src.lang}")
        if len(texts) < 2:
            raise Reject("empty text: no second language")
        return [{"role": "user", "content": texts[src.lang]}], src.lang, {**meta, "texts": texts}
    if task == "sentiment":
        text = _required_text(src, values, "text")
        raw_label = _text(_get(src, values, "label"))
        labels = {str(k).strip(): v for k, v in (src.labels or {}).items()}
        if raw_label not in labels:
            raise Reject(f"label outside declared set: {raw_label!r}")
        declared = list(dict.fromkeys(labels.values()))
        meta |= {"label": labels[raw_label], "labels": declared}
        return [{"role": "user", "content": text}], src.lang, meta
    if task == "summarization":
        article = _required_text(src, values, "text")
        title = _required_text(src, values, "summary")
        return [{"role": "user", "content": article}, {"role": "assistant", "content": title}], src.lang, meta
    if task == "mcq":
        question = _required_text(src, values, "question")
        choices = _get(src, values, "choices")
        if isinstance(choices, str):
            try:
                choices = json.loads(choices)
            except json.JSONDecodeError:
                raise Reject("bad choices: not a JSON list") from None
        if not isinstance(choices, list) or len(choices) < 2 or not all(_text(c) for c in choices):
            raise Reject("bad choices: need >= 2 non-empty choices")
        choices = [_text(c) for c in choices]
        answer = _text(_get(src, values, "answer"))
        if len(answer) == 1 and answer.isalpha():  # a letter: A -> 0
            index = ord(answer.upper()) - ord("A")
        elif answer.lstrip("-").isdigit():
            index = int(answer)
        else:
            raise Reject(f"bad answer: {answer!r}")
        if not 0 <= index < len(choices):
            raise Reject(f"bad answer: {answer!r} outside {len(choices)} choices")
        subject = _text(values.get(src.columns["subject"])) if "subject" in src.columns else ""
        meta |= {"choices": choices, "answer": index, "subject": subject}
        return [{"role": "user", "content": question}], src.lang, meta
    if task == "chat":
        if "messages" in src.columns:
            messages = _messages(_get(src, values, "messages"))
        else:
            messages = [{"role": "user", "content": _required_text(src, values, "user")}]
            if "assistant" in src.columns:
                messages.append({"role": "assistant", "content": _required_text(src, values, "assistant")})
        subset = _text(values.get(src.columns["subset"])) or None if "subset" in src.columns else None
        return messages, src.lang, {**meta, "subset": subset}
    if task == "benchmark":
        value = _get(src, values, "text")
        if isinstance(value, list) and value and isinstance(value[0], dict):
            value = value[0].get("content")
        text = _text(value)
        if not text:
            raise Reject(f"empty text: {src.columns['text']}")
        try:
            # dates and the like (belebele's `ds`) become strings; prompts never read them
            doc = json.loads(json.dumps(values, ensure_ascii=False, default=str))
        except (TypeError, ValueError):
            raise Reject("bad document: not JSON-serializable") from None
        messages = [{"role": "user", "content": text}]
        return messages, src.lang, {**meta, "doc": doc}
    # raw
    return [{"role": "user", "content": _required_text(src, values, "text")}], src.lang, meta


def ingest_rows(src: SourceConfig, rows: Iterable[sources.RawRow]) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """Pure core: (ingested, rejects, rows read)."""
    kept: list[dict] = []
    rejected: list[dict] = []
    seen: set[str] = set()
    n_read = 0
    filt = {_column(src, k): _text(v) for k, v in (src.filter or {}).items()}
    select = {_column(src, k): {_text(v) for v in vs} for k, vs in (src.select or {}).items()}
    key_col = src.columns.get("key")
    for row in rows:
        n_read += 1
        where = {"file": row.file, "line": row.line}
        if getattr(row, "config", None):
            where["config"] = row.config  # hf: the dataset configuration (DarijaMMLU subject)
        key = f"{row.file}:{row.line}"
        try:
            if row.error:
                raise Reject(row.error)
            values = row.values or {}
            if key_col is not None:
                key = f"key:{_text(values.get(key_col))}"
            for col, want in filt.items():
                if _text(values.get(col)) != want:
                    raise Reject(f"filtered: {col} != {want}")
            for col, keep in select.items():
                if _text(values.get(col)) not in keep:
                    raise Reject(f"not selected: {col}={_text(values.get(col))}")
            messages, lang, meta = _build(src, values, where)
            rec = records.make_record(src.id, key, src.task, messages, lang, meta)
            if rec["id"] in seen:
                raise Reject(f"duplicate key: {key}")
            seen.add(rec["id"])
            kept.append(rec)
        except Reject as e:
            text = row.raw or _first_text(src, row.values)
            msgs = [{"role": "user", "content": text}] if text else []
            rec = records.make_record(src.id, key, src.task, msgs, src.lang, where)
            rejected.append({**rec, "reason": str(e), "phase": PHASE})
    out, rej = records.from_rows(kept), records.from_rows(rejected, rejects=True)
    if out.height + rej.height != n_read:
        raise RuntimeError(
            f"source '{src.id}': read {n_read} != ingested {out.height} + rejected {rej.height}"
        )
    return out, rej, n_read


def _first_text(src: SourceConfig, values: dict | None) -> str:
    """Best-effort text of a rejected row, so the reject table shows what was dropped."""
    if not values:
        return ""
    for name in ("text", "question", src.lang, "user"):
        col = src.columns.get(name)
        if col is not None and _text(values.get(col)):
            return _text(values.get(col))
    return ""


@dataclass(frozen=True)
class IngestJob:
    """One job's view of the ingest section: its source's entry (checked as SourceConfig, and named
    `ingest.sources[<id>]` in errors)."""

    source: dict[str, Any]

    def validate(self, section: str) -> None:
        parse_source(dict(self.source))


def _sources(params) -> list[dict]:
    return entries(params, "ingest", "sources", "extra_sources")


CONTRACT = Phase(
    name="ingest",
    module=__name__,
    help="read one source, map its columns to the canonical record, reject bad rows with a reason",
    config=IngestJob,
    view=lambda params, source, **_: {"source": by_id(_sources(params), source)},
    jobs=lambda params: [{"source": s["id"]} for s in _sources(params)],
    args=(("--out", {"required": True, **PATH}), ("--rejects", {"required": True, **PATH})),
)


def run_cli(args: argparse.Namespace, job) -> None:
    src = parse_source(job.config.source)
    out, rej, n_read = ingest_rows(src, read_rows(src))
    io.write_table(out, args.out, PHASE)
    io.write_table(rej, args.rejects, PHASE, rejects=True)
    reasons = rej.group_by("reason").len().sort("len", descending=True).head(5).rows() if rej.height else []
    log.info("%s: read %d, ingested %d, rejected %d %s", src.id, n_read, out.height, rej.height, reasons)
