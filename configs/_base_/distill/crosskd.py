# What every CrossKD config shares (configs/crosskd/ and the toy ones): the
# teacher's own head predictions, recorded once, and which recorded tensors
# each prediction-level loss compares. CrossKDDistill records on the
# student's side `cross_preds`: the student's head features run through the
# teacher's remaining head layers, as (class scores, box predictions) per
# FPN level, the layout of the teacher's `preds`.
crosskd_teacher_recorders = dict(
    preds=dict(type='HeadPredictions', source='bbox_head'))
# Class scores: cross-head against the teacher's.
crosskd_cls_mapping = dict(
    preds_S=dict(from_student=True, recorder='cross_preds', data_idx=0),
    preds_T=dict(from_student=False, recorder='preds', data_idx=0))
# Box predictions, each position weighted by the teacher's top class score.
crosskd_box_mapping = dict(
    preds_S=dict(from_student=True, recorder='cross_preds', data_idx=1),
    preds_T=dict(from_student=False, recorder='preds', data_idx=1),
    scores_T=dict(from_student=False, recorder='preds', data_idx=0))

# GFL (the paper's main setting): quality focal loss with the teacher's
# probabilities as targets (weight 1), KL of the box-side distributions
# (weight 3) and GIoU of the decoded boxes (weight 2).
crosskd_gfl_distill_losses = dict(
    loss_cls_kd=dict(type='KDQualityFocalLoss', beta=1, loss_weight=1.0),
    loss_dist_kd=dict(type='BoxDistributionKLLoss', tau=1, loss_weight=3.0),
    loss_box_kd=dict(type='BoxGIoUDistillLoss', box_coding='distance',
                     loss_weight=2.0))
crosskd_gfl_loss_forward_mappings = dict(
    loss_cls_kd=crosskd_cls_mapping,
    loss_dist_kd=crosskd_box_mapping,
    loss_box_kd=crosskd_box_mapping)

# RetinaNet: the losses depend on the class count and anchors, so each
# config writes them; the mappings are the same.
crosskd_retinanet_loss_forward_mappings = dict(
    loss_cls_kd=crosskd_cls_mapping, loss_box_kd=crosskd_box_mapping)
