"""Atomic writes: a file or directory appears whole, with the umask's permissions, or not at all."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from atec_automl.staging import replacing_dir, write_atomically, write_text_atomically


def test_a_file_written_atomically_appears_whole_with_the_umask_permissions(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        write_text_atomically(tmp_path / "sub" / "out.json", "{}")
    finally:
        os.umask(umask)
    assert (tmp_path / "sub" / "out.json").read_text() == "{}"
    assert (tmp_path / "sub" / "out.json").stat().st_mode & 0o777 == 0o644
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["out.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old")

    def fail(temporary: Path) -> None:
        temporary.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        write_atomically(target, fail)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_a_directory_appears_only_when_its_block_completes(tmp_path: Path) -> None:
    with replacing_dir(tmp_path / "model") as staging:
        (staging / "model.json").write_text("{}")
        assert not (tmp_path / "model").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    with pytest.raises(RuntimeError):
        with replacing_dir(tmp_path / "other") as staging:
            (staging / "model.json").write_text("{}")
            raise RuntimeError("killed")
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
