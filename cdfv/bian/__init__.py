"""Bian et al. 2019, "A deep image compression framework for face recognition": MTCNN 112x96 faces,
CompNet → quantised compact map → PNG → RecNet → sphere20 (CosFace), codec pre-training, joint
training, Table 1 (docs/bian.md).

``models`` (networks, quantisation), ``png`` (the map's lossless bitstream), ``data`` (training faces),
``train`` (the three training steps on the project's checkpoint/fingerprint/DVCLive machinery),
``stage`` (DVC entry points), ``report`` (Table 1, curves, BD-accuracy).
"""
