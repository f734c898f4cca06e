# Toy one-stage student: RetinaNet, ResNet-18 with 16 base channels, FPN of
# 32 channels (P2..P6), 64x64 inputs.
_base_ = [
    './_base_/models/retinanet_r18-thin_fpn.py',
    './_base_/datasets/toyscenes_det.py', './_base_/schedules/toy_det_2k.py'
]
