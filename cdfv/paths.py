"""Canonical locations of every stage output (relative to the DVC workspace root).

The one home of the project's paths: ``dvc.yaml`` spells the same paths, every stage and flow
reads them from here. Ordered by data flow: ingestion → detection/alignment → codecs → pipeline B1
→ rate–distortion → VGGFace2 latents → models → complexity → evaluation.
"""

from __future__ import annotations

from pathlib import Path

DATA = Path("data")
RAW = DATA / "raw"
INTERIM = DATA / "interim"
PROCESSED = DATA / "processed"
REPORTS = Path("reports")
METRICS = REPORTS / "metrics"
DETAILS = REPORTS / "details"  # the undeclared twin of every metrics file (see details_json below)
PLOTS = REPORTS / "plots"
FIGURES = REPORTS / "figures"
MODELS = Path("models")

# --- ingestion: LFW (View 2) and VGGFace2 -------------------------------------------------------
LFW_RAW = RAW / "lfw"
LFW_INTERIM = INTERIM / "lfw"
LFW_PNG = LFW_INTERIM / "png"
LFW_IMAGES = LFW_INTERIM / "images.parquet"
LFW_PAIRS = LFW_INTERIM / "pairs.parquet"

VGGFACE2_INTERIM = INTERIM / "vggface2"
VGGFACE2_PNG = VGGFACE2_INTERIM / "png"
VGGFACE2_IMAGES = VGGFACE2_INTERIM / "images.parquet"

# --- detection and alignment (detect_lfw, align_lfw) --------------------------------------------
LFW_DETECTIONS = LFW_INTERIM / "detections.parquet"
LFW_FACES = LFW_INTERIM / "faces.parquet"
LFW_FACES_DIR = LFW_INTERIM / "faces"  # <image_id>.png, 224x224 RGB aligned faces
DETECT_LFW_METRICS = METRICS / "detect_lfw.json"
ALIGN_LFW_DETAILS = DETAILS / "align_lfw.json"  # counts and timing only: no declared metrics
ALIGN_CONTACT_SHEET = FIGURES / "align_contact_sheet.png"

# --- MTCNN detection + similarity-transform alignment (detect_lfw_mtcnn, align_lfw_mtcnn@<set>) -----
LFW_MTCNN = LFW_INTERIM / "mtcnn"
LFW_MTCNN_DETECTIONS = LFW_MTCNN / "detections.parquet"
DETECT_LFW_MTCNN_METRICS = METRICS / "detect_lfw_mtcnn.json"
ALIGN_LFW_MTCNN_METRICS = METRICS / "align_lfw_mtcnn"


def mtcnn_faces_dir(reference: str) -> Path:
    """``data/interim/lfw/mtcnn/<reference set>``: faces.parquet + faces/<image_id>.png (align_lfw_mtcnn@)."""
    return LFW_MTCNN / reference


def mtcnn_faces_index(reference: str) -> Path:
    return mtcnn_faces_dir(reference) / "faces.parquet"


def align_mtcnn_json(reference: str) -> Path:
    return ALIGN_LFW_MTCNN_METRICS / f"{reference}.json"


# --- codecs on aligned faces (encode_lfw@<codec>: pipelines B2 and C) ---------------------------
LFW_PROCESSED = PROCESSED / "lfw"
RATE_METRICS = METRICS / "rate"


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
    """Probe-mean bpp, PSNR, MS-SSIM of one codec for ``dvc metrics diff`` (details: :func:`details_json`)."""
    return RATE_METRICS / f"{codec}.json"


# --- pipeline B1, thesis ch. 5 "decode then crop" (encode_lfw_full@, align_lfw_full@) ------------
LFW_FULL = PROCESSED / "lfw_full"
LFW_FULL_FACES = PROCESSED / "lfw_full_faces"
RATE_FULL_METRICS = METRICS / "rate_full"


def full_codec_dir(codec: str) -> Path:
    """``data/processed/lfw_full/<codec>``: index.parquet, bitstreams/, decoded/ 250^2 PNGs (encode_lfw_full@)."""
    return LFW_FULL / codec


def full_codec_index(codec: str) -> Path:
    return full_codec_dir(codec) / "index.parquet"


def full_faces_dir(codec: str) -> Path:
    """``data/processed/lfw_full_faces/<codec>``: faces.parquet + faces/ (align_lfw_full@<codec>)."""
    return LFW_FULL_FACES / codec


def full_faces_index(codec: str) -> Path:
    return full_faces_dir(codec) / "faces.parquet"


def full_rate_json(codec: str) -> Path:
    return RATE_FULL_METRICS / f"{codec}.json"


# --- rate–distortion report (rd_report) ----------------------------------------------------------
RD_CSV = PLOTS / "rd.csv"  # one row per codec point, a `series` column (top-level plots rd_*)
RD_REPORT = REPORTS / "rd.md"
RD_METRICS = METRICS / "rd"  # <series>.json: Bjøntegaard deltas vs encode.report.anchor


def rd_json(series: str) -> Path:
    return RD_METRICS / f"{series}.json"


