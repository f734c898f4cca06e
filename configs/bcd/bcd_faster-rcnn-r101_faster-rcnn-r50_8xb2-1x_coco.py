# BCD (reconstructed) for detection on COCO: Faster R-CNN-R101 (mmdet model
# zoo, 2x, 39.8 box AP) -> Faster R-CNN-R50 (1x). Boundary maps of the four
# ResNet stages and context relations of the P4 FPN level (1/16 of the
# input, about 50x84 positions: chunked rows). Only the teacher's backbone
# and neck run. Weights untuned; no published number for this reconstruction.
_base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py']
custom_imports = dict(imports=['mmstructkd'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/faster_rcnn/faster_rcnn_r101_fpn_2x_coco/faster_rcnn_r101_fpn_2x_coco_bbox_mAP-0.398_20200504_210455-1d2dac9c.pth'  # noqa: E501
model = dict(
    _delete_=True,
    _scope_='mmstructkd',
    type='SingleTeacherDistill',
    architecture=dict(
        cfg_path='mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
        pretrained=False),
    teacher=dict(
        cfg_path='mmdet::faster_rcnn/faster-rcnn_r101_fpn_2x_coco.py',
        pretrained=False),
    teacher_ckpt=teacher_ckpt,
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(
            stages=dict(type='ModuleOutputs', source='backbone'),
            fpn=dict(type='ModuleOutputs', source='neck')),
        teacher_recorders=dict(
            stages=dict(type='ModuleOutputs', source='backbone'),
            fpn=dict(type='ModuleOutputs', source='neck')),
        distill_losses=dict(
            loss_boundary=dict(type='BoundaryLoss', loss_weight=1.0),
            loss_context=dict(type='ContextLoss', tau=0.1, chunk_size=4096,
                              loss_weight=1.0)),
        loss_forward_mappings=dict(
            loss_boundary=dict(
                feats_S=dict(from_student=True, recorder='stages'),
                feats_T=dict(from_student=False, recorder='stages')),
            loss_context=dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=2),
                preds_T=dict(from_student=False, recorder='fpn',
                             data_idx=2)))))
val_cfg = dict(_delete_=True, type='mmstructkd.SingleTeacherDistillValLoop')
