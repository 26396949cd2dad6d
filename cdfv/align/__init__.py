"""Face alignment (thesis §5.4, paper §III.B): geometry, training views, the ``align_lfw`` stages."""
