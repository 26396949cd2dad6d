"""Canonical locations of every stage output (relative to the DVC workspace root).

``dvc.yaml`` spells the same paths; CLI defaults come from here.
"""

from __future__ import annotations

from pathlib import Path

DATA = Path("data")
RAW = DATA / "raw"
INTERIM = DATA / "interim"
PROCESSED = DATA / "processed"
REPORTS = Path("reports")
METRICS = REPORTS / "metrics"
PLOTS = REPORTS / "plots"
FIGURES = REPORTS / "figures"

LFW_RAW = RAW / "lfw"
LFW_INTERIM = INTERIM / "lfw"
LFW_PNG = LFW_INTERIM / "png"
LFW_IMAGES = LFW_INTERIM / "images.parquet"
LFW_PAIRS = LFW_INTERIM / "pairs.parquet"

VGGFACE2_INTERIM = INTERIM / "vggface2"
VGGFACE2_PNG = VGGFACE2_INTERIM / "png"
VGGFACE2_IMAGES = VGGFACE2_INTERIM / "images.parquet"

# --- detect_lfw / align_lfw (issue 3) ---
LFW_DETECTIONS = LFW_INTERIM / "detections.parquet"
LFW_FACES = LFW_INTERIM / "faces.parquet"
LFW_FACES_DIR = LFW_INTERIM / "faces"  # <image_id>.png, 224x224 RGB aligned faces
DETECT_LFW_METRICS = METRICS / "detect_lfw.json"
ALIGN_LFW_METRICS = METRICS / "align_lfw.json"
ALIGN_CONTACT_SHEET = FIGURES / "align_contact_sheet.png"

# --- models, training and complexity (issue 5) ---
MODELS = Path("models")
RESNET50_DIR = MODELS / "resnet50"
CRESNET39_DIR = MODELS / "cresnet39"
TRAIN_REPORTS = REPORTS / "train"
COMPLEXITY_JSON = METRICS / "complexity.json"
VGGFACE2_LATENTS = PROCESSED / "vggface2" / "latents"


def model_dir(model: str, codec: str | None = None) -> Path:
    """``models/resnet50`` or ``models/cresnet39/<codec>``: model.pt, phase1.pt (DVC outputs)."""
    return MODELS / model if codec is None else MODELS / model / codec


def checkpoint_dir(model: str, codec: str | None = None) -> Path:
    """Resumable checkpoints of one training run, ``models/<run>/checkpoints``.

    Deliberately *not* a DVC output (a clone or ``dvc pull`` never needs it): it only lets an
    interrupted run of the same inputs resume, and a completed run deletes it.
    """
    return model_dir(model, codec) / "checkpoints"


def train_report_dir(model: str, codec: str | None = None) -> Path:
    """DVCLive folder of one training run: ``reports/train/resnet50`` or ``.../cresnet39/<codec>``."""
    return TRAIN_REPORTS / model if codec is None else TRAIN_REPORTS / model / codec


def vggface2_latent_index(codec: str) -> Path:
    """Latent shard index written by stage ``latents_vggface2@<codec>``."""
    return VGGFACE2_LATENTS / codec / "index.parquet"


# --- codecs, encode_lfw, latent shards, RD report (issue 4) -----------------------------------
LFW_PROCESSED = PROCESSED / "lfw"
RATE_METRICS = METRICS / "rate"
RD_PLOTS = PLOTS / "rd"
RD_REPORT = REPORTS / "rd.md"
RD_METRICS = METRICS / "rd.json"


def codec_dir(codec: str) -> Path:
    """``data/processed/lfw/<codec>``: index.parquet, bitstreams/, decoded/, latents/ (stage encode_lfw@<codec>)."""
    return LFW_PROCESSED / codec


def codec_index(codec: str) -> Path:
    """Per-image bpp/PSNR/MS-SSIM and bitstream/decoded paths of one codec."""
    return codec_dir(codec) / "index.parquet"


def lfw_latent_index(codec: str) -> Path:
    """LFW latent shard index (learned codecs with ``latents: true``)."""
    return codec_dir(codec) / "latents" / "index.parquet"


def rate_json(codec: str) -> Path:
    """Rate summary of one codec for ``dvc metrics diff``."""
    return RATE_METRICS / f"{codec}.json"

# --- evaluation (issue 6) ------------------------------------------------------------------------
EVAL_METRICS = METRICS / "eval"
ROC_PLOTS = PLOTS / "roc"
RATE_METRIC_PLOTS = PLOTS / "rate_metric"
FIG4 = FIGURES / "fig4.png"
TABLE7 = REPORTS / "table7.md"


def eval_dir(model: str) -> Path:
    """Per-solution scores and embeddings: ``data/processed/lfw/eval/<model>``."""
    return LFW_PROCESSED / "eval" / model


# --- pipeline B1, thesis ch. 5 "decode then crop": whole-image codec -> decode -> crop -> align
LFW_FULL = PROCESSED / "lfw_full"
RATE_FULL_METRICS = METRICS / "rate_full"


def full_codec_dir(codec: str) -> Path:
    """``data/processed/lfw_full/<codec>``: index.parquet, bitstreams/, decoded/ 250^2 PNGs (encode_lfw_full@<codec>)."""
    return LFW_FULL / codec


def full_codec_index(codec: str) -> Path:
    return full_codec_dir(codec) / "index.parquet"


def full_faces_dir(codec: str) -> Path:
    """``data/processed/lfw_full_faces/<codec>``: faces.parquet + faces/ (align_lfw_full@<codec>)."""
    return PROCESSED / "lfw_full_faces" / codec


def full_rate_json(codec: str) -> Path:
    return RATE_FULL_METRICS / f"{codec}.json"
