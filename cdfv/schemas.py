"""Every Parquet schema of the pipeline, declared once (the data contracts between stages).

Writers cast to these schemas (:func:`cdfv.io.write_parquet_atomic`), readers may rely on them.
"""

from __future__ import annotations

import pyarrow as pa

#: data/interim/lfw/images.parquet — one row per LFW image (PNG "simulated original").
LFW_IMAGES = pa.schema(
    [
        ("image_id", pa.string()),  # e.g. Aaron_Eckhart/Aaron_Eckhart_0001
        ("identity", pa.string()),
        ("path", pa.string()),  # PNG path relative to the repository root
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("sha256", pa.string()),  # of the PNG file
    ]
)

#: data/interim/lfw/pairs.parquet — one row per View-2 pair.
LFW_PAIRS = pa.schema(
    [
        ("pair_id", pa.int32()),
        ("fold", pa.int16()),
        ("left_id", pa.string()),  # probe (first image of the pair)
        ("right_id", pa.string()),  # reference
        ("same", pa.bool_()),
    ]
)

#: data/interim/vggface2/images.parquet — one row per training image.
VGGFACE2_IMAGES = pa.schema(
    [
        ("image_id", pa.string()),  # <identity>/<stem>
        ("identity", pa.string()),
        ("label", pa.int32()),  # 0..n_identities-1 over *all* identities (phase 1 classes)
        ("path", pa.string()),  # PNG, size x size
        ("split", pa.string()),  # "train" | "val" (identity-disjoint, phase 2)
    ]
)

# --- detect_lfw / align_lfw ---------------------------------------------------------
_LANDMARKS = [f"{n}_{a}" for n in ("right_eye", "left_eye", "nose", "mouth_right", "mouth_left") for a in ("x", "y")]

#: data/interim/lfw/detections.parquet — the face the centre heuristic chose, one row per image.
#: status: ok | no_face (box = the fallback box, landmarks null) | unreadable (box null, error set).
LFW_DETECTIONS = pa.schema(
    [
        ("image_id", pa.string()),
        ("identity", pa.string()),
        ("status", pa.string()),
        ("fallback", pa.string()),  # null for ok; detect.fallback for no_face
        ("score", pa.float32()),  # detector score of the chosen face
        ("threshold_used", pa.float32()),  # walk-down threshold at which it was accepted
        ("x1", pa.int32()),  # box [x1, y1, x2, y2], pixels, x2/y2 exclusive, clipped to the image
        ("y1", pa.int32()),
        ("x2", pa.int32()),
        ("y2", pa.int32()),
        *[(c, pa.float32()) for c in _LANDMARKS],  # source-image pixel coordinates
        ("n_candidates", pa.int32()),  # faces returned at the lowest threshold
        ("n_containing", pa.int32()),  # of those, containing the centre at threshold_used
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("backend", pa.string()),
        ("error", pa.string()),  # unreadable: why
    ]
)

#: data/interim/lfw/faces.parquet — aligned 224x224 faces (paper §III.B), one row per image.
LFW_FACES = pa.schema(
    [
        ("image_id", pa.string()),
        ("identity", pa.string()),
        ("status", pa.string()),  # ok | no_face | unreadable (path null)
        ("fallback", pa.string()),
        ("path", pa.string()),  # 224x224 RGB PNG relative to the workspace root
        ("pad_top", pa.int16()),  # black padding inside the 224 face
        ("pad_bottom", pa.int16()),
        ("pad_left", pa.int16()),
        ("pad_right", pa.int16()),
        ("angle", pa.float32()),  # eye-line rotation, degrees counter-clockwise
        *[(c, pa.float32()) for c in _LANDMARKS],  # landmarks in aligned-face coordinates
        ("sha256", pa.string()),  # of the PNG
    ]
)

