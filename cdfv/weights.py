"""Public pretrained weights: one ``weights:`` entry each (URL + sha256), fetched like LFW, verified on every use.

RetinaFace (the paper's detector, thesis §5.4), the CompressAI zoo checkpoints (thesis §5.6) and
FaceNet (facenet-pytorch ``InceptionResnetV1`` on VGGFace2, Li et al.) come through the one download
helper, :func:`cdfv.download.fetch`: resumable, cached in ``<cache_dir>/weights``, sha256-verified.
The sha256 in ``params.yaml`` identifies the file: a stage lists the key of each file it reads
(``weights.retinaface``, ``weights.codecs.learned.<codec>``), so a new file reruns exactly those
stages. CompressAI's file names carry a sha256 prefix, checked as ``torch.hub`` checks it; where only
a prefix or no hash is known, the full digest is recorded on first use and checked on every later one.

Before downloading, the well-known places other tools cache the same file are tried
(``$DEEPFACE_HOME/.deepface/weights``, the torch hub checkpoints folder); offline, the error names
every place looked at, the URL and the offline alternative (``detect.backend: dlib``,
``encode.learned.pretrained: false``).

Use :func:`retinaface_path`, :func:`codec_path` and :func:`facenet_path` in stages; the planner
(:mod:`cdfv.repro`) uses :func:`files_for_key` to find what a stage's params keys point at.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cdfv.config import learned_codecs_used
from cdfv.download import ChecksumError, DownloadError, cache_entry, fetch
from cdfv.errors import CdfvError

if TYPE_CHECKING:
    from cdfv.config import Params, WeightsEntry

#: ``torch.hub.HASH_REGEX``: the sha256 prefix in a checkpoint's file name (``name-<hex>.ext``).
HUB_HASH = re.compile(r"-([a-f0-9]*)\.")
FACENET_FILE = "20180402-114759-vggface2.pt"
README_DATA = "see README › Data"


class WeightsUnavailableError(CdfvError, FileNotFoundError):
    """A weights file is neither cached nor downloadable here; the message says where to put it."""


@dataclass(frozen=True)
class WeightsFile:
    """One weights file as the params describe it."""

    key: str  # the params key a stage lists: weights.retinaface, weights.codecs.learned.<codec>
    what: str  # for messages: "RetinaFace weights"
    url: str
    sha256: str | None  # full digest or prefix (params, else the torch.hub prefix of the file name)
    places: tuple[Path, ...]  # local files tried before the download (the first that exists is used)
    download: bool  # False: only ``places`` (a path set by hand), never the URL
    alternative: str  # what runs without the file
    needed: bool  # whether the params make a stage read it

    @property
    def file_name(self) -> str:
        return Path(urllib.parse.urlparse(self.url).path).name or self.key.rsplit(".", 1)[-1]


def hub_prefix(url: str) -> str | None:
    """The sha256 prefix a torch.hub-style file name carries (``bmshj2018-hyperprior-1-7eb97409.pth.tar``)."""
    m = HUB_HASH.search(Path(urllib.parse.urlparse(url).path).name)
    return m.group(1) if m and m.group(1) else None


def expected_sha256(entry: WeightsEntry) -> str | None:
    """The params' sha256 (full or prefix), else the prefix in the file name, else None; both must agree."""
    prefix = hub_prefix(entry.url)
    if entry.sha256 and prefix and not (entry.sha256.startswith(prefix) or prefix.startswith(entry.sha256)):
        raise ChecksumError(
            f"{entry.url}: the file name carries sha256 prefix {prefix} but params.yaml says {entry.sha256}; fix one"
        )
    if entry.sha256 and prefix and len(prefix) > len(entry.sha256):
        return prefix
    return entry.sha256 or prefix


def torch_hub_dir() -> Path:
    """``torch.hub.get_dir()`` without importing torch: ``$TORCH_HOME/hub`` (default ``~/.cache/torch/hub``)."""
    xdg = Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser()
    return Path(os.environ.get("TORCH_HOME", xdg / "torch")).expanduser() / "hub"


def cache_dir(params: Params) -> Path:
    """``<cache_dir>/weights`` (``$CDFV_CACHE`` overrides ``cache_dir``)."""
    return params.cache_path / "weights"


def _entry(params: Params, key: str, entry: WeightsEntry | None) -> WeightsEntry:
    if entry is None:
        raise WeightsUnavailableError(f"params.yaml has no {key} entry (url + sha256): add it (see params.yaml)")
    return entry


# ---- the weights the project reads ---------------------------------------------------------------
def retinaface(params: Params) -> WeightsFile:
    """RetinaFace-R50 (``retinaface.pth``), read by ``detect_lfw`` when ``detect.backend: retinaface``."""
    w = params.weights.retinaface if params.weights else None
    entry = _entry(params, "weights.retinaface", w)
    configured = params.detect.retinaface.weights
    home = Path(os.environ.get("DEEPFACE_HOME", str(Path.home())))
    return WeightsFile(
        key="weights.retinaface",
        what="RetinaFace weights",
        url=entry.url,
        sha256=expected_sha256(entry),
        places=(Path(configured).expanduser(),) if configured else (home / ".deepface" / "weights" / "retinaface.pth",),
        download=not configured,
        alternative="or run offline with detect.backend: dlib",
        needed=params.detect.backend == "retinaface",
    )


