"""The suite's build sharing (tests/conftest.py, issue 20): a shared build runs once per session
whoever asks for it, a failed one fails every later asker with its first message, and a copy is as
up to date as the original for Snakemake (file times kept)."""

from __future__ import annotations

import os
import threading

import pytest

from .conftest import build_once, copy_build


def test_build_runs_once_for_concurrent_askers(tmp_path_factory):
    calls = []

    def build(dest):
        calls.append(dest)
        dest.mkdir()
        (dest / "artifact").write_text("built")

    tmp_path_factory.getbasetemp()  # the session's folder exists before the askers race (as in a session)
    got = []
    threads = [threading.Thread(target=lambda: got.append(build_once(tmp_path_factory, "once", build)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(set(got)) == 1
    assert (got[0] / "artifact").read_text() == "built"


def test_failed_build_fails_later_askers_without_rebuilding(tmp_path_factory):
    calls = []

    def build(dest):
        calls.append(dest)
        raise RuntimeError("no corpus here")

    with pytest.raises(RuntimeError, match="no corpus here"):
        build_once(tmp_path_factory, "broken", build)
    with pytest.raises(pytest.fail.Exception, match="failed earlier in this session:\nno corpus here"):
        build_once(tmp_path_factory, "broken", build)
    assert len(calls) == 1


def test_copy_keeps_file_times_and_links(tmp_path):
    src = tmp_path / "built"
    (src / "models").mkdir(parents=True)
    (src / "models" / "w.bin").write_bytes(b"x")
    os.utime(src / "models" / "w.bin", (1_000_000, 1_000_000))
    (src / "link").symlink_to("models/w.bin")
    dest = copy_build(src, tmp_path / "copy")
    assert (dest / "models" / "w.bin").stat().st_mtime == 1_000_000
    assert (dest / "link").is_symlink() and os.readlink(dest / "link") == "models/w.bin"