#: data/processed/lfw/<codec>/index.parquet — one row per face encoded by one codec x quality.
CODEC_INDEX = pa.schema(
    [
        ("image_id", pa.string()),
        ("identity", pa.string()),
        ("codec", pa.string()),
        ("status", pa.string()),  # ok | error (on_error: skip) | no_input (face status != ok)
        ("error", pa.string()),
        ("bytes", pa.int32()),  # bytes counted by bpp (learned: y + z strings)
        ("bpp_256", pa.float64()),  # over the 256^2 codec input
        ("bpp_224", pa.float64()),  # over the unpadded 224^2 face
        ("psnr", pa.float64()),  # dB, decoded vs original 224^2 face (border removed)
        ("ms_ssim", pa.float64()),
        ("psnr_256", pa.float64()),  # dB over the whole 256^2 codec input
        ("bitstream", pa.string()),  # path relative to the workspace root
        ("decoded", pa.string()),  # 224x224 decoded face PNG (16 px border removed)
    ]
)

#: <latents>/index.parquet — one row per stored latent ŷ (N x 14 x 14 crop) of a shard set.
LATENT_INDEX = pa.schema(
    [
        ("key", pa.string()),  # image_id (LFW) or image_id#variant (VGGFace2)
        ("image_id", pa.string()),
        ("identity", pa.string()),
        ("codec", pa.string()),
        ("quality", pa.int16()),
        ("shard", pa.string()),  # shard file name, relative to the index's folder
        ("row", pa.int32()),
        ("shape", pa.list_(pa.int32())),
        ("dtype", pa.string()),  # int8 | int16 | int32
        ("bpp", pa.float32()),  # of the bitstream the latent was entropy-decoded from (256^2)
        ("label", pa.int32()),  # class label (VGGFace2), -1 when none
        ("split", pa.string()),  # train | val (VGGFace2), "" when none
        ("variant", pa.int16()),  # 0 = centre crop, 1.. = augmented
    ]
)

#: data/processed/lfw/eval/<model>/scores.parquet — one row per View-2 pair (stage eval_lfw_*).
LFW_SCORES = pa.schema(
    [
        ("pair_id", pa.int32()),
        ("fold", pa.int16()),
        ("left_id", pa.string()),  # probe
        ("right_id", pa.string()),  # reference
        ("same", pa.bool_()),
        ("score", pa.float64()),  # cosine similarity
        ("fallback", pa.bool_()),  # either image's face detection failed (scored on the fallback crop)
        ("probe_bpp", pa.float64()),  # rate of the probe (null for the original anchor)
    ]
)

#: data/processed/lfw/eval/<model>/embeddings.parquet — one row per (image, role).
LFW_EMBEDDINGS = pa.schema(
    [
        ("image_id", pa.string()),
        ("role", pa.string()),  # probe | reference (same vectors for pipelines A and C)
        ("embedding", pa.list_(pa.float32())),
    ]
)

#: data/processed/lfw_full/<codec>/index.parquet — pipeline B1 (thesis ch. 5): one row per whole
#: original image padded to a multiple of 64, encoded by a learned codec, decoded and cropped back.
LFW_FULL_INDEX = pa.schema(
    [
        ("image_id", pa.string()),
        ("identity", pa.string()),
        ("codec", pa.string()),
        ("status", pa.string()),  # ok | error (on_error: skip)
        ("error", pa.string()),
        ("width", pa.int16()),  # original (decoded PNG) size, 250 for LFW
        ("height", pa.int16()),
        ("pad_top", pa.int16()),  # black border added before the codec (250 -> 256: 3 px each side)
        ("pad_bottom", pa.int16()),
        ("pad_left", pa.int16()),
        ("pad_right", pa.int16()),
        ("bytes", pa.int32()),  # y + z strings (paper eq. 7)
        ("bpp_256", pa.float64()),  # over the padded codec input (256^2 for LFW)
        ("bpp_orig", pa.float64()),  # over the original image (250^2)
        ("psnr", pa.float64()),  # dB, decoded-and-cropped vs original image
        ("ms_ssim", pa.float64()),
        ("bitstream", pa.string()),
        ("decoded", pa.string()),  # decoded image cropped back to the original size (PNG)
    ]
)

