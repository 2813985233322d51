"""Content-addressed translation cache: one JSON line per translated string, appended and fsync'd after
each batch, so a crashed run keeps every finished translation and the rerun asks only for the rest.

Key = sha256(backend, model, prompt_version, source text): a different model or prompt is a different
translation. Seed caches ({"source", "target"} lines, bundled) answer for any backend and model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)
FILENAME = "translations.jsonl"


def cache_key(backend: str, model: str, prompt_version: str, text: str) -> str:
    return hashlib.sha256("\x1f".join((backend, model, prompt_version, text)).encode()).hexdigest()


class TranslationCache:
    def __init__(self, cache_dir: str | os.PathLike | None, seed_caches: list[str] | tuple = ()):
        self.path = Path(cache_dir) / FILENAME if cache_dir else None
        self.entries: dict[str, str] = {}
        self.seed: dict[str, str] = {}
        for seed in seed_caches:
            for row in _read_lines(Path(seed), tolerate_tail=False):
                self.seed.setdefault(row["source"], row["target"])
        if self.path and self.path.exists():
            for row in _read_lines(self.path, tolerate_tail=True):
                self.entries[row["key"]] = row["target"]
        log.info("cache: %d entries in %s, %d seed translations", len(self.entries), self.path,
                 len(self.seed))

    def get(self, key: str, source: str) -> str | None:
        return self.entries.get(key) or self.seed.get(source)

    def put_many(self, items: list[dict]) -> None:
        """Append {key, backend, model, prompt_version, source, target} rows durably."""
        if not items:
            return
        for it in items:
            self.entries[it["key"]] = it["target"]
        if self.path is None:
            return
        append_locked(self.path, items)


def _drop_partial_tail(fh) -> None:
    """Cut a last line a crash left without its newline, so the next line starts clean."""
    size = fh.seek(0, os.SEEK_END)
    if size == 0:
        return
    fh.seek(size - 1)
    if fh.read(1) == b"\n":
        return
    back = min(size, 1 << 20)
    fh.seek(size - back)
    tail = fh.read(back)
    cut = tail.rfind(b"\n")
    fh.truncate(size - back + cut + 1 if cut >= 0 else size - back)
    fh.seek(0, os.SEEK_END)


def _read_lines(path: Path, tolerate_tail: bool) -> list[dict]:
    lines = path.read_text(encoding="utf-8").split("\n")
    out = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as e:
            # only the unterminated last line can be a crash's leftover; anything else is damage
            if tolerate_tail and lineno == len(lines):
                log.warning("%s: ignoring truncated last line", path)
                continue
            raise ValueError(f"{path}:{lineno}: invalid JSON ({e.msg})") from None
    return out


def append_locked(path, items: list[dict]) -> None:
    """Append JSON lines durably under an exclusive lock: parallel jobs (one per source) share a cache
    file, and a line cut off by a crash is dropped before writing after it."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps(it, ensure_ascii=False, sort_keys=True) + "\n" for it in items).encode()
    with open(path, "ab+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            _drop_partial_tail(fh)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
