# Toy GFL teacher: ResNet-34 with 32 base channels and a 64-channel GFL head
# on the same 32-channel FPN (P2..P6) as the toy GFL student. Its stem is
# the toy segmentation networks' (three 3x3 convs, deep_stem), so that its
# backbone can start from the toy PSPNet teacher's, as a real detector's
# starts from a network trained on another task: tools/benchmark_accuracy.py
# does so (--cfg-options, see mmstructkd/benchmarks/accuracy.py), which
# takes the teacher to 27.6 bbox mAP in 1500 iterations against about 19
# for the student (from scratch).
_base_ = ['./gfl_r18-thin16_fpn_1xb8-2k_toyscenes-det-96x96.py']
model = dict(
    backbone=dict(
        depth=34, stem_channels=32, base_channels=32, deep_stem=True),
    neck=dict(in_channels=[32, 64, 128, 256]),
    bbox_head=dict(feat_channels=64))
