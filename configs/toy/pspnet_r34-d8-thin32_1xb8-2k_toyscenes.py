# Toy teacher: PSPNet, ResNetV1c-34 with 32 base channels (about 6x the
# student's parameters).
_base_ = [
    './_base_/models/pspnet_r18-thin.py',
    './_base_/datasets/toyscenes_seg.py', './_base_/schedules/toy_2k.py'
]
model = dict(
    backbone=dict(depth=34, stem_channels=32, base_channels=32),
    decode_head=dict(in_channels=256, channels=64),
    auxiliary_head=dict(in_channels=128, channels=32))
