"""``codec_training:`` params (Xiao et al. 2023 codecs trained here): strict, consistent names, init chains."""

from __future__ import annotations

import pytest

from cdfv.config import ParamsError, parse_params

REC = {"quality": 3, "lmbda": 0.0018, "steps": 100}
IPR = {**REC, "variant": "IPR", "lambda_id": 1.0, "init": "Xiao_L2_REC_Q3"}


def _p(entries: dict) -> object:
    return parse_params({"codec_training": entries})


def test_valid_block_and_zoo_channels() -> None:
    p = _p({"Xiao_L2_REC_Q3": REC, "Xiao_L2_IPR_Q3": IPR, "Xiao_L2_REC_Q6": {**REC, "quality": 6}})
    assert p.codec_training["Xiao_L2_REC_Q3"].channels == (128, 192)
    assert p.codec_training["Xiao_L2_REC_Q6"].channels == (192, 320)
    assert p.codec_training["Xiao_L2_IPR_Q3"].init == "Xiao_L2_REC_Q3"


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ({"Xiao_L2_REC_Q3": {**REC, "stpes": 1}}, "stpes"),
        ({"Xiao_L2_REC_Q3": {**REC, "variant": "IPR"}}, "lambda_id"),
        ({"Xiao_L2_REC_Q3": {**REC, "lambda_id": 0.5}}, "lambda_id"),
        ({"Xiao_MSSSIM_REC_Q3": REC}, "the name says"),
        ({"Balle_REC_Q3": REC}, "Xiao_<L2|MSSSIM>"),
        ({"Xiao_L2_IPR_Q3": IPR}, "not a codec_training entry"),
        ({"Xiao_L2_REC_Q3": {**REC, "init": "Xiao_L2_IPR_Q3"}, "Xiao_L2_IPR_Q3": IPR}, "init cycle"),
        ({"Xiao_L2_REC_Q6": {**REC, "quality": 6}, "Xiao_L2_IPR_Q3": {**IPR, "init": "Xiao_L2_REC_Q6"}}, "quality"),
        ({"Xiao_L2_REC_Q3": {**REC, "crop": 100}}, "divisible by 64"),
        ({"Xiao_L2_REC_Q3": {**REC, "quality": 9}}, "quality"),
    ],
)
def test_bad_entries_are_named(entries: dict, message: str) -> None:
    with pytest.raises(ParamsError, match=message):
        _p(entries)
