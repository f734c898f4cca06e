"""What distillation costs per training step, beyond the teacher itself.

For each distillation config, with random weights on random inputs (no
checkpoint is loaded: ``teacher_ckpt`` is set to None, so model-zoo URLs are
never downloaded), three kinds of training step are compared:

(a) the student alone: its own loss, backward and optimizer step;
(b) (a) plus a bare teacher forward under ``no_grad``, as far as the
    algorithm runs it (``teacher_forward_mode``): the physical floor of any
    distillation;
(c) the full ``SingleTeacherDistill.train_step`` (recorders, connectors,
    distillation losses, and the adversarial critic step when configured).

(c)/(b) is the overhead of our machinery and losses.

Time: the three steps are interleaved in one process, in an order rotating
from step to step, so machine load and cache state affect them alike;
medians over ``--steps`` steps after ``--warmup``. With an adversarial
critic, its update (``critic_step``, part of (c)) is timed on its own in the
same steps and reported separately, with (c) minus the critic step over (b).

Teacher precision: ``--teacher-precision fp32 bf16`` (``fp16`` with
``--device cuda``) also times (b) with the teacher's forward in each of
these precisions (``model.teacher_precision``: autocast on the teacher's
device), interleaved with the others, and reports what the teacher's
forward costs in each, (b) - (a) (median of the per-step differences), and
relative to the first precision listed (``teacher_precisions`` in the JSON,
a table of its own in the Markdown). (b) and (c) themselves run in the
config's own ``teacher_precision``. Memory is not measured per precision.

Memory: peak is process-wide, so each of (a), (b), (c) runs in its own fresh
process (forked from a server that has only imported the libraries): build
the models and the inputs, then ``--memory-steps`` steps (the first
allocates the optimizer state, the second runs with it); reported is the
peak beyond what was in use once the models and inputs were built (peak RSS
on CPU, ``max_memory_allocated`` on CUDA; see
``mmstructkd/benchmarks/memory.py``), and (c)/(b) of those peaks. These
processes never run while steps are timed.

Input sizes (``--size H W`` overrides them all):

* toy configs: their own image size (segmentation 96x96, detection 64x64),
  batch = the config's (8);
* model-zoo configs, ``--device cuda``: the config's training size
  (Cityscapes crops 512x1024 or 512x512; COCO scale 800x1333), batch = the
  config's per-GPU batch;
* model-zoo configs on CPU: half each side of the Cityscapes crop (256x512,
  256x256) and 512x512 for COCO, 5 steps after 1 warm-up, because
  PSPNet-R101-d8 alone is ~2 TFLOPs per 512x1024 forward; batch 1 for
  detection and 2 for segmentation (PSPNet's pyramid pooling has a
  BatchNorm on 1x1 maps, which cannot train on a batch of one).

Results: ``--out`` JSON (device, torch, threads, load averages at start and
end, per-config sizes, per-step times, medians, memory, ratios) and a
Markdown table next to it (``.md``). Defaults:
``benchmarks/results/overhead.json`` (``--set toy``),
``overhead_model-zoo.json``, ``overhead_all.json``, with ``_cuda`` added on
CUDA; with ``--configs`` nothing is written unless ``--out`` is given.

Examples::

    python tools/benchmark_overhead.py                    # toy set, CPU
    python tools/benchmark_overhead.py --set model-zoo    # CPU, small sizes
    python tools/benchmark_overhead.py --set model-zoo --device cuda
    python tools/benchmark_overhead.py --device cuda \\
        --configs configs/cwd/cwd_logits_pspnet-r101-d8_pspnet-r18-d8_*.py \\
        --out benchmarks/results/overhead_pspnet_cuda.json
    python tools/benchmark_overhead.py --configs CONFIG --size 64 64 \\
        --steps 2 --warmup 0 --out /tmp/overhead.json
    python tools/benchmark_overhead.py --device cuda \\
        --teacher-precision fp32 bf16 fp16

Modules: :mod:`.specs` (sizes, batches, targets), :mod:`.steps` (the step
kinds and their timing), :mod:`.memory_processes`, :mod:`.report` (the
table), :mod:`.cli` (``tools/benchmark_overhead.py``).
"""
from .cli import exit_status, main, parse_args
from .specs import resolve

__all__ = ['exit_status', 'main', 'parse_args', 'resolve']