# --- VGGFace2 latents for cResNet39 (latents_vggface2@<codec>) ----------------------------------
VGGFACE2_LATENTS = PROCESSED / "vggface2" / "latents"
VGGFACE2_LATENT_METRICS = METRICS / "latents_vggface2"


def vggface2_latent_index(codec: str) -> Path:
    """Latent shard index written by stage ``latents_vggface2@<codec>``."""
    return VGGFACE2_LATENTS / codec / "index.parquet"


def vggface2_latent_json(codec: str) -> Path:
    return VGGFACE2_LATENT_METRICS / f"{codec}.json"


# --- models and training (train_resnet50, train_cresnet39@<codec>) -------------------------------
RESNET50_DIR = MODELS / "resnet50"
CRESNET39_DIR = MODELS / "cresnet39"
TRAIN_REPORTS = REPORTS / "train"


def model_dir(model: str, codec: str | None = None) -> Path:
    """``models/resnet50`` or ``models/cresnet39/<codec>``: model.pt, phase1.pt (DVC outputs)."""
    return MODELS / model if codec is None else MODELS / model / codec


def model_file(model: str, codec: str | None = None) -> Path:
    """The trained (phase-2) network of a run: ``models/<model>[/<codec>]/model.pt``."""
    return model_dir(model, codec) / "model.pt"


def checkpoint_dir(model: str, codec: str | None = None) -> Path:
    """Resumable checkpoints of one training run, ``models/<run>/checkpoints``.

    Deliberately *not* a DVC output (a clone or ``dvc pull`` never needs it): it only lets an
    interrupted run of the same inputs resume, and a completed run deletes it.
    """
    return model_dir(model, codec) / "checkpoints"


def train_report_dir(model: str, codec: str | None = None) -> Path:
    """DVCLive folder of one training run: ``reports/train/resnet50`` or ``.../cresnet39/<codec>``."""
    return TRAIN_REPORTS / model if codec is None else TRAIN_REPORTS / model / codec


# --- complexity (Table 7) -----------------------------------------------------------------------
COMPLEXITY_METRICS = METRICS / "complexity"  # <model>.json: MACs and parameters; timings in the details


def complexity_json(model: str) -> Path:
    return COMPLEXITY_METRICS / f"{model}.json"


# --- evaluation and the report (eval_lfw_*, report) ---------------------------------------------
EVAL_METRICS = METRICS / "eval"
ROC_PLOTS = PLOTS / "roc"
FIG4_CSV = PLOTS / "fig4.csv"  # one row per evaluated point, a `series` column (top-level plots fig4_*)
FIG4 = FIGURES / "fig4.png"
TABLE7 = REPORTS / "table7.md"


def eval_dir(model: str) -> Path:
    """Per-solution scores and embeddings: ``data/processed/lfw/eval/<model>``."""
    return LFW_PROCESSED / "eval" / model


def eval_json(model: str) -> Path:
    """Metrics of one solution for ``dvc metrics diff``."""
    return EVAL_METRICS / f"{model}.json"


# --- joint texture + feature coding, TFQI (Li et al. 2019; tfqi_* stages) -----------------------
TFQI = PROCESSED / "tfqi"
TFQI_FACES_DIR = TFQI / "faces"  # <image_id>.png, 160x160 crops (tfqi_faces)
TFQI_FACES = TFQI / "faces.parquet"
TFQI_EMBEDDINGS = TFQI / "embeddings.parquet"  # features of the lossless crops (tfqi_embed)
TFQI_METRICS = METRICS / "tfqi"  # declared metrics: the few numbers compared across experiments
TFQI_EMBED_JSON = TFQI_METRICS / "embed.json"
TFQI_FIT_JSON = TFQI_METRICS / "fit.json"
TFQI_ALLOCATE_JSON = TFQI_METRICS / "allocate.json"
TFQI_REPORTS = REPORTS / "tfqi"
TFQI_FIT_RECORD = TFQI_REPORTS / "fit.json"  # fits, R², statuses, points, the paper's fits (tfqi_fit output)
TFQI_ALLOCATION = TFQI_REPORTS / "allocation.csv"  # one row per (w1, budget): model vs grid vs texture-only
TFQI_ALLOCATION_RECORD = TFQI_REPORTS / "allocation.json"  # the same rows + per-w1 summaries
TFQI_FACES_DETAILS = DETAILS / "tfqi" / "faces.json"  # counts, timing, crop settings of tfqi_faces
TFQI_PLOTS = PLOTS / "tfqi"  # joint_model.csv, joint_grid.csv, texture_only.csv, feature_only.csv
TFQI_FIGURE = FIGURES / "tfqi.png"
TFQI_TABLE = REPORTS / "table_tfqi.md"


def tfqi_texture_dir(qp: int) -> Path:
    """``data/processed/tfqi/texture/QP<qp>``: index.parquet, bitstreams/, decoded/, embeddings.parquet."""
    return TFQI / "texture" / f"QP{qp}"


def tfqi_feature_dir(qp: int) -> Path:
    """``data/processed/tfqi/feature/QP<qp>``: index.parquet (bitstreams, levels, decoded features)."""
    return TFQI / "feature" / f"QP{qp}"


