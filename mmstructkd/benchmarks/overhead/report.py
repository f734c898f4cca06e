"""The Markdown table of the overhead results."""
from .specs import CONDITIONS


def fmt_ms(seconds):
    return f'{seconds * 1e3:.1f} ms' if seconds < 10 else f'{seconds:.2f} s'


def fmt_mb(entry):
    if entry.get('status') != 'ok':
        return entry.get('status', '-')
    return f'{entry["peak_mb"]:.0f} MB'


def teacher_runs(row):
    """How far the teacher runs, and its precision unless float32."""
    precision = row.get('teacher_precision', 'fp32')
    return row['teacher_forward_mode'] + (
        f' ({precision})' if set(precision.split(', ')) != {'fp32'} else '')


def markdown(rows, info):
    load_start = '/'.join(f'{x:.1f}' for x in info['load_average_start'])
    load_end = '/'.join(f'{x:.1f}' for x in info['load_average_end'])
    device = info['machine'].get('gpu', info['device'])
    lines = [
        f'Overhead of the distillation step: {device}, '
        f'{info["threads"]} threads, torch {info["torch"]}, random weights'
        + (', mixed precision (--amp)' if info.get('amp') else '') + '. '
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
            f'| {r["steps"]} | {teacher_runs(r)} | '
            f'{fmt_ms(m["a"])} | {fmt_ms(m["b"])} | {fmt_ms(m["c"])} | '
            f'{r["c_over_b"]:.3f} | {target} | {critic} | {without} |')
    lines += precision_table(rows)
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



def precision_table(rows):
    """The lines of the teacher-precision table (``--teacher-precision``):
    per config, what the teacher's forward costs, (b) - (a), in each
    precision, and relative to the first one listed; none without it."""
    measured = [r for r in rows if r['status'] == 'ok' and
                r.get('teacher_precisions')]
    if not measured:
        return []
    precisions = list(measured[0]['teacher_precisions'])
    first = precisions[0]
    header = ['config', 'input', 'teacher runs'] + [
        f'(b) - (a), {p}' for p in precisions] + [
        f'{p} / {first}' for p in precisions[1:]]
    lines = [
        '', 'Teacher forward in each precision (model.teacher_precision): '
        'what it adds to the student\'s step, (b) - (a), the median of the '
        'per-step differences (same batch, same round of interleaved '
        'steps), and relative to ' + first + '.', '',
        '| ' + ' | '.join(header) + ' |',
        '|---|---|---|' + '---:|' * (len(header) - 3)
    ]
    for r in measured:
        costs = r['teacher_precisions']
        cells = [r['name'], f'{r["batch"]} x {r["size"][0]}x{r["size"][1]}',
                 teacher_runs(r)]
        cells += [fmt_ms(costs[p]['teacher_forward_s']) for p in precisions]
        for p in precisions[1:]:
            ratio = costs[p]['teacher_forward_over_first']
            cells.append('-' if ratio is None else f'{ratio:.3f}')
        lines.append('| ' + ' | '.join(cells) + ' |')
    return lines