# --- joint texture + feature coding, TFQI (Li et al. 2019) ----------------------------------------
#: data/processed/tfqi/faces.parquet — one row per LFW image of the View-2 pairs (stage tfqi_faces).
TFQI_FACES = pa.schema(
    [
        ("image_id", pa.string()),
        ("identity", pa.string()),
        ("status", pa.string()),  # ok | no_face (cropped from the detector's fallback box) | unreadable (path null)
        ("path", pa.string()),  # size x size RGB PNG relative to the workspace root
        ("x1", pa.float32()),  # source-image window that was resized to the crop (box + margin, clipped)
        ("y1", pa.float32()),
        ("x2", pa.float32()),
        ("y2", pa.float32()),
        ("sha256", pa.string()),  # of the PNG
    ]
)

#: data/processed/tfqi/embeddings.parquet (lossless crops, tfqi_embed) and
#: data/processed/tfqi/texture/QP<qp>/embeddings.parquet (decoded texture, the texture-only scheme).
TFQI_EMBEDDINGS = pa.schema(
    [
        ("image_id", pa.string()),
        ("embedding", pa.list_(pa.float32())),  # L2-normalised
    ]
)

#: data/processed/tfqi/texture/QP<qp>/index.parquet — HEVC intra of each crop (tfqi_texture@<qp>).
TFQI_TEXTURE_INDEX = pa.schema(
    [
        ("image_id", pa.string()),
        ("qp", pa.int16()),
        ("bytes", pa.int32()),  # the access unit (parameter sets included)
        ("bpp", pa.float64()),  # 8 * bytes / crop pixels
        ("mse", pa.float64()),  # D1: RGB, 8-bit scale, decoded vs lossless crop
        ("psnr", pa.float64()),
        ("bitstream", pa.string()),  # path relative to the workspace root
        ("decoded", pa.string()),
    ]
)

#: data/processed/tfqi/feature/QP<qp>/index.parquet — the coded feature of each crop (tfqi_feature@<qp>).
TFQI_FEATURE_INDEX = pa.schema(
    [
        ("image_id", pa.string()),
        ("qp", pa.int16()),
        ("bytes", pa.int32()),  # whole feature bitstream (1-byte QP header + range-coder words)
        ("bpp", pa.float64()),  # 8 * bytes / crop pixels
        ("bitstream", pa.binary()),
        ("levels", pa.list_(pa.int32())),  # l = floor(c / Q_step), as entropy-decoded from the bitstream
        ("decoded", pa.list_(pa.float32())),  # (l + 1/2) Q_step
    ]
)

# --- Bian et al. 2019 (cdfv/bian) ------------------------------------------------------------
#: data/interim/bian/train/index.parquet — the training faces of bian_pretrain / bian_sphere20 / bian_joint.
BIAN_TRAIN_FACES = pa.schema(
    [
        ("image_id", pa.string()),
        ("identity", pa.string()),
        ("label", pa.int32()),  # 0..n_identities-1
        ("path", pa.string()),  # PNG relative to the workspace root
        ("template", pa.string()),  # align.references key the PNG is aligned to ("" = already the model's size)
        ("source", pa.string()),  # casia | vggface2
    ]
)

#: data/processed/bian/<point>/index.parquet — one row per LFW face coded by one Table-1 / curve point.
BIAN_CODED = pa.schema(
    [
        ("image_id", pa.string()),
        ("identity", pa.string()),
        ("point", pa.string()),  # Original | CompNet_C<c>_<pretrain|joint> | a codec name
        ("status", pa.string()),  # ok | error | no_input
        ("error", pa.string()),
        ("bytes", pa.int32()),  # the file's bytes (PNG of the map, codec bitstream, original PNG)
        ("bpp", pa.float64()),  # over the face's pixels (112 x 96)
        ("psnr", pa.float64()),  # decoded vs original face, dB (null for Original)
        ("bitstream", pa.string()),
        ("decoded", pa.string()),  # the face the recogniser sees
    ]
)
