"""Codec stages: borders around codec inputs, the one encode → decode → measure loop, the stages."""
