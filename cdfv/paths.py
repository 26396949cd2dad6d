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

# detect_lfw / align_lfw (engineer "detect")
LFW_DETECTIONS = LFW_INTERIM / "detections.parquet"
LFW_FACES = LFW_INTERIM / "faces.parquet"
LFW_FACES_DIR = LFW_INTERIM / "faces"  # <image_id>.png, 224x224 RGB aligned faces
DETECT_LFW_METRICS = METRICS / "detect_lfw.json"
ALIGN_LFW_METRICS = METRICS / "align_lfw.json"
ALIGN_CONTACT_SHEET = FIGURES / "align_contact_sheet.png"

# Models, training and complexity (engineer "train")
MODELS = Path("models")
RESNET50_DIR = MODELS / "resnet50"
CRESNET39_DIR = MODELS / "cresnet39"
TRAIN_REPORTS = REPORTS / "train"
COMPLEXITY_JSON = METRICS / "complexity.json"
VGGFACE2_LATENTS = PROCESSED / "vggface2" / "latents"


def model_dir(model: str, codec: str | None = None) -> Path:
    """``models/resnet50`` or ``models/cresnet39/<codec>``: model.pt, phase1.pt, checkpoints/."""
    return MODELS / model if codec is None else MODELS / model / codec


def train_report_dir(model: str, codec: str | None = None) -> Path:
    """DVCLive folder of one training run: ``reports/train/resnet50`` or ``.../cresnet39/<codec>``."""
    return TRAIN_REPORTS / model if codec is None else TRAIN_REPORTS / model / codec


def vggface2_latent_index(codec: str) -> Path:
    """Latent shard index written by stage ``latents_vggface2@<codec>``."""
    return VGGFACE2_LATENTS / codec / "index.parquet"
