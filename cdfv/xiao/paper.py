"""Numbers Xiao et al. (2023) report on LFW (Fig. 1, §4): the one home of the paper's constants."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PaperPoint:
    """One rate-FRR operating point of the paper's Fig. 1 (FRR at FAR = 1 %, LFW gallery protocol)."""

    method: str
    bpp: float
    frr: float  # fraction, 0.0125 = 1.25 %


#: Fig. 1: HEVC (x265 CRF 23), the codec trained with reconstruction loss only (REC), with the
#: identity-preserving loss on reconstructions (IPR) and on the identity features (IP)
FIG1_POINTS: tuple[PaperPoint, ...] = (
    PaperPoint("HEVC", 0.76, 0.0125),
    PaperPoint("REC", 0.16, 0.0416),
    PaperPoint("IPR", 0.29, 0.0110),
    PaperPoint("IP", 0.22, 0.0145),
)

#: IPR's rate as a fraction of HEVC CRF 23's at equal FRR on LFW (§4: "about 38 %")
IPR_RATE_FRACTION_OF_HEVC = 0.38

#: FAR targets of the gallery protocol (FRR read at FAR = 1 % in Fig. 1; 0.1 % reported beside it)
FAR_TARGETS: tuple[float, ...] = (1e-2, 1e-3)

#: gallery images per identity on LFW
LFW_GALLERY_PER_IDENTITY = 1
