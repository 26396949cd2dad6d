"""Codecs: names as the paper spells them (:mod:`.names`), one interface (:mod:`.base`), one registry
(:func:`cdfv.codecs.registry.get_codec`) and the families: ``jpeg`` (Pillow), ``jpeg2000``
(glymur/OpenJPEG), ``hevc`` (ffmpeg/libx265 intra), ``learned`` (CompressAI, real range coder).

This ``__init__`` imports nothing, so code that only parses codec names does not depend on the
codec back ends.
"""
