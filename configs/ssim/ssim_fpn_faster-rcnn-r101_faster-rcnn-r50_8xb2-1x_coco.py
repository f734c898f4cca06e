# Structural (SSIM) distillation on the FPN (P. de Rijk, L. Schneider,
# M. Cordts, D. M. Gavrila, "Structural Knowledge Distillation for Object
# Detection", NeurIPS 2022), Faster R-CNN-R101 (teacher, mmdet model zoo,
# 2x, 39.8 box AP) -> Faster R-CNN-R50 (1x, 37.4 box AP alone) on COCO:
# 1 - SSIM between min-max rescaled levels (N, 256, H_l, W_l) (11x11
# Gaussian window, sigma 1.5, K1 0.01, K2 0.03, valid positions only),
# summed over the 5 levels P2..P6. Both FPNs have 256 channels, so no
# adaptation layer is needed. The loss weight (1 per level) is our choice,
# not a published value. The student's own config is the base (data, 1x
# schedule, SGD lr 0.02, 8 GPUs x 2 images). Only the
# teacher's backbone and neck run (teacher_forward_mode 'auto' -> 'feat').
_base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py']
custom_imports = dict(imports=['mmstructkd'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/faster_rcnn/faster_rcnn_r101_fpn_2x_coco/faster_rcnn_r101_fpn_2x_coco_bbox_mAP-0.398_20200504_210455-1d2dac9c.pth'  # noqa: E501
teacher_cfg_path = 'mmdet::faster_rcnn/faster-rcnn_r101_fpn_2x_coco.py'
student_cfg_path = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
model = dict(
    _delete_=True,
    _scope_='mmstructkd',
    type='SingleTeacherDistill',
    architecture=dict(cfg_path=student_cfg_path, pretrained=False),
    teacher=dict(cfg_path=teacher_cfg_path, pretrained=False),
    teacher_ckpt=teacher_ckpt,
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
        teacher_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
        distill_losses=dict(
            loss_ssim_fpn=dict(
                type='StructuralSimilarityLoss',
                window_size=11,
                sigma=1.5,
                k1=0.01,
                k2=0.03,
                normalize='sample',
                loss_weight=1.0)),
        loss_forward_mappings=dict(
            loss_ssim_fpn=dict(
                preds_S=dict(from_student=True, recorder='fpn'),
                preds_T=dict(from_student=False, recorder='fpn')))))

val_cfg = dict(_delete_=True, type='mmstructkd.SingleTeacherDistillValLoop')
