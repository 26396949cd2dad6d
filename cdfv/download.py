"""Resumable, checksum-verified downloads into a configurable cache (default ``~/.cache/cdfv``).

Sources may be ``http(s)://`` URLs, ``file://`` URLs or plain local paths. HTTP downloads resume
from a ``.part`` file with a ``Range`` request; the final file appears only after its sha256 matched.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

from cdfv.errors import CdfvError
from cdfv.io import sha256_file

CHUNK = 1 << 20


class DownloadError(CdfvError, RuntimeError):
    """A source could not be fetched or failed verification; the message says what to do."""


def _cached_name(url: str) -> str:
    name = Path(urllib.parse.urlparse(url).path).name or "download"
    tag = hashlib.sha256(url.encode()).hexdigest()[:12]
    return f"{tag}-{name}"


def _verify(path: Path, expected: str | None, source: str) -> None:
    if expected is None:
        return
    actual = sha256_file(path)
    if actual != expected:
        path.unlink(missing_ok=True)
        raise DownloadError(
            f"checksum mismatch for {source}: expected sha256 {expected}, got {actual}. "
            f"The partial/corrupt file was removed; re-run to download again, or fix the *_sha256 param."
        )


def fetch(url: str, cache_dir: Path, sha256: str | None = None, timeout: float = 60.0, progress: bool = True) -> Path:
    """Return a verified local copy of ``url`` (local paths are verified in place, not copied)."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme in ("", "file"):
        local = Path(urllib.request.url2pathname(parsed.path) if parsed.scheme == "file" else url).expanduser()
        if not local.is_file():
            raise DownloadError(f"{local}: no such file (from source {url!r}); fix the URL/path in params.yaml")
        if sha256 is not None:
            # verify a copy's hash without touching the user's file
            actual = sha256_file(local)
            if actual != sha256:
                raise DownloadError(f"checksum mismatch for {local}: expected sha256 {sha256}, got {actual}.")
        return local.resolve()
    if parsed.scheme not in ("http", "https"):
        raise DownloadError(f"unsupported source {url!r}: use http(s)://, file:// or a local path")

    cache_dir.mkdir(parents=True, exist_ok=True)
    final = cache_dir / _cached_name(url)
    if final.is_file():
        try:
            _verify(final, sha256, url)
            return final
        except DownloadError:
            pass  # corrupt cache entry: removed by _verify, download again
    part = final.with_name(final.name + ".part")
    _download_resumable(url, part, timeout, progress)
    try:
        _verify(part, sha256, url)
    except DownloadError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, final)
    return final


def _download_resumable(url: str, part: Path, timeout: float, progress: bool) -> None:
    offset = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # already complete
            return
        raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        raise DownloadError(f"{url}: cannot connect ({err}). Check the URL or use a local path/file:// URL.") from None
    with resp:
        if offset and resp.status != 206:  # server ignored Range: start over
            offset = 0
        total = resp.headers.get("Content-Length")
        total_n = int(total) + offset if total is not None else None
        mode = "ab" if offset else "wb"
        with (
            open(part, mode) as f,
            tqdm(
                total=total_n,
                initial=offset,
                unit="B",
                unit_scale=True,
                desc=Path(part.name).stem[13:],
                disable=not progress,
            ) as bar,
        ):
            try:
                while block := resp.read(CHUNK):
                    f.write(block)
                    bar.update(len(block))
            except (OSError, urllib.error.URLError) as err:
                raise DownloadError(f"{url}: transfer interrupted ({err}); re-run to resume from {part}") from None
    if total_n is not None and part.stat().st_size < total_n:
        raise DownloadError(f"{url}: transfer truncated at {part.stat().st_size}/{total_n} bytes; re-run to resume")
