# Toy one-stage teacher: RetinaNet, ResNet-34 with 32 base channels, a wider
# head; the same 32-channel FPN (P2..P6) as the toy student, so FPN
# distillation needs no connector.
_base_ = [
    './_base_/models/retinanet_r18-thin_fpn.py',
    './_base_/datasets/toyscenes_det.py', './_base_/schedules/toy_det_2k.py'
]
model = dict(
    backbone=dict(depth=34, stem_channels=32, base_channels=32),
    neck=dict(in_channels=[32, 64, 128, 256]),
    bbox_head=dict(feat_channels=64))
