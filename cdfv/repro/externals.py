"""Inputs from outside the DVC graph: how to find that a stage needs one, how to detect it, what unlocks it.

A stage needs an external input when its ``params`` list names the input's key (``ingest_vggface2``
lists ``vggface2``, ``detect_lfw`` lists ``weights.retinaface``): the same declaration that makes DVC
rerun the stage when the input changes. A new stage that reads one of these inputs fits without code
changes; a new *kind* of input is one row of :data:`EXTERNALS`.

Downloads (LFW, public weights) are fetched here, before any stage runs, through the one download
helper (resumable, cached, verified), so "present" means "fetched and verified"; the stages then find
them in the cache.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cdfv.config import Params
from cdfv.errors import CdfvError
from cdfv.weights import README_DATA

#: ``(params, key the stage lists, the stage's @item, fetch) -> the action that provides the input, or None``;
#: ``fetch=False`` (``cdfv repro --dry-run``): look, download nothing, count a public download as available.
Check = Callable[[Params, str, "str | None", bool], "str | None"]


@dataclass(frozen=True)
class External:
    """One kind of input from outside the graph, found through a params key a stage lists."""

    name: str
    key: str  # params key (prefix): a stage listing it, or a key inside it, reads the input
    check: Check

    def applies(self, listed: str) -> bool:
        return listed == self.key or listed.startswith(self.key + ".") or self.key.startswith(listed + ".")


def _vggface2(params: Params, key: str, item: str | None, fetch: bool = True) -> str | None:
    from cdfv.data.vggface2 import DatasetMissingError, find_root

    root = Path(params.require("vggface2").root).expanduser()
    try:
        find_root(root)
    except DatasetMissingError:
        return (
            f"VGGFace2 not found at {root}: extract its identity folders there or set vggface2.root in "
            f"params.yaml ({README_DATA})"
        )
    return None


def _lfw(params: Params, key: str, item: str | None, fetch: bool = True) -> str | None:
    from cdfv import download

    cfg = params.require("lfw")
    for url, sha in ((cfg.archive_url, cfg.archive_sha256), (cfg.pairs_url, cfg.pairs_sha256)):
        if not fetch:  # dry run: a local source must exist; a URL counts as downloadable
            if "://" not in url and not Path(url).expanduser().exists():
                return f"LFW source {url} not found: fix lfw.archive_url / lfw.pairs_url ({README_DATA})"
            continue
        try:
            download.fetch(url, params.cache_path, sha)
        except CdfvError as err:
            return (
                f"LFW unavailable ({err}): connect to the network, or point lfw.archive_url / lfw.pairs_url at "
                f"local copies ({README_DATA})"
            )
    return None


def _weights(params: Params, key: str, item: str | None, fetch: bool = True) -> str | None:
    from cdfv.weights import cache_dir, files_for_key, resolve

    for w in files_for_key(params, key, item):
        if not w.needed or (not fetch and w.download):
            continue
        try:
            resolve(w, cache_dir(params))
        except CdfvError as err:
            return str(err)
    return None


#: The external inputs the pipeline knows (the one table to extend).
EXTERNALS: tuple[External, ...] = (
    External("VGGFace2 (registration required)", "vggface2", _vggface2),
    External("LFW (public download)", "lfw", _lfw),
    External("pretrained weights (public downloads)", "weights", _weights),
)


class InputChecker:
    """``missing_inputs(stage)`` for :func:`cdfv.repro.plan.make_plan`, each (input, key, item) checked once."""

    def __init__(self, params: Params, externals: tuple[External, ...] = EXTERNALS, fetch: bool = True) -> None:
        self.params = params
        self.externals = externals
        self.fetch = fetch
        self._memo: dict[tuple[str, str, str | None], str | None] = {}

    def __call__(self, stage: object) -> str | None:
        params_keys: tuple[str, ...] = getattr(stage, "params", ())
        item: str | None = getattr(stage, "item", None)
        for listed in params_keys:
            for ext in self.externals:
                if not ext.applies(listed):
                    continue
                memo_key = (ext.name, listed, item)
                if memo_key not in self._memo:
                    try:
                        self._memo[memo_key] = ext.check(self.params, listed, item, self.fetch)
                    except CdfvError as err:  # e.g. the section the input needs is absent from params.yaml
                        self._memo[memo_key] = str(err)
                if self._memo[memo_key] is not None:
                    return self._memo[memo_key]
        return None