def tfqi_texture_json(qp: int) -> Path:
    """Declared metrics of ``tfqi_texture@<qp>`` (rate, MSE, texture-only accuracy)."""
    return TFQI_METRICS / "texture" / f"QP{qp}.json"


def tfqi_feature_json(qp: int) -> Path:
    """Declared metrics of ``tfqi_feature@<qp>`` (rate, accuracy on decoded features)."""
    return TFQI_METRICS / "feature" / f"QP{qp}.json"


# --- Bian et al. 2019: CompNet -> PNG -> RecNet -> sphere20 (cdfv/bian) ----------------------------
BIAN_TRAIN = INTERIM / "bian" / "train"
BIAN_TRAIN_INDEX = BIAN_TRAIN / "index.parquet"
BIAN_TRAIN_FACES_DIR = BIAN_TRAIN / "faces"  # CASIA faces aligned here (VGGFace2 rows point at its PNGs)
BIAN_MODELS = MODELS / "bian"
BIAN_SPHERE20 = BIAN_MODELS / "sphere20"
BIAN_PROCESSED = PROCESSED / "bian"
BIAN_METRICS = METRICS / "bian"
BIAN_EVAL_METRICS = BIAN_METRICS / "eval"
BIAN_ROC_PLOTS = PLOTS / "bian" / "roc"
BIAN_RATE_METRIC_PLOTS = PLOTS / "bian" / "rate_metric"
BIAN_TABLE = REPORTS / "table_bian.md"
BIAN_FIGURE = FIGURES / "fig4_bian.png"
BIAN_REPORT_JSON = REPORTS / "bian" / "report.json"  # Table 1 rows and BD-accuracy (report_bian)
BIAN_TRAIN_DETAILS = DETAILS / "bian" / "train_faces.json"  # source, counts of bian_faces


def bian_model_dir(step: str, channels: int | None = None) -> Path:
    """``models/bian/sphere20`` or ``models/bian/<pretrain|joint>/C<c>`` (model.pt)."""
    return BIAN_SPHERE20 if step == "sphere20" else BIAN_MODELS / step / f"C{channels}"


def bian_checkpoint_dir(step: str, channels: int | None = None) -> Path:
    """Resumable checkpoints of one Bian training run (not a DVC output; deleted when it completes)."""
    return bian_model_dir(step, channels) / "checkpoints"


def bian_train_report_dir(step: str, channels: int | None = None) -> Path:
    """DVCLive folder: ``reports/train/bian/sphere20`` or ``.../<step>/C<c>``."""
    base = TRAIN_REPORTS / "bian"
    return base / "sphere20" if step == "sphere20" else base / step / f"C{channels}"


def bian_point_dir(point: str) -> Path:
    """``data/processed/bian/<point>``: index.parquet, bitstreams/, decoded/ (bian_code_*)."""
    return BIAN_PROCESSED / point


def bian_point_index(point: str) -> Path:
    return bian_point_dir(point) / "index.parquet"


def bian_eval_json(point: str) -> Path:
    return BIAN_EVAL_METRICS / f"{point}.json"


def bian_eval_dir(point: str) -> Path:
    """Scores of one point: ``data/processed/bian/eval/<point>``."""
    return BIAN_PROCESSED / "eval" / point


# --- Xiao et al. 2023: identity-disjoint LFW split (xiao_split) -----------------------------------
XIAO = DATA / "xiao"


def xiao_split() -> Path:
    """``data/xiao/split.json``: ``{"seed": int, "train": [identity, ...], "test": [identity, ...]}``."""
    return XIAO / "split.json"


# --- stage results: declared metrics and the details beside them (cdfv/results.py) ----------------
# The numbers a researcher compares go to a declared metrics file under reports/metrics/ (`dvc metrics
# show/diff`); timings, counts and settings echoes of the same result go to the file of the same name
# under reports/details/ (a `cache: false` output, never under `metrics:`).
#: custom `dvc plots` templates (DVC's own location); `cdfv workspace` copies them into a workspace
PLOT_TEMPLATES = Path(".dvc") / "plots"


def details_json(metrics_json: Path) -> Path:
    """``reports/metrics/<name>.json`` -> ``reports/details/<name>.json`` (the details of that result)."""
    return DETAILS / Path(metrics_json).relative_to(METRICS)


# --- Xiao et al. (2023): identity split and gallery FRR@FAR (eval_gallery@<model>) ----------------
XIAO_METRICS = METRICS / "xiao"


def xiao_gallery_json(model: str, test: bool = False) -> Path:
    """Gallery FRR@FAR + View-2 numbers of one solution: ``reports/metrics/xiao/gallery[_test]/<model>.json``."""
    return XIAO_METRICS / ("gallery_test" if test else "gallery") / f"{model}.json"


XIAO_REPORT = REPORTS / "xiao.md"  # report_xiao: paper vs ours, the IPR/HEVC rate measure, BD-rates
XIAO_FIGURE = FIGURES / "xiao_fig1.png"
