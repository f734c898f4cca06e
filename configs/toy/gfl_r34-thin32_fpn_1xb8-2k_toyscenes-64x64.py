# Toy GFL teacher: ResNet-34 with 32 base channels and a 64-channel GFL head
# on the same 32-channel FPN (P2..P6) as the toy GFL student.
_base_ = ['./gfl_r18-thin16_fpn_1xb8-2k_toyscenes-64x64.py']
model = dict(
    backbone=dict(depth=34, stem_channels=32, base_channels=32),
    neck=dict(in_channels=[32, 64, 128, 256]),
    bbox_head=dict(feat_channels=64))
