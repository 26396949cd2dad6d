import hashlib
from pathlib import Path

import pytest

from cdfv.download import DownloadError, fetch
from tests.httpserver import serve


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


@pytest.fixture
def payload(tmp_path: Path) -> tuple[Path, bytes]:
    root = tmp_path / "srv"
    root.mkdir()
    data = bytes(range(256)) * 40_000  # ~10 MB
    (root / "blob.bin").write_bytes(data)
    return root, data


def test_http_download_verified_and_cached(tmp_path: Path, payload: tuple[Path, bytes]) -> None:
    root, data = payload
    with serve(root) as (url, log):
        out = fetch(f"{url}/blob.bin", tmp_path / "cache", _sha(data), progress=False)
        assert out.read_bytes() == data
        again = fetch(f"{url}/blob.bin", tmp_path / "cache", _sha(data), progress=False)
        assert again == out and len(log) == 1  # served from cache


def test_checksum_mismatch_removes_partial(tmp_path: Path, payload: tuple[Path, bytes]) -> None:
    root, data = payload
    wrong = "0" * 64
    with serve(root) as (url, _):
        with pytest.raises(DownloadError) as exc:
            fetch(f"{url}/blob.bin", tmp_path / "cache", wrong, progress=False)
    msg = str(exc.value)
    assert wrong in msg and _sha(data) in msg  # expected and actual named
    assert list((tmp_path / "cache").iterdir()) == []  # nothing half-written left


def test_resume_after_interrupted_transfer(tmp_path: Path, payload: tuple[Path, bytes]) -> None:
    root, data = payload
    with serve(root, cut_after={"blob.bin": 3_000_000}) as (url, log):
        with pytest.raises(DownloadError, match="resume"):
            fetch(f"{url}/blob.bin", tmp_path / "cache", _sha(data), progress=False)
        parts = list((tmp_path / "cache").glob("*.part"))
        assert len(parts) == 1 and parts[0].stat().st_size == 3_000_000
        out = fetch(f"{url}/blob.bin", tmp_path / "cache", _sha(data), progress=False)
    assert out.read_bytes() == data
    assert log[-1] == ("blob.bin", "bytes=3000000-")  # resumed with a Range request


def test_local_paths_and_errors(tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_bytes(b"hello")
    assert fetch(str(f), tmp_path / "c", _sha(b"hello")) == f.resolve()
    assert fetch(f.as_uri(), tmp_path / "c", None) == f.resolve()
    with pytest.raises(DownloadError, match="checksum mismatch"):
        fetch(str(f), tmp_path / "c", "1" * 64)
    with pytest.raises(DownloadError, match="no such file"):
        fetch(str(tmp_path / "missing.tgz"), tmp_path / "c")
    with serve(tmp_path) as (url, _):
        with pytest.raises(DownloadError, match="HTTP 404"):
            fetch(f"{url}/missing", tmp_path / "c", progress=False)
