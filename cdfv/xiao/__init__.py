"""Xiao et al. (2023), identity-preserving image coding: gallery FRR@FAR evaluation and the paper's numbers."""
