"""LFW verification evaluation: recognisers, embeddings, pair scores, metrics, BD, report."""
