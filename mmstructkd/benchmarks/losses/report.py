"""Ratios against the reference rows, the Markdown table, and merging
with the rows of earlier runs."""
import json
import math
import os.path as osp


def add_ratios(rows):
    """Speed and memory ratios of each row against its reference row."""
    for row in rows:
        ref_key = row.get('reference')
        if not ref_key:
            continue
        candidates = [
            r for r in rows if r.get('family') == row['family']
            and r.get('key') == ref_key
        ]
        same_size = [r for r in candidates if r.get('params') == row.get(
            'params')]
        ref = (same_size or candidates or [None])[0]
        if ref is None:
            row['ratio_note'] = f'no reference row {ref_key!r}'
        elif ref.get('status') != 'ok':
            row['ratio_note'] = f'reference {ref.get("status")}'
        elif row.get('status') == 'ok':
            row['speedup_vs_reference'] = ref['median_s'] / row['median_s']
            row['memory_ratio_vs_reference'] = (
                ref['peak_mb'] / row['peak_mb']
                if row['peak_mb'] > 0 else math.inf)


def _ratio(ratio, better, worse):
    """'3.2x faster' for 3.2, '1.5x slower' for 1/1.5."""
    if ratio >= 1:
        return f'{ratio:.1f}x {better}'
    return f'{1 / ratio:.1f}x {worse}' if ratio > 0 else f'inf {worse}'


def markdown_table(rows):
    lines = [
        '| family | case | size | median s | peak MB | vs reference |',
        '|---|---|---|---:|---:|---|'
    ]
    for row in rows:
        if row.get('status') == 'ok':
            median = f'{row["median_s"]:.4g}'
            peak = f'{row["peak_mb"]:.1f}'
        else:
            median = peak = '-'
        if 'speedup_vs_reference' in row:
            speed = _ratio(row['speedup_vs_reference'], 'faster', 'slower')
            memory = _ratio(row['memory_ratio_vs_reference'], 'less', 'more')
            versus = f'{speed}, {memory} memory than {row["reference"]}'
        elif row.get('status') != 'ok':
            versus = f'{row["status"]}: {row.get("reason", "")}'
        else:
            versus = row.get('ratio_note', '')
        versus = versus.replace('|', '/')
        lines.append(f'| {row["family"]} | {row["label"]} | {row["size"]} '
                     f'| {median} | {peak} | {versus} |')
    return '\n'.join(lines)


def merge_with_previous(path, rows, run_id, run_info, families):
    """Keep the rows of families not run this time."""
    runs = {run_id: run_info}
    kept = []
    if osp.exists(path):
        try:
            with open(path) as f:
                previous = json.load(f)
            kept = [r for r in previous.get('rows', [])
                    if r.get('family') not in families]
            for r in kept:
                if r.get('run') in previous.get('runs', {}):
                    runs[r['run']] = previous['runs'][r['run']]
        except (OSError, ValueError):
            kept = []
    return kept + rows, runs
