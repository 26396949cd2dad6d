import io
import tarfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from cdfv import paths
from cdfv.config import LfwParams, ParamsError, VggFace2Params
from cdfv.data.convert import CorruptImagesError
from cdfv.data.lfw import ingest_lfw
from cdfv.data.pairs import PairsFormatError
from cdfv.data.vggface2 import DatasetMissingError, ingest_vggface2, split_identities
from cdfv.download import DownloadError


def _jpeg(seed: int, mode: str = "RGB") -> bytes:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 255, (250, 250, 3), dtype=np.uint8)
    im = Image.fromarray(arr).convert(mode)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _make_lfw(tmp: Path, members: dict[str, bytes], pairs: str) -> LfwParams:
    tgz = tmp / "lfw.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"lfw/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (tmp / "pairs.txt").write_text(pairs)
    return LfwParams(archive_url=str(tgz), pairs_url=str(tmp / "pairs.txt"), workers=1)


PAIRS = "1\t1\nA\t1\t2\nA\t1\tB\t1\n"


def test_ingest_small_archive(tmp_path: Path) -> None:
    cfg = _make_lfw(
        tmp_path,
        {"A/A_0001.jpg": _jpeg(1), "A/A_0002.jpg": _jpeg(2, "L"), "B/B_0001.jpg": _jpeg(3, "CMYK")},
        PAIRS,
    )
    images, pairs = ingest_lfw(cfg, tmp_path / "cache", tmp_path)
    assert images["image_id"].to_pylist() == ["A/A_0001", "A/A_0002", "B/B_0001"]
    for row in images.to_pylist():
        im = Image.open(tmp_path / row["path"])
        assert im.format == "PNG" and im.mode == "RGB" and im.size == (250, 250)
    assert pq.read_table(tmp_path / paths.LFW_PAIRS).num_rows == 2 == pairs.num_rows


def test_corrupt_image_fails_or_skips(tmp_path: Path) -> None:
    members = {
        "A/A_0001.jpg": _jpeg(1),
        "A/A_0002.jpg": _jpeg(2)[:400],
        "B/B_0001.jpg": _jpeg(3),
        "B/B_0002.jpg": b"not a jpeg",
    }
    cfg = _make_lfw(tmp_path, members, "1\t1\nA\t1\t1\nA\t1\tB\t1\n")
    with pytest.raises(CorruptImagesError, match="B/B_0002"):
        ingest_lfw(cfg, tmp_path / "cache", tmp_path)
    assert not (tmp_path / paths.LFW_IMAGES).exists()  # no half-written Parquet
    assert not (tmp_path / paths.LFW_PNG).exists()  # temp folder removed
    images, _ = ingest_lfw(cfg.model_copy(update={"on_corrupt": "skip"}), tmp_path / "cache", tmp_path)
    assert set(images["image_id"].to_pylist()) == {"A/A_0001", "B/B_0001"}


def test_pairs_naming_missing_image(tmp_path: Path) -> None:
    cfg = _make_lfw(tmp_path, {"A/A_0001.jpg": _jpeg(1), "A/A_0002.jpg": _jpeg(2)}, PAIRS)
    with pytest.raises(PairsFormatError, match=r"line 3: B/B_0001"):
        ingest_lfw(cfg, tmp_path / "cache", tmp_path)
    assert not (tmp_path / paths.LFW_IMAGES).exists()


def test_truncated_archive(tmp_path: Path) -> None:
    cfg = _make_lfw(tmp_path, {f"A/A_{i:04d}.jpg": _jpeg(i) for i in range(1, 30)}, "1\t1\nA\t1\t2\nA\t1\tA\t3\n")
    tgz = Path(cfg.archive_url)
    tgz.write_bytes(tgz.read_bytes()[: tgz.stat().st_size // 2])
    with pytest.raises(DownloadError, match="truncated or corrupt archive"):
        ingest_lfw(cfg, tmp_path / "cache", tmp_path)


def test_vggface2_split_numbers_of_the_paper() -> None:
    ids = [f"n{i:06d}" for i in range(8631)]
    val = split_identities(ids, 863, 2023)
    assert len(val) == 863 and len(set(ids) - val) == 7768
    assert val == split_identities(list(reversed(ids)), 863, 2023)  # deterministic, order-free
    with pytest.raises(ParamsError, match="val_identities"):
        split_identities(ids[:5], 5, 0)


def test_vggface2_ingest(tmp_path: Path, shared_dir: Path) -> None:
    cfg = VggFace2Params(root=str(shared_dir / "fixtures/vggface2-mini"), val_identities=2, workers=1)
    t = ingest_vggface2(cfg, tmp_path).to_pandas()
    assert len(t) == 25 and t.identity.nunique() == 9
    assert t.groupby("identity").split.nunique().max() == 1  # identity-disjoint
    assert t.groupby("split").identity.nunique().to_dict() == {"train": 7, "val": 2}
    assert sorted(t.label.unique()) == list(range(9))
    assert Image.open(tmp_path / t.path[0]).size == (112, 112)


def test_vggface2_missing_says_where_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(DatasetMissingError, match=r"vggface2\.root"):
        ingest_vggface2(VggFace2Params(root=str(tmp_path / "nope")), tmp_path)


def test_interrupt_mid_stage_then_rerun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C during conversion leaves no outputs and no temp folder; a rerun completes."""
    import cdfv.data.convert as convert

    cfg = _make_lfw(tmp_path, {"A/A_0001.jpg": _jpeg(1), "A/A_0002.jpg": _jpeg(2), "B/B_0001.jpg": _jpeg(3)}, PAIRS)
    real, calls = convert.convert_one, []

    def flaky(job):  # type: ignore[no-untyped-def]
        calls.append(job.image_id)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(job)

    monkeypatch.setattr(convert, "convert_one", flaky)
    with pytest.raises(KeyboardInterrupt):
        ingest_lfw(cfg, tmp_path / "cache", tmp_path)
    leftovers = (
        [p.name for p in (tmp_path / paths.LFW_INTERIM).iterdir()] if (tmp_path / paths.LFW_INTERIM).exists() else []
    )
    assert leftovers == []
    monkeypatch.setattr(convert, "convert_one", real)
    images, _ = ingest_lfw(cfg, tmp_path / "cache", tmp_path)
    assert images.num_rows == 3
