from __future__ import annotations

import os
import stat

import pytest

from byz_gym.io import atomic_write_bytes, write_json


def test_atomic_write_gives_an_ordinary_file_and_leaves_no_temporary(tmp_path):
    path = write_json(tmp_path / "sub" / "config.json", {"a": 1})
    assert path.read_text() == '{\n  "a": 1\n}\n'
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask  # not mkstemp's private 0600
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = atomic_write_bytes(tmp_path / "r.jsonl", b"old\n")

    def failing_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(path, b"new\n")
    assert path.read_bytes() == b"old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.jsonl"]
