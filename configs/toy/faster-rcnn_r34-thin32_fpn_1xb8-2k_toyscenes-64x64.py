# Toy two-stage teacher: Faster R-CNN, ResNet-34 with 32 base channels and a
# 32-channel FPN (twice the student's: distilling it needs a connector).
_base_ = [
    './_base_/models/faster-rcnn_r18-thin_fpn.py',
    './_base_/datasets/toyscenes_det.py', './_base_/schedules/toy_det_2k.py'
]
fpn_channels = 32
model = dict(
    backbone=dict(depth=34, stem_channels=32, base_channels=32),
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=fpn_channels),
    rpn_head=dict(in_channels=fpn_channels, feat_channels=fpn_channels),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=fpn_channels),
        bbox_head=dict(in_channels=fpn_channels, fc_out_channels=128)))
