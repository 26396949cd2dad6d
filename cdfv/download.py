"""Resumable, checksum-verified downloads into a configurable cache (default ``~/.cache/cdfv``).

The one download helper of the project: LFW (``ingest_lfw``) and the public pretrained weights
(:mod:`cdfv.weights`) come through :func:`fetch`. Sources may be ``http(s)://`` URLs, ``file://``
URLs or plain local paths. HTTP downloads resume from a ``.part`` file with a ``Range`` request;
the final file appears only after its sha256 matched.

``sha256`` is the full hex digest, a prefix of it (torch.hub / CompressAI file names carry the first
8 digits) or ``None``. Whenever the full digest is not known, the one seen on first use is recorded
beside the cache entry (``<entry>.sha256``) and every later use must match it, so a replaced or
corrupted file never passes silently.
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

from cdfv.errors import CdfvError
from cdfv.io import sha256_file, write_bytes_atomic

CHUNK = 1 << 20
FULL = 64  # hex digits of a sha256


class DownloadError(CdfvError, RuntimeError):
    """A source could not be fetched or failed verification; the message says what to do."""


class ChecksumError(DownloadError):
    """The bytes do not have the expected (or the recorded) sha256; the message names both."""


def _cached_name(url: str) -> str:
    name = Path(urllib.parse.urlparse(url).path).name or "download"
    tag = hashlib.sha256(url.encode()).hexdigest()[:12]
    return f"{tag}-{name}"


def cache_entry(url: str, cache_dir: Path) -> Path:
    """Where :func:`fetch` keeps the download of ``url`` (for local sources: where its record lives)."""
    return Path(cache_dir) / _cached_name(url)


def record_path(entry: Path) -> Path:
    """The file holding the full sha256 first seen for a cache entry."""
    return entry.with_name(entry.name + ".sha256")


def _check_expected(sha256: str | None) -> str | None:
    if sha256 is not None and not re.fullmatch(r"[0-9a-f]{1,64}", sha256):
        raise DownloadError(f"sha256 {sha256!r}: expected lowercase hex digits (the full digest or a prefix)")
    return sha256


def _describe(expected: str) -> str:
    return f"sha256 {expected}" if len(expected) == FULL else f"sha256 prefix {expected}"


def _verify(actual: str, expected: str | None, source: str, fix: str) -> None:
    if expected is not None and not actual.startswith(expected):
        raise ChecksumError(
            f"checksum mismatch for {source}: expected {_describe(expected)}, got sha256 {actual}. {fix}"
        )


def _check_record(record: Path, actual: str, expected: str | None, source: str) -> None:
    """Verify ``actual`` against the record of an earlier use (prefix/no hash known), else write it."""
    if expected is not None and len(expected) == FULL:
        if not record.is_file() or record.read_text().split()[0] != actual:
            write_bytes_atomic(record, f"{actual}\n".encode())  # the params identify the file
        return
    if record.is_file():
        recorded = record.read_text().split()[0]
        if recorded != actual:
            raise ChecksumError(
                f"checksum mismatch for {source}: expected sha256 {recorded} (recorded in {record} on first use), "
                f"got sha256 {actual}. If the new file is intended, put its full sha256 in params.yaml (a params "
                f"change reruns the stages that read it) or delete {record}."
            )
        return
    write_bytes_atomic(record, f"{actual}\n".encode())


def fetch(url: str, cache_dir: Path, sha256: str | None = None, timeout: float = 60.0, progress: bool = True) -> Path:
    """Return a verified local copy of ``url`` (local paths are verified in place, not copied)."""
    expected = _check_expected(sha256)
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme in ("", "file"):
        local = Path(urllib.request.url2pathname(parsed.path) if parsed.scheme == "file" else url).expanduser()
        if not local.is_file():
            raise DownloadError(f"{local}: no such file (from source {url!r}); fix the URL/path in params.yaml")
        if expected is not None and len(expected) == FULL:
            _verify(sha256_file(local), expected, str(local), "Replace the file or fix the sha256 in params.yaml.")
        else:  # only a prefix or nothing known: verify against what the first use recorded
            actual = sha256_file(local)
            _verify(actual, expected, str(local), "Replace the file or fix the sha256 in params.yaml.")
            _check_record(record_path(cache_entry(str(local.resolve()), cache_dir)), actual, expected, str(local))
        return local.resolve()
    if parsed.scheme not in ("http", "https"):
        raise DownloadError(f"unsupported source {url!r}: use http(s)://, file:// or a local path")

    cache_dir.mkdir(parents=True, exist_ok=True)
    final = cache_entry(url, cache_dir)
    record = record_path(final)
    if final.is_file():
        actual = sha256_file(final)
        try:
            _verify(actual, expected, url, "")
            _check_record(record, actual, expected, url)
            return final
        except ChecksumError:
            final.unlink(missing_ok=True)  # corrupt or replaced cache entry: download again
    part = final.with_name(final.name + ".part")
    _download_resumable(url, part, timeout, progress)
    actual = sha256_file(part)
    try:
        _verify(
            actual,
            expected,
            url,
            "The partial/corrupt file was removed; re-run to download again, or fix the sha256 in params.yaml.",
        )
        _check_record(record, actual, expected, url)
    except ChecksumError:
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
