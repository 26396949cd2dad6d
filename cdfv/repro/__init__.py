"""``cdfv repro`` (``make repro``): plan the runnable part of the DVC graph, run it, summarise the rest.

:mod:`cdfv.repro.plan` decides (pure, from the graph of ``dvc.yaml``), :mod:`cdfv.repro.externals`
knows the inputs from outside the graph (VGGFace2, downloads, pretrained weights) and
:mod:`cdfv.repro.run` talks to DVC.
"""
