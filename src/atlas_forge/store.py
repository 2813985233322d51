"""The storage floor: durable JSONL caches and the sha256 fingerprints the pipeline writes to disk.

JSON lines (the translate and generate caches):
- append_locked(path, items): append rows durably (fsync) under an exclusive lock, parallel jobs
  sharing one file; a last line a crash left unterminated is cut before writing after it;
- read_lines(path, tolerate_tail): the rows back; only an unterminated last line may be damaged.

sha256 (hex digests). Caches, resume fingerprints and recorded hashes on disk depend on these exact
bytes: a change here invalidates them, so each helper hashes what it always has.
- sha256_bytes(data), sha256_file(path): raw bytes;
- sha256_key(*parts): text parts joined by the unit separator \\x1f (cache keys);
- sha256_json(obj): canonical JSON (sort_keys, ensure_ascii off);
- sha256_files(paths): a set of files, sorted by path, each as its name, NUL, its bytes (the
  evaluate phase's data and model hashes);
- files_sha256(paths): a list of files in the given order, each as its bytes, NUL (the modeling
  phases' text, base and data fingerprints);
- model_sha256(model_dir): sha256_files of the folder's *.safetensors weights.

Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_BLOCK = 1 << 20  # files are hashed in 1 MiB blocks


# --- JSON lines ---------------------------------------------------------------------------------
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


def read_lines(path: Path, tolerate_tail: bool) -> list[dict]:
    """The JSON rows of `path` (blank lines skipped). A line that is not JSON is an error naming it,
    except, with `tolerate_tail`, the last line (a crash's leftover), which is skipped with a warning."""
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


def append_locked(path: Path, items: list[dict]) -> None:
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


# --- sha256 -------------------------------------------------------------------------------------
def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_key(*parts: str) -> str:
    """The digest of text parts joined by \\x1f (a cache key: each part is a field of the key)."""
    return sha256_bytes("\x1f".join(parts).encode())


def sha256_json(obj: Any) -> str:
    """The digest of `obj` as canonical JSON: sorted keys, non-ASCII kept (the form the rules pass)."""
    return sha256_bytes(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode())


def _update_file(h, path: str | os.PathLike) -> None:
    with open(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            h.update(block)


def sha256_file(path: str | os.PathLike) -> str:
    """The digest of one file's bytes, streamed."""
    h = hashlib.sha256()
    _update_file(h, path)
    return h.hexdigest()


def sha256_files(paths: Iterable[str | os.PathLike]) -> str:
    """One digest over a set of files: sorted by path, each as its name (not its folder), NUL, then its
    bytes. The evaluate phase's data and model hashes."""
    h = hashlib.sha256()
    for p in sorted(Path(p) for p in paths):
        h.update(p.name.encode() + b"\0")
        _update_file(h, p)
    return h.hexdigest()


def files_sha256(paths: Iterable[str | os.PathLike]) -> str:
    """One digest over a list of files' bytes in the given order, each followed by NUL (no names).
    The modeling phases' fingerprints."""
    h = hashlib.sha256()
    for p in paths:
        _update_file(h, p)
        h.update(b"\x00")
    return h.hexdigest()


def model_sha256(model_dir: str | os.PathLike) -> str:
    """The digest of a model folder's weights: sha256_files of its *.safetensors."""
    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{model_dir}: no *.safetensors weights")
    return sha256_files(files)
