"""LFW verification evaluation: recognisers, embeddings, pair scores, metrics, the report."""
