"""Every Parquet schema of the pipeline, declared once (the data contracts of design.md).

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
