"""Dataset ingestion: LFW (images + View-2 pairs) and VGGFace2 (identity folders)."""
