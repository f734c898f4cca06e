# Toy student: PSPNet, ResNetV1c-18 with 16 base channels.
_base_ = [
    './_base_/models/pspnet_r18-thin.py',
    './_base_/datasets/toyscenes_seg.py', './_base_/schedules/toy_2k.py'
]
