"""Joint texture + deep-feature coding with TFQI bit allocation (Li et al. 2019).

A face crop (160x160) is sent as two independent streams: its texture, HEVC intra at QP1, and the
deep feature of the *lossless* crop, L2-normalised, scalar-quantised at QP2 and range-coded
(§II). Quality is TFQI = -log10(w1 D1 + w2 D2) with D1 the texture MSE and D2 the verification error
rate (§III-A); the bits are split between the streams by the working condition w1 D_t' = w2 D_f' of
exponential R-D models fitted to the measured points (§III-B).

Modules: :mod:`quantise` (eqs. 1-2), :mod:`bitstream` (binarisation + adaptive range coding),
:mod:`rd_models` (eq. 9 fits), :mod:`allocate` (eqs. 3-8 and the brute-force grid check),
:mod:`faces` (crops), :mod:`features` (FaceNet / dlib extractors), :mod:`stage` (DVC entry points),
:mod:`report` (table and figure).
"""
