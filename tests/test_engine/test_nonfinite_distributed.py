"""The non-finite guard under DDP: two gloo processes on CPU run the real
training step (SingleTeacherDistill in DistillDistributedDataParallel, thin
toy models). When only one process sees a NaN, both skip, count and stop
together; a skipped step leaves both unchanged."""
import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO_ROOT, toy_config

CWD = 'cwd_logits_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_toyscenes.py'

WORKER = textwrap.dedent('''
    import json, os, sys
    import torch
    import torch.distributed as dist

    rank = int(os.environ['RANK'])
    dist.init_process_group('gloo', rank=rank, world_size=2)

    from mmengine.config import Config
    from mmengine.logging import MessageHub
    from mmengine.optim import build_optim_wrapper
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    import mmstructkd  # noqa: F401
    from mmstructkd.models.utils import NonFiniteStateError
    from mmstructkd.models.wrappers import DistillDistributedDataParallel
    from mmstructkd.registry import MODELS

    cfg = Config.fromfile(sys.argv[1])
    cfg.model.teacher_ckpt = None
    cfg.model.max_nonfinite_steps = 2
    torch.manual_seed(0)  # the same initial weights on both processes
    model = MODELS.build(cfg.model)
    model.train()
    ddp = DistillDistributedDataParallel(module=model,
                                         broadcast_buffers=False)
    wrapper = build_optim_wrapper(
        model, dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)))
    torch.manual_seed(1 + rank)  # each process its own data

    def batch(nan=False, n=2, size=32):
        inputs, samples = [], []
        for _ in range(n):
            image = torch.randint(0, 255, (3, size, size), dtype=torch.uint8)
            inputs.append(torch.full(image.shape, float('nan'))
                          if nan else image)
            s = SegDataSample()
            s.gt_sem_seg = PixelData(
                data=torch.randint(0, 5, (1, size, size)))
            s.set_metainfo(dict(img_shape=(size, size),
                                ori_shape=(size, size),
                                pad_shape=(size, size)))
            samples.append(s)
        return dict(inputs=inputs, data_samples=samples)

    def snapshot():
        return {k: v.clone() for k, v in model.state_dict().items()
                if k != '_extra_state'}

    def step(i, **kwargs):
        MessageHub.get_current_instance().update_info('iter', i)
        try:
            log_vars = ddp.train_step(batch(**kwargs), wrapper)
            return dict(skipped=float(log_vars['nonfinite.skipped']))
        except RuntimeError as e:
            return dict(error=type(e).__name__, message=str(e))

    out = {}
    out['good'] = step(0)
    # Only process 1 sees a NaN loss: both skip, nothing changes on either.
    before = snapshot()
    out['rank1_nan'] = step(1, nan=(rank == 1))
    out['unchanged'] = all(torch.equal(v, before[k])
                           for k, v in snapshot().items())
    out['counters_after_skip'] = model.student_guard.state_dict()
    out['good_again'] = step(2)
    # Only process 0's BatchNorm statistics overflow (finite loss): both
    # stop after the update.
    bn = model.architecture.backbone.stem[1]

    def overflow(module, inputs, output):
        if rank == 0:
            module.running_var.data.fill_(float('inf'))

    hook = bn.register_forward_hook(overflow)
    out['rank0_inf_buffer'] = step(3)
    hook.remove()
    bn.running_var.data.fill_(1.0)
    # Process 0 sees NaN twice in a row: both stop at the second.
    out['rank0_nan_1'] = step(4, nan=(rank == 0))
    out['rank0_nan_2'] = step(5, nan=(rank == 0))
    out['counters_at_stop'] = model.student_guard.state_dict()
    weights = {k: v for k, v in model.named_parameters()}
    torch.save(weights, os.path.join(sys.argv[2], f'rank{rank}.pth'))
    with open(os.path.join(sys.argv[2], f'rank{rank}.json'), 'w') as f:
        json.dump(out, f)
    dist.destroy_process_group()
''')


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_one_process_nan_makes_both_skip_and_stop(tmp_path):
    import torch
    script = tmp_path / 'worker.py'
    script.write_text(WORKER)
    env = dict(os.environ, MASTER_ADDR='127.0.0.1',
               MASTER_PORT=str(free_port()), WORLD_SIZE='2',
               OMP_NUM_THREADS='1')
    env['PYTHONPATH'] = REPO_ROOT + os.pathsep + env.get('PYTHONPATH', '')
    procs = [subprocess.Popen(
        [sys.executable, str(script), toy_config(CWD), str(tmp_path)],
        env=dict(env, RANK=str(rank), LOCAL_RANK=str(rank)), cwd=REPO_ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for rank in (0, 1)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    for rank, (proc, out) in enumerate(zip(procs, outputs)):
        assert proc.returncode == 0, f'rank {rank}:\n{out[-6000:]}'
    r0, r1 = [json.loads((tmp_path / f'rank{r}.json').read_text())
              for r in (0, 1)]

    assert r0['good'] == r1['good'] == dict(skipped=0.0)
    # Process 0's losses were finite, yet it skipped and counted too.
    assert r0['rank1_nan'] == r1['rank1_nan'] == dict(skipped=1.0)
    assert r0['unchanged'] and r1['unchanged']
    assert r0['counters_after_skip'] == r1['counters_after_skip'] == dict(
        num_checked=2, num_skipped=1, num_consecutive=1)
    assert r0['good_again'] == r1['good_again'] == dict(skipped=1.0)

    for result in (r0, r1):
        assert result['rank0_inf_buffer']['error'] == 'NonFiniteStateError'
    assert 'architecture.backbone.stem.1.running_var' in \
        r0['rank0_inf_buffer']['message']
    assert 'on another process' in r1['rank0_inf_buffer']['message']

    assert r0['rank0_nan_1'] == r1['rank0_nan_1'] == dict(skipped=2.0)
    for result in (r0, r1):
        assert result['rank0_nan_2']['error'] == 'RuntimeError'
        assert '2 steps in a row (at iteration 5' in \
            result['rank0_nan_2']['message']
    assert 'distill.loss_cwd' in r0['rank0_nan_2']['message']
    assert 'losses of another process' in r1['rank0_nan_2']['message']
    assert r0['counters_at_stop'] == r1['counters_at_stop']

    # The weights stayed identical on both processes throughout.
    w0 = torch.load(tmp_path / 'rank0.pth', weights_only=True)
    w1 = torch.load(tmp_path / 'rank1.pth', weights_only=True)
    for key, value in w0.items():
        assert torch.equal(value, w1[key]), key
