"""Xiao et al. 2023, "Identity Preserving Loss for Learned Image Compression" (docs/codec-training.md)."""
