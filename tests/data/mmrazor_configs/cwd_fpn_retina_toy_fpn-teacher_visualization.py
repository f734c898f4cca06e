# mmrazor's cwd_fpn_retina_r101_retina_r50_1x_coco_visualization.py in its
# published form: the FPN config above with mmrazor's RazorVisualizationHook
# in place of the task's visualization hook.
_base_ = ['./cwd_fpn_retina_toy_fpn-teacher.py']

default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=-1),
    visualization=dict(
        _scope_='mmrazor',
        type='RazorVisualizationHook',
        enabled=True,
        recorders=dict(
            neck=dict(
                _scope_='mmrazor',
                type='ModuleOutputs',
                source='architecture.neck')),
        mappings=dict(
            p3=dict(recorder='neck', data_idx=0),
            p4=dict(recorder='neck', data_idx=1),
            p5=dict(recorder='neck', data_idx=2),
            p6=dict(recorder='neck', data_idx=3)),
        out_dir='retina_vis'))
