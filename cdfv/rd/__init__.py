"""Rate and distortion: per-image measures, codec curves, Bjøntegaard deltas, the ``rd_report`` stage."""
