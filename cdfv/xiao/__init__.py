"""Xiao et al. 2023, "Identity Preserving Loss for Learned Image Compression": the identity split and
losses (docs/codec-training.md), the gallery FRR@FAR evaluation and the paper's numbers (docs/xiao.md)."""
