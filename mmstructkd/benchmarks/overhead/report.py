"""The Markdown table of the overhead results."""
from .specs import CONDITIONS


def fmt_ms(seconds):
    return f'{seconds * 1e3:.1f} ms' if seconds < 10 else f'{seconds:.2f} s'


def fmt_mb(entry):
    if entry.get('status') != 'ok':
        return entry.get('status', '-')
    return f'{entry["peak_mb"]:.0f} MB'


def markdown(rows, info):
    load_start = '/'.join(f'{x:.1f}' for x in info['load_average_start'])
    load_end = '/'.join(f'{x:.1f}' for x in info['load_average_end'])
    device = info['machine'].get('gpu', info['device'])
    lines = [
        f'Overhead of the distillation step: {device}, '
        f'{info["threads"]} threads, torch {info["torch"]}, random weights. '
        f'Load average (1/5/15 min) {load_start} at the start, {load_end} '
        f'at the end. {info["date"]}, `{info["command"]}`.', '',
        'Time per training step: medians over interleaved steps (after the '
        'warm-up). (a) the student alone, (b) (a) plus a bare teacher '
        'forward under no_grad, (c) the full distillation step; with a '
        'critic, its update is part of (c) and also shown apart.', '',
        '| config | input | steps | teacher runs | (a) student | '
        '(b) + teacher fwd | (c) distillation | (c)/(b) | target | '
        'critic step | (c) - critic, /(b) |',
        '|---|---|---:|---|---:|---:|---:|---:|---|---:|---:|'
    ]
    for r in rows:
        if r['status'] != 'ok':
            reason = r['reason'].replace('|', '/')
            lines.append(f'| {r["name"]} | {r["batch"]} x {r["size"][0]}x'
                         f'{r["size"][1]} | failed: {reason} |')
            continue
        m = r['median_s']
        target = '-'
        if r['target'] is not None:
            target = f'<= {r["target"]:.2f} ' + (
                '(met)' if r['meets_target'] else '(missed)')
        critic = without = '-'
        if r['adversarial']:
            critic = fmt_ms(r['critic_median_s'])
            without = (f'{fmt_ms(r["c_without_critic_median_s"])}, '
                       f'{r["c_without_critic_over_b"]:.3f}')
        lines.append(
            f'| {r["name"]} | {r["batch"]} x {r["size"][0]}x{r["size"][1]} '
            f'| {r["steps"]} | {r["teacher_forward_mode"]} | '
            f'{fmt_ms(m["a"])} | {fmt_ms(m["b"])} | {fmt_ms(m["c"])} | '
            f'{r["c_over_b"]:.3f} | {target} | {critic} | {without} |')
    if any('memory' in r for r in rows):
        lines += [
            '', 'Peak memory beyond the built models and inputs, each step '
            f'kind in its own fresh process ({info["memory_steps"]} steps; '
            f'{info["memory_method"]}). "models" is the parameters and '
            'buffers of student, teacher, connectors and critic.', '',
            '| config | input | models | (a) student | (b) + teacher fwd | '
            '(c) distillation | (c)/(b) |',
            '|---|---|---:|---:|---:|---:|---:|'
        ]
        for r in rows:
            if 'memory' not in r:
                continue
            mem = r['memory']
            models = next((f'{mem[k]["models_mb"]:.0f} MB' for k in 'cba'
                           if mem[k].get('status') == 'ok'), '-')
            ratio = r.get('memory_c_over_b')
            lines.append(
                f'| {r["name"]} | {r["batch"]} x '
                f'{r["size"][0]}x{r["size"][1]} | {models} | '
                f'{fmt_mb(mem["a"])} | {fmt_mb(mem["b"])} | '
                f'{fmt_mb(mem["c"])} | '
                f'{"-" if ratio is None else f"{ratio:.3f}"} |')
        failed = [(r['name'], k, r['memory'][k].get('reason'))
                  for r in rows if 'memory' in r for k in CONDITIONS
                  if r['memory'][k].get('status') != 'ok']
        for name, key, reason in failed:
            lines.append(f'\n({key}) of {name}: {reason}')
    return '\n'.join(lines) + '\n'

