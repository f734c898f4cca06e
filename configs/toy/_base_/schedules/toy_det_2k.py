# The toy schedule (toy_2k.py) for mmdet detectors: mmdet scope and
# visualiser, a linear warm-up (detectors trained from scratch diverge
# without one) and gradient clipping.
_base_ = ['./toy_2k.py']
default_scope = 'mmdet'
visualizer = dict(
    _delete_=True,
    type='DetLocalVisualizer',
    vis_backends=[dict(type='LocalVisBackend')],
    name='visualizer')
default_hooks = dict(visualization=dict(_delete_=True,
                                        type='DetVisualizationHook'))
optim_wrapper = dict(
    optimizer=dict(lr=0.01, weight_decay=1e-4),
    clip_grad=dict(_delete_=True, max_norm=35, norm_type=2))
# PolyLR stays first (tests shorten a run with param_scheduler.0.end).
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=2000,
         by_epoch=False),
    dict(type='LinearLR', start_factor=0.001, begin=0, end=100,
         by_epoch=False)
]