def codec(params: Params, name: str) -> WeightsFile:
    """The CompressAI zoo checkpoint of learned codec ``name`` (``weights.codecs.learned.<name>``)."""
    learned = (params.weights.codecs.get("learned") or {}) if params.weights else {}
    key = f"weights.codecs.learned.{name}"
    entry = _entry(params, key, learned.get(name))
    file_name = Path(urllib.parse.urlparse(entry.url).path).name
    return WeightsFile(
        key=key,
        what=f"CompressAI weights of {name}",
        url=entry.url,
        sha256=expected_sha256(entry),
        places=(torch_hub_dir() / "checkpoints" / file_name,),
        download=True,
        alternative="or set encode.learned.pretrained: false for an untrained smoke run",
        needed=params.encode.learned.pretrained,
    )


def facenet(params: Params) -> WeightsFile:
    """facenet-pytorch ``InceptionResnetV1(pretrained="vggface2")`` state dict (``weights.facenet_vggface2``)."""
    entry = _entry(params, "weights.facenet_vggface2", params.weights.facenet_vggface2 if params.weights else None)
    return WeightsFile(
        key="weights.facenet_vggface2",
        what="FaceNet (VGGFace2) weights",
        url=entry.url,
        sha256=expected_sha256(entry),
        places=(torch_hub_dir() / "checkpoints" / FACENET_FILE,),
        download=True,
        alternative="",
        needed=True,
    )


def files_for_key(params: Params, key: str, item: str | None = None) -> list[WeightsFile]:
    """The weights files under a params key a stage lists (``weights``, ``weights.codecs.learned`` ...).

    A group key (``weights.codecs.learned``) means the stage's own codec when ``item`` (the stage's
    ``@<item>``) names one, else every learned codec the params use.
    """
    if params.weights is None or not (key == "weights" or key.startswith("weights.")):
        return []
    parts = key.split(".")[1:]
    out: list[WeightsFile] = []
    if parts in ([], ["retinaface"]) and params.weights.retinaface:
        out.append(retinaface(params))
    if parts in ([], ["facenet_vggface2"]) and params.weights.facenet_vggface2:
        out.append(facenet(params))
    if not parts or parts[0] == "codecs":
        if len(parts) >= 3:
            names = [parts[2]] if parts[1] == "learned" else []
        elif len(parts) == 2 and parts[1] != "learned":
            names = []  # weights.codecs.<family without weights>
        else:
            used = list(learned_codecs_used(params))
            names = [item] if item in used else used
        out += [codec(params, n) for n in names]
    return out


# ---- resolution ----------------------------------------------------------------------------------
def resolve(w: WeightsFile, cache: Path, progress: bool = True) -> Path:
    """A verified local copy of ``w``: the first existing place, else the cached download, else download.

    A checksum mismatch raises :class:`cdfv.download.ChecksumError` naming expected and actual (nothing
    is left behind); an unreachable URL raises :class:`WeightsUnavailableError` naming every place
    looked at, the URL and the offline alternative.
    """
    for place in w.places:
        if place.is_file():
            try:
                return fetch(str(place), cache, w.sha256, progress=progress)
            except ChecksumError as err:
                raise ChecksumError(f"{w.key}: {err}") from None
    if not w.download:
        raise WeightsUnavailableError(f"{w.what} not found at {w.places[0]}. {_advice(w, cache)}")
    try:
        return fetch(w.url, cache, w.sha256, progress=progress)
    except ChecksumError as err:
        raise ChecksumError(f"{w.key}: {err}") from None
    except DownloadError as err:
        raise WeightsUnavailableError(f"{w.what} ({w.key}) unavailable: {err}\n{_advice(w, cache)}") from None


def _advice(w: WeightsFile, cache: Path) -> str:
    looked = [*w.places, cache_entry(w.url, cache)] if w.download else list(w.places)
    where = "\n  ".join(str(p) for p in looked)
    alt = f", {w.alternative}" if w.alternative else ""
    return (
        f"Looked in:\n  {where}\nDownload {w.url} on a connected machine and copy it to {w.places[0]} "
        f"(or set {w.key}.url to its local path){alt}; {README_DATA}."
    )


def retinaface_path(params: Params, progress: bool = True) -> Path | None:
    """The verified ``retinaface.pth`` (None when ``detect.backend`` is not retinaface)."""
    if params.detect.backend != "retinaface":
        return None
    return resolve(retinaface(params), cache_dir(params), progress)


def codec_path(params: Params, name: str, progress: bool = True) -> Path | None:
    """The verified zoo checkpoint of learned codec ``name`` (None when ``encode.learned.pretrained`` is false)."""
    if not params.encode.learned.pretrained:
        return None
    return resolve(codec(params, name), cache_dir(params), progress)


def facenet_path(params: Params, progress: bool = True) -> Path:
    """The verified FaceNet (VGGFace2) state dict: ``InceptionResnetV1(pretrained=None)`` then
    ``load_state_dict(torch.load(path))`` (the stage must list ``weights.facenet_vggface2``)."""
    return resolve(facenet(params), cache_dir(params), progress)
