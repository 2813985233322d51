"""Content-addressed translation cache: one JSON line per translated string, appended and fsync'd after
each batch, so a crashed run keeps every finished translation and the rerun asks only for the rest.

Key = sha256(backend, model, prompt_version, source text): a different model or prompt is a different
translation. Seed caches ({"source", "target"} lines, bundled) answer for any backend and model.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from atlas_forge.store import append_locked, read_lines, sha256_key

log = logging.getLogger(__name__)
FILENAME = "translations.jsonl"


def cache_key(backend: str, model: str, prompt_version: str, text: str) -> str:
    return sha256_key(backend, model, prompt_version, text)


class TranslationCache:
    def __init__(self, cache_dir: str | os.PathLike | None, seed_caches: list[str] | tuple = ()):
        self.path = Path(cache_dir) / FILENAME if cache_dir else None
        self.entries: dict[str, str] = {}
        self.seed: dict[str, str] = {}
        for seed in seed_caches:
            for row in read_lines(Path(seed), tolerate_tail=False):
                self.seed.setdefault(row["source"], row["target"])
        if self.path and self.path.exists():
            for row in read_lines(self.path, tolerate_tail=True):
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
