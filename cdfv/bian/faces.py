"""CASIA-WebFace (or any identity-folder tree) for Bian et al.: MTCNN + the similarity alignment (§2.3).

See :mod:`cdfv.bian.data` for the training-face index these rows go into.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cdfv import paths
from cdfv.align.similarity import align_to_reference, box_landmarks
from cdfv.bian.data import TrainingFacesError, vggface2_rows, write_index
from cdfv.config import Params, VggFace2Params
from cdfv.io import atomic_path, encode_png, read_rgb, write_json_atomic


def casia_available(root: Path) -> bool:
    """True when ``root`` (or its ``train/``) holds at least one identity folder."""
    root = Path(root).expanduser()
    if (root / "train").is_dir():
        root = root / "train"
    return root.is_dir() and any(p.is_dir() for p in root.iterdir())


def chosen_source(params: Params) -> str:
    """``casia`` or ``vggface2`` for ``bian.identities.source`` (``auto``: CASIA when present)."""
    ident = params.bian.identities
    if ident.source == "auto":
        return "casia" if casia_available(Path(ident.casia_root)) else "vggface2"
    if ident.source == "casia" and not casia_available(Path(ident.casia_root)):
        raise TrainingFacesError(
            f"bian.identities.source is casia but {ident.casia_root} holds no identity folders: put CASIA-WebFace "
            "(<identity>/<image>) there, point bian.identities.casia_root at it, or set source: auto / vggface2"
        )
    return ident.source


def casia_rows(params: Params, root: Path, progress: bool = True) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """MTCNN + similarity alignment of every CASIA image into ``data/interim/bian/train/faces``."""
    from tqdm import tqdm

    from cdfv.chunks import chunked
    from cdfv.data.vggface2 import scan
    from cdfv.detect import make_detector, schedule
    from cdfv.detect.heuristic import choose_face, fallback_box

    ident = params.bian.identities
    src = Path(ident.casia_root).expanduser()
    src = src / "train" if (src / "train").is_dir() else src
    items = scan(
        src,
        VggFace2Params(
            root=str(src),
            max_identities=ident.max_identities,
            max_images_per_identity=ident.max_images_per_identity,
            split_seed=params.bian.train.seed,
        ),
    )
    dp = params.detect.model_copy(update={"backend": "mtcnn"})
    det, sched = make_detector(dp), schedule(dp)
    ref = params.align.references[params.bian.reference]
    idents = sorted({i for _, i, _ in items})
    label = {k: i for i, k in enumerate(idents)}
    rows, counts = [], {"ok": 0, "no_face": 0, "unreadable": 0}
    with atomic_path(root / paths.BIAN_TRAIN_FACES_DIR) as tmp:
        tmp.mkdir(parents=True)
        bar = tqdm(total=len(items), desc="CASIA: MTCNN + align", unit="img", disable=not progress)
        for part in chunked(items, dp.mtcnn.batch_size):
            imgs = []
            for _, _, f in part:
                try:
                    imgs.append(read_rgb(f))
                except Exception:  # noqa: BLE001 - recorded and skipped (a training set, not the test set)
                    imgs.append(None)
            ok = [k for k, im in enumerate(imgs) if im is not None]
            found = det.detect_batch([imgs[k] for k in ok], sched.stop)
            faces_of = dict(zip(ok, found))
            for k, (image_id, identity, _) in enumerate(part):
                img = imgs[k]
                if img is None:
                    counts["unreadable"] += 1
                    continue
                h, w = img.shape[:2]
                cands = faces_of[k]
                c = choose_face(cands, w, h, sched.start, sched.stop, sched.step)
                if c.status == "ok":
                    lm = cands[c.index].landmarks
                    counts["ok"] += 1
                else:
                    lm = box_landmarks(fallback_box(w, h, dp.fallback, dp.fallback_fraction), ref)
                    counts["no_face"] += 1
                face = align_to_reference(img, lm, ref, params.align.interpolation).image
                target = tmp / f"{image_id}.png"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(encode_png(face))
                rows.append(
                    dict(
                        image_id=image_id,
                        identity=identity,
                        label=label[identity],
                        path=str(paths.BIAN_TRAIN_FACES_DIR / f"{image_id}.png"),
                        template="",
                        source="casia",
                    )
                )
            bar.update(len(part))
        bar.close()
    return rows, counts


def run_bian_faces(params: Params, root: Path = Path(".")) -> dict[str, Any]:
    """Stage ``bian_faces``: the training index (CASIA via MTCNN, else VGGFace2 re-aligned)."""
    source = chosen_source(params)
    counts: dict[str, int] = {}
    if source == "casia":
        rows, counts = casia_rows(params, root)
    else:
        rows = vggface2_rows(params, root)
        with atomic_path(root / paths.BIAN_TRAIN_FACES_DIR) as tmp:
            tmp.mkdir(parents=True)  # empty: VGGFace2 rows point at the ingested PNGs
    write_index(rows, root)
    metrics = {
        "source": source,
        "images": len(rows),
        "identities": len({r["identity"] for r in rows}),
        "reference": params.bian.reference,
        **({"mtcnn": counts} if counts else {"template": params.bian.identities.vggface2_template}),
    }
    write_json_atomic(root / paths.BIAN_TRAIN_DETAILS, metrics)
    return metrics
