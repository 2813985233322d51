"""Content-addressed generation cache: one JSON line per finished generation, appended and fsync'd as
each answer lands, so a killed run keeps every answer it received and the rerun asks only for the rest.

Key = sha256(backend, model, type, prompt version, document text): another model, prompt or document
is another generation; an added document is one new key. What is stored is the model's raw answer;
the structural checks run again on every read, so a stricter check applies to cached answers too.
A `failed` entry records an answer that failed the checks (temperature 0 would give it again); the
caller writes those only once the run has shown the endpoint answers correctly at all.

Seed caches ({"type", "prompt_version", "document", "response"} lines, bundled with the sample) answer
for any backend and model, like translate's seed caches: the offline default needs no endpoint.
The file format and crash handling are translate's (store.py's append_locked and read_lines).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from atlas_forge.store import append_locked, read_lines, sha256_key

log = logging.getLogger(__name__)
FILENAME = "generations.jsonl"


def cache_key(backend: str, model: str, kind: str, prompt_version: str, document: str) -> str:
    return sha256_key(backend, model, kind, prompt_version, document)


class GenerationCache:
    def __init__(self, cache_dir: str | os.PathLike | None, seed_caches: list[str] | tuple = ()):
        self.path = Path(cache_dir) / FILENAME if cache_dir else None
        self.entries: dict[str, dict] = {}
        self.seed: dict[tuple[str, str, str], str] = {}
        for seed in seed_caches:
            for lineno, row in enumerate(read_lines(Path(seed), tolerate_tail=False), 1):
                missing = [k for k in ("type", "prompt_version", "document", "response") if k not in row]
                if missing:
                    raise ValueError(f"{seed}: entry {lineno} has no field {missing[0]!r}")
                self.seed.setdefault((row["type"], row["prompt_version"], row["document"]), row["response"])
        if self.path and self.path.exists():
            for row in read_lines(self.path, tolerate_tail=True):
                self.entries[row["key"]] = row
        log.info(
            "generation cache: %d entries in %s, %d seed generations",
            len(self.entries),
            self.path,
            len(self.seed),
        )

    def get(self, key: str, kind: str, version: str, document: str) -> dict | None:
        """{"response": str} or {"failed": reason} for this generation, or None when never made."""
        hit = self.entries.get(key)
        if hit is not None:
            return hit
        seed = self.seed.get((kind, version, document))
        return {"response": seed} if seed is not None else None

    def put_many(self, items: list[dict]) -> None:
        """Append {key, backend, model, type, prompt_version, document, response|failed} rows durably."""
        if not items:
            return
        for it in items:
            self.entries[it["key"]] = it
        if self.path is None:
            return
        append_locked(self.path, items)
