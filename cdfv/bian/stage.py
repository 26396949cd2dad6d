"""DVC entry points of Bian et al. 2019 (docs/bian.md); this module holds the training ones
(``run_bian_train``), :mod:`cdfv.bian.faces` ``bian_faces``, :mod:`cdfv.bian.coding` the ``bian_code_*``
stages, :mod:`cdfv.bian.evaluation` ``eval_lfw_bian_*`` and :mod:`cdfv.bian.report` ``report_bian``
(separate modules so each stage depends only on the code it runs).

Training: ``bian_faces`` (training identities at 112x96), ``bian_pretrain@C`` (codec, MSE),
``bian_sphere20`` (recogniser, LMCL), ``bian_joint@C`` (CompNet → RecNet → sphere20, LMCL only).

Coding the MTCNN-aligned LFW faces (``align_lfw_mtcnn@<bian.reference>``), one *point* per stage, each
writing ``data/processed/bian/<point>/`` (index.parquet, bitstreams/, decoded/):

* ``bian_code_original`` — point ``Original``: every face as a PNG (the paper's "original LFW_112x96");
* ``bian_code_compnet@<C>-<pretrain|joint>`` — point ``CompNet_C<C>_<model>``: CompNet → eq. (1)
  quantisation → **one PNG file per face (the rate is its size)** → PNG decode (checked lossless) →
  dequantisation → RecNet → the decoded face;
* ``bian_code_codec@<codec>`` — conventional / learned codecs through the project's one encode loop
  (:func:`cdfv.encode.loop.code_chunk`) on the 112x96 faces (learned codecs padded to 128x128).

Evaluation ``eval_lfw_bian_*``: sphere20 embeddings of the decoded faces of BOTH images of every View-2
pair (the whole LFW set is compressed, §3.2), cosine scores, 10-fold accuracy + TAR@FAR / EER / AUC,
and the rate as the paper gives it: the total size of the coded LFW set (MB = 10^6 bytes) and mean bpp.
``report_bian``: Table 1 beside the paper's values, the rate-accuracy curves and BD-accuracy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cdfv.config import Params, ParamsError


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------
def run_bian_train(params: Params, step: str, channels: int | None = None, root: Path = Path(".")) -> dict[str, Any]:
    """Stages ``bian_pretrain@C``, ``bian_sphere20``, ``bian_joint@C``."""
    from cdfv.bian.train import BianTrainer

    if step != "sphere20" and channels not in params.bian.channels:
        raise ParamsError(f"channels {channels} is not in bian.channels {params.bian.channels}")
    trainer = BianTrainer(step, None if step == "sphere20" else channels, params, root)
    trainer.fit()
    return {"model": str(trainer.model_file())}
