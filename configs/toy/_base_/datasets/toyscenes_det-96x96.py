# The detection proxy: toy street scenes drawn in the detection layout
# (tools/make_toy_data.py --object-scale 1.5 --min-depth 0.55: larger,
# nearer objects, so fewer boxes are too small to find) at 96x96, where a
# toy detector learns enough for a teacher to be clearly ahead of its
# student. TOY_DATA_ROOT overrides the location, as for the other toy sets;
# tools/benchmark_accuracy.py generates and points it at this set.
_base_ = ['./toyscenes_det.py']
data_root = '{{$TOY_DATA_ROOT:data/toy_scenes_det}}'
img_scale = (96, 96)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor')),
]
train_dataloader = dict(
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + '/annotations/instances_val.json')
test_evaluator = val_evaluator
