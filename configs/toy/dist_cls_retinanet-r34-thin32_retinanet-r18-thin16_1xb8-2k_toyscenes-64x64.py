# DIST (Huang et al., 2022) on the classification logits of every FPN level,
# toy RetinaNet teacher -> toy student. The shared `retina_cls` conv runs
# once per level, so its recorder holds five records (record_idx = level);
# one loss per level. Each output stacks 9 anchors x 3 classes in its 27
# channels (channel a*3 + k): num_classes=3 makes every (pixel, anchor) a
# row of 3 class scores. RetinaNet scores classes with sigmoids; DIST
# compares softmax(logits / tau) over the 3 classes, i.e. the relations
# between the classes' logits. tau 1, weight 1 per level (untuned). The
# teacher's head must run (teacher_forward_mode 'auto' -> 'tensor').
_base_ = [
    './retinanet_r18-thin16_fpn_1xb8-2k_toyscenes-64x64.py',
    './_base_/toy_det_distill.py'
]
num_levels = 5
model = dict(
    _delete_=True,
    _scope_='mmstructkd',
    type='SingleTeacherDistill',
    architecture=dict(cfg_path={{_base_.retinanet_student_cfg_path}}),
    teacher=dict(cfg_path={{_base_.retinanet_teacher_cfg_path}}),
    teacher_ckpt={{_base_.retinanet_teacher_ckpt}},
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(
            cls=dict(type='ModuleOutputs', source='bbox_head.retina_cls')),
        teacher_recorders=dict(
            cls=dict(type='ModuleOutputs', source='bbox_head.retina_cls')),
        distill_losses={
            f'loss_dist_cls{i}': dict(
                type='DISTLoss', tau=1, num_classes=3, loss_weight=1)
            for i in range(num_levels)
        },
        loss_forward_mappings={
            f'loss_dist_cls{i}': dict(
                preds_S=dict(from_student=True, recorder='cls', record_idx=i),
                preds_T=dict(from_student=False, recorder='cls',
                             record_idx=i))
            for i in range(num_levels)
        }))

val_cfg = dict(_delete_=True, type='mmstructkd.SingleTeacherDistillValLoop')
