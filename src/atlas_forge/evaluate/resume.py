"""Finished work of an interrupted evaluation, kept beside its output and reused by the rerun.

An evaluation that dies (SIGKILL, OOM, a lost node) loses nothing it had finished: every batch the
model scored or generated is appended to `<out>.partial.jsonl` as soon as it is done, and the rerun
takes those batches from the file and computes only the rest. The caller removes the file once the
outputs are written (evaluate.run_cli).

Why batches, not items: a batch's numbers depend on what it is batched with (padding, kernel
shapes), so the rerun must form exactly the batches the uninterrupted run forms. The batching code
runs unchanged and asks `cached()` for each batch (greedy generation: each engine chunk,
lm.generate); a batch is found by a hash of its exact input (token ids and decoding settings, and the
model it runs on). The outputs are then identical to an
uninterrupted run's.

The file's first line is the run's fingerprint (task config, model and data hashes, the local
judge's weights, device, dtype, the evaluate code): a file written under anything else is discarded,
so stale work is never reused. A line cut short by the kill is ignored.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from atlas_forge import imports
from atlas_forge.store import sha256_json

log = logging.getLogger(__name__)

_ACTIVE: contextvars.ContextVar[WorkCache | None] = contextvars.ContextVar("eval_work", default=None)


def partial_path(out: str | Path) -> Path:
    """Where the unfinished work of output `out` (results/<model>/<task>.json) is kept."""
    out = Path(out)
    return out.with_name(out.name.removesuffix(".json") + ".partial.jsonl")


class WorkCache:
    def __init__(self, path: str | Path, fingerprint: dict[str, Any]):
        self.path = Path(path)
        self.header = {"fingerprint": fingerprint}
        self.done: dict[str, Any] = {}
        self.reused = self.computed = 0
        lines = self.path.read_text(encoding="utf-8").splitlines() if self.path.exists() else []
        if lines and _loads(lines[0]) == self.header:
            for line in lines[1:]:
                entry = _loads(line)
                if isinstance(entry, dict) and "key" in entry and "value" in entry:
                    self.done[entry["key"]] = entry["value"]
            log.info("resuming: %d finished batches in %s", len(self.done), self.path)
        elif lines:
            log.warning("%s belongs to another run (task, model, data or code changed): starting over",
                        self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # rewritten whole (header + the valid entries): a torn last line must not end up mid-file
        with open(self.path, "w", encoding="utf-8") as fh:
            for line in [self.header, *({"key": k, "value": v} for k, v in self.done.items())]:
                fh.write(json.dumps(line, ensure_ascii=False) + "\n")
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - open for the whole run

    def get_or_compute(self, key: str, compute: Callable[[], Any]) -> Any:
        if key in self.done:
            self.reused += 1
            return self.done[key]
        value = compute()
        self.done[key] = value
        self.computed += 1
        self._fh.write(json.dumps({"key": key, "value": value}, ensure_ascii=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())  # a batch reported done survives the kill that follows
        return value

    def close(self) -> None:
        self._fh.close()
        log.info("evaluation work: %d batches reused, %d computed", self.reused, self.computed)


def _loads(line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None


@contextlib.contextmanager
def keep_work(path: str | Path | None, fingerprint: dict[str, Any]):
    """Within the block, `cached()` keeps each batch in `path` (None: no file, compute everything).
    The file stays: the caller removes it once the outputs are written, so a crash in between still
    finds the work done."""
    if path is None:
        yield None
        return
    cache = WorkCache(path, fingerprint)
    token = _ACTIVE.set(cache)
    try:
        yield cache
    finally:
        _ACTIVE.reset(token)
        cache.close()


def cached(kind: str, model, batch_input: Any, compute: Callable[[], Any]) -> Any:
    """compute() for one batch, or its stored result when an interrupted run of the same evaluation
    finished it. `batch_input` is everything the result depends on besides the model (JSON-able);
    the result must be JSON-able and come back equal (tuples come back as lists)."""
    cache = _ACTIVE.get()
    if cache is None:
        return compute()
    ident = [kind, str(getattr(model, "name_or_path", "")), batch_input]
    return cache.get_or_compute(sha256_json(ident), compute)


def code_sha256() -> str:
    """The evaluate phase's code, its import closure (the rule's code inputs): a changed scorer must not
    reuse old numbers."""
    return imports.code_sha256("atlas_forge.evaluate")
