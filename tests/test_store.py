"""store: the locked JSONL append and its reader (the translate and generate caches), and the sha256
helpers whose values caches, resume files and recorded hashes on disk depend on."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from atlas_forge import store

ROOT = Path(__file__).resolve().parent.parent


# --- sha256 ---------------------------------------------------------------------------------------
def test_sha256_helpers_equal_hashlib(tmp_path):
    # FIPS 180-2 test vector
    assert store.sha256_bytes(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert store.sha256_key("a", "b", "سلام") == hashlib.sha256("a\x1fb\x1fسلام".encode()).hexdigest()
    assert store.sha256_key() == hashlib.sha256(b"").hexdigest()
    obj = {"b": [1, 2.5, None], "a": "é"}
    assert store.sha256_json(obj) == hashlib.sha256('{"a": "é", "b": [1, 2.5, null]}'.encode()).hexdigest()

    big = bytes(range(256)) * 9000  # > 2 MiB: several read blocks
    (tmp_path / "b.bin").write_bytes(big)
    (tmp_path / "a.bin").write_bytes(b"first")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.bin").write_bytes(b"")
    a, b, c = tmp_path / "a.bin", tmp_path / "b.bin", tmp_path / "sub" / "c.bin"
    assert store.sha256_file(b) == hashlib.sha256(big).hexdigest()
    # sha256_files: sorted by path, name + NUL + bytes, whatever order it is given
    want = hashlib.sha256(b"a.bin\0first" + b"b.bin\0" + big + b"c.bin\0").hexdigest()
    assert store.sha256_files([c, b, a]) == store.sha256_files([str(a), str(b), str(c)]) == want
    # files_sha256: the given order, bytes + NUL, no names
    assert store.files_sha256([b, a]) == hashlib.sha256(big + b"\0" + b"first\0").hexdigest()
    assert store.files_sha256([a, b]) != store.files_sha256([b, a])
    assert store.files_sha256([]) == hashlib.sha256(b"").hexdigest()


def test_model_sha256_hashes_the_weights_only(tmp_path):
    with pytest.raises(FileNotFoundError, match="no \\*.safetensors weights"):
        store.model_sha256(tmp_path)
    (tmp_path / "model-2.safetensors").write_bytes(b"w2")
    (tmp_path / "model-1.safetensors").write_bytes(b"w1")
    (tmp_path / "config.json").write_text("{}")
    want = hashlib.sha256(b"model-1.safetensors\0w1model-2.safetensors\0w2").hexdigest()
    assert store.model_sha256(tmp_path) == store.model_sha256(str(tmp_path)) == want


def test_cache_keys_are_pinned():
    """Keys of the caches on disk: a change here orphans every cached translation and generation."""
    from atlas_forge.generate.cache import cache_key as gen_key
    from atlas_forge.translate.cache import cache_key as tr_key

    assert tr_key("openai", "m", "v1", "hello") == hashlib.sha256(b"openai\x1fm\x1fv1\x1fhello").hexdigest()
    assert gen_key("openai", "m", "mcq", "a5-v1", "doc") == hashlib.sha256(
        b"openai\x1fm\x1fmcq\x1fa5-v1\x1fdoc").hexdigest()


def test_callers_use_the_store_helpers():
    from atlas_forge import evaluate, modeling

    assert modeling.files_sha256 is store.files_sha256
    assert evaluate.model_sha256 is store.model_sha256 and evaluate.sha256_files is store.sha256_files


# --- JSON lines -----------------------------------------------------------------------------------
def test_read_lines_tolerates_only_a_torn_last_line(tmp_path, caplog):
    path = tmp_path / "c.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\n{"a": 3', encoding="utf-8")
    assert store.read_lines(path, tolerate_tail=True) == [{"a": 1}, {"a": 2}]
    assert "ignoring truncated last line" in caplog.text
    with pytest.raises(ValueError, match=r"c.jsonl:4: invalid JSON"):
        store.read_lines(path, tolerate_tail=False)
    path.write_text('{"a": 1}\n{"a"\n{"a": 3}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"c.jsonl:2: invalid JSON"):
        store.read_lines(path, tolerate_tail=True)


def test_append_locked_cuts_a_torn_tail_first(tmp_path):
    path = tmp_path / "deep" / "c.jsonl"
    store.append_locked(path, [{"k": 1, "t": "é"}])
    assert path.read_bytes() == '{"k": 1, "t": "é"}\n'.encode()
    with open(path, "ab") as fh:
        fh.write(b'{"k": 2, "t"')  # a crash mid-line
    store.append_locked(path, [{"t": "x", "k": 3}, {"k": 4}])
    assert path.read_text(encoding="utf-8") == '{"k": 1, "t": "é"}\n{"k": 3, "t": "x"}\n{"k": 4}\n'
    assert store.read_lines(path, tolerate_tail=False) == [{"k": 1, "t": "é"}, {"k": 3, "t": "x"}, {"k": 4}]


WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from atlas_forge.store import append_locked

    path, who, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    while not go.exists():
        time.sleep(0.001)
    for b in range(40):
        append_locked(path, [{"who": who, "batch": b, "i": i, "pad": who * 20000} for i in range(3)])
""")


def test_append_locked_from_two_processes(tmp_path):
    path, go = tmp_path / "shared.jsonl", tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), who, str(go)], cwd=ROOT)
             for who in ("a", "b")]
    go.touch()
    for p in procs:
        assert p.wait(timeout=120) == 0
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 2 * 40 * 3
    for who in ("a", "b"):
        mine = [(r["batch"], r["i"]) for r in rows if r["who"] == who]
        assert mine == [(b, i) for b in range(40) for i in range(3)]  # every row, in order
    # each batch is written whole under the lock: its three rows are adjacent
    for k in range(0, len(rows), 3):
        batch = rows[k:k + 3]
        assert len({(r["who"], r["batch"]) for r in batch}) == 1 and [r["i"] for r in batch] == [0, 1, 2]


def test_append_locked_waits_for_the_lock(tmp_path):
    """Another process holding the file's lock (a job mid-append) holds the writer back."""
    import fcntl
    import time

    path = tmp_path / "c.jsonl"
    path.write_text('{"k": 0}\n', encoding="utf-8")
    code = ("import sys; from pathlib import Path; from atlas_forge.store import append_locked; "
            "append_locked(Path(sys.argv[1]), [{'k': 1}])")
    with open(path, "ab+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        child = subprocess.Popen([sys.executable, "-c", code, str(path)], cwd=ROOT)
        time.sleep(1.5)
        assert child.poll() is None and path.read_text(encoding="utf-8") == '{"k": 0}\n'
        fh.write(b'{"k": 0.5}\n')  # what the lock holder appends lands whole, before the waiter's
        fh.flush()
        fcntl.flock(fh, fcntl.LOCK_UN)
    assert child.wait(timeout=60) == 0
    assert path.read_text(encoding="utf-8") == '{"k": 0}\n{"k": 0.5}\n{"k": 1}\n'
