"""Two-phase training of ResNet50 and cResNet39 on VGGFace2 (thesis §5.5.2, §6.3.2).

``data`` (splits, datasets, deterministic batch order, on-device augmentation), ``loop`` (the
phase-1 cross-entropy / phase-2 ArcFace trainer with checkpoints, resume, DVCLive, DDP), ``stage``
(the ``train_resnet50`` / ``train_cresnet39@<codec>`` / ``train_cresnet39_online@<codec>`` DVC stages),
``checkpoint`` (resumable checkpoints, sealed when a run completes) and ``fingerprint`` (what a
checkpoint must match to resume: params + content of the stage's code and data dependencies).
"""
