"""The picture of the input and the networks' predictions (every
teacher's and the student's)."""
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .panels import (DPI, PANEL_INCHES, DistillFigure, VisContext,
                     class_map, class_palette, figure_to_rgb, show_image,
                     to_numpy)


def paint_predictions(ctx: VisContext, teacher_samples,
                      student_sample,
                      score_thr: float = 0.3) -> DistillFigure:
    """The input, the teachers' and the student's predictions.

    Args:
        teacher_samples: the teacher's predicted sample, or teacher name
            -> its sample with several teachers (one panel each, labelled
            with the name; a None name is the only teacher).
        student_sample: the student's.

    Segmentation samples carry ``pred_sem_seg`` (drawn in the palette's
    colours), detection samples ``pred_instances`` (boxes above
    ``score_thr``, in input pixels). The arrays shown are kept under
    ``teacher`` (``teacher.<name>`` with several) and ``student``.
    """
    if not isinstance(teacher_samples, dict):
        teacher_samples = {None: teacher_samples}
    networks = [('teacher' if name is None else f'teacher {name}',
                 'teacher' if name is None else f'teacher.{name}', sample)
                for name, sample in teacher_samples.items()]
    networks.append(('student', 'student', student_sample))
    # The input and one panel per network; room for the legends.
    fig = Figure(figsize=((len(networks) + 1) * PANEL_INCHES + 1.8 +
                          0.6 * (len(networks) - 2), PANEL_INCHES + 0.7),
                 dpi=DPI)
    axes = fig.subplots(1, len(networks) + 1,
                        gridspec_kw=dict(wspace=0.55))
    show_image(axes[0], ctx)
    shown = {}
    height, width = ctx.image.shape[:2]
    for ax, (who, key, sample) in zip(axes[1:], networks):
        if 'pred_sem_seg' in sample:
            labels = sample.pred_sem_seg.data[0]
            class_map(ax, labels, ctx, f'{who} prediction',
                      (0, width, height, 0))
            shown[key] = to_numpy(labels)
        else:
            boxes = _draw_boxes(ax, sample, ctx, score_thr)
            ax.set_title(f'{who}: boxes with score >= {score_thr:g}',
                         fontsize=9)
            shown[key] = boxes
    fig.suptitle('input and predictions', fontsize=11)
    fig.subplots_adjust(left=0.02, right=0.88, top=0.8, bottom=0.05)
    return DistillFigure('predictions', figure_to_rgb(fig), shown)


def _draw_boxes(ax, sample, ctx: VisContext, score_thr: float) -> np.ndarray:
    ax.imshow(ctx.image, extent=(0, ctx.image.shape[1], ctx.image.shape[0],
                                 0))
    ax.set_xticks([])
    ax.set_yticks([])
    instances = sample.pred_instances
    keep = instances.scores >= score_thr
    boxes = to_numpy(instances.bboxes[keep])
    labels = to_numpy(instances.labels[keep]).astype(np.int64)
    scores = to_numpy(instances.scores[keep])
    # Predictions are in the original image's pixels; the shown image is
    # the resized network input.
    scale = np.ones(4, dtype=np.float32)
    if 'scale_factor' in sample:
        scale_w, scale_h = sample.scale_factor
        scale = np.array([scale_w, scale_h, scale_w, scale_h], np.float32)
    boxes = boxes * scale
    colours = class_palette(ctx, max(len(ctx.class_names),
                                int(labels.max(initial=-1)) + 1))
    for (x1, y1, x2, y2), label, score in zip(boxes, labels, scores):
        colour = colours[label] / 255
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False,
                               edgecolor=colour, linewidth=1.5))
        name = ctx.class_names[label] if label < len(ctx.class_names) \
            else str(label)
        ax.text(x1, y1, f'{name} {score:.2f}', fontsize=6, color='white',
                va='bottom', bbox=dict(facecolor=colour, alpha=0.8, pad=0.5,
                                       linewidth=0))
    return boxes
