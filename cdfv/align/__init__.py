"""Face alignment (thesis §5.3, paper §III.B): geometry, training views, the ``align_lfw`` stages."""
