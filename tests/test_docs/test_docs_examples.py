"""The examples of docs/ are executed, so they cannot rot.

What runs how is decided by each fenced block's info string (see
``doc_blocks`` and docs/README.md): python blocks run page by page and
their printed output is compared with the ``text output`` block that
follows; ``python config`` blocks are trained for 2 iterations on the tiny
toy set; ``diff`` blocks must turn the repository file they name into the
config block they name; ``bash run`` blocks run; the other bash commands
are checked against the scripts' own argument parsers; links and paths
mentioned in the pages must exist.
"""
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys

import pytest

from doc_blocks import (PACKAGE_CONFIG, REPO_PATH, REPO_ROOT, TESTS_DIR,
                        apply_unified_diff, diff_paths, doc_pages,
                        heading_anchors, output_matches, parse_blocks,
                        python_runs, read_page, relative_links,
                        shell_commands)
from conftest import quick_train_options, run_tool, scalars

PAGES = doc_pages()
BLOCKS = {page: parse_blocks(page) for page in PAGES}
PYTHON_PAGES = [p for p in PAGES if python_runs(BLOCKS[p])]
CONFIG_BLOCKS = [b for p in PAGES for b in BLOCKS[p]
                 if b.lang == 'python' and 'config' in b.tags]
DIFF_BLOCKS = [b for p in PAGES for b in BLOCKS[p]
               if b.lang == 'diff' and b.runs]
BASH_RUN_BLOCKS = [b for p in PAGES for b in BLOCKS[p]
                   if b.lang == 'bash' and 'run' in b.tags]


def subprocess_env(extra):
    env = dict(os.environ)
    env['PYTHONPATH'] = REPO_ROOT + os.pathsep + env.get('PYTHONPATH', '')
    env.setdefault('OMP_NUM_THREADS', '1')
    env.update(extra)
    return env


def config_block(page, name):
    matches = [b for b in BLOCKS[page]
               if b.lang == 'python' and b.file_name == name]
    assert len(matches) == 1, \
        f'{page}: expected one config block named {name}, got {len(matches)}'
    return matches[0]


def test_docs_exist_and_have_examples():
    # The pages the docs index promises, each with something executed.
    expected = {
        'docs/README.md', 'docs/getting_started.md',
        'docs/add_distillation.md', 'docs/port_mmrazor.md',
        'docs/writing_a_loss.md',
        'docs/troubleshooting.md', 'docs/methods/skd.md',
        'docs/methods/cwd.md', 'docs/methods/ssim.md', 'docs/methods/bcd.md'
    }
    assert expected <= set(PAGES)
    for page in expected - {'docs/README.md'}:
        executed = [b for b in BLOCKS[page]
                    if (b.lang == 'python' and b.runs) or
                    (b.lang in ('bash', 'diff') and b.runs)]
        assert executed, f'{page} has no executed or checked example'


@pytest.mark.parametrize('page', PYTHON_PAGES)
def test_python_blocks(page, tmp_path, toy_env):
    runs = python_runs(BLOCKS[page])
    blocks_file = tmp_path / 'blocks.json'
    results_file = tmp_path / 'results.json'
    blocks_file.write_text(json.dumps(
        [dict(label=b.label, code=b.text) for b, _ in runs]))
    proc = subprocess.run(
        [sys.executable, osp.join(TESTS_DIR, 'run_blocks.py'),
         str(blocks_file), str(results_file)],
        cwd=REPO_ROOT, env=subprocess_env(toy_env), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=600)
    assert results_file.exists(), proc.stdout[-5000:]
    results = json.loads(results_file.read_text())
    for result in results:
        assert result['error'] is None, \
            f'{result["label"]} raised:\n{result["error"]}'
    assert len(results) == len(runs), proc.stdout[-5000:]
    for (block, expected), result in zip(runs, results):
        if expected is not None:
            assert output_matches(expected.text, result['stdout']), (
                f'{block.label}: printed\n{result["stdout"]}\nbut the docs '
                f'show ({expected.label})\n{expected.text}')


@pytest.mark.parametrize('block', CONFIG_BLOCKS, ids=lambda b: b.label)
def test_config_blocks_train(block, tmp_path, toy_env, toy_teacher_ckpt):
    name = block.file_name
    assert name, f'{block.label}: a config block starts with "# <name>.py"'
    if osp.dirname(name):
        # A config that sits in the repository's configs/ (e.g. next to
        # the student config it inherits by relative path) is written into
        # a copy of configs/, so the checkout is never written to.
        shutil.copytree(osp.join(REPO_ROOT, 'configs'), tmp_path / 'configs')
    config = tmp_path / name
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(block.text)
    work_dir = tmp_path / 'work'
    options = quick_train_options(iters=2, batch=2)
    if 'SingleTeacherDistill' in block.text:
        options.append(f'model.teacher_ckpt={toy_teacher_ckpt}')
    run_tool(['tools/train.py', str(config), '--work-dir', str(work_dir),
              '--cfg-options'] + options, env=toy_env)
    assert (work_dir / 'iter_2.pth').is_file()
    logs = scalars(str(work_dir))
    train = [line for line in logs if 'loss' in line]
    assert train and all(
        abs(value) < float('inf') for line in train
        for key, value in line.items() if key.startswith('distill.'))
    if 'SingleTeacherDistill' in block.text:
        assert any(key.startswith('distill.') for key in train[-1]), train[-1]
        # The distillation val loop reports the student and the teacher.
        val = [line for line in logs if 'mIoU' in line]
        assert val and 'teacher.mIoU' in val[-1], val


@pytest.mark.parametrize('block', DIFF_BLOCKS, ids=lambda b: b.label)
def test_diff_blocks_apply(block):
    old, new = diff_paths(block.text)
    with open(osp.join(REPO_ROOT, old)) as f:
        original = f.read()
    result = apply_unified_diff(original, block.text)
    target = config_block(block.page, new)
    assert result == target.text, (
        f'{block.label}: applying the diff to {old} gives\n{result}\nbut the '
        f'config block at {target.label} is\n{target.text}')


def test_bash_commands_parse(tmp_path):
    commands = []
    for page in PAGES:
        configs = [b.file_name for b in BLOCKS[page] if b.file_name]
        for block in BLOCKS[page]:
            if block.lang != 'bash' or 'run' in block.tags or not block.runs:
                continue
            for argv in shell_commands(block.text):
                commands.append(dict(label=block.label, argv=argv,
                                     configs=configs))
    assert commands
    path = tmp_path / 'commands.json'
    path.write_text(json.dumps(commands))
    proc = subprocess.run(
        [sys.executable, osp.join(TESTS_DIR, 'check_commands.py'), str(path)],
        cwd=REPO_ROOT, env=subprocess_env({}), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-5000:]
    assert f'checked {len(commands)} commands' in proc.stdout


@pytest.mark.parametrize('block', BASH_RUN_BLOCKS, ids=lambda b: b.label)
def test_bash_run_blocks(block, tmp_path, toy_env, toy_teacher_ckpt):
    env = subprocess_env(toy_env)
    # The blocks read these with defaults for a reader's checkout.
    env.update(OUT=str(tmp_path / 'out'), TEACHER=toy_teacher_ckpt)
    bin_dir = osp.dirname(sys.executable)
    env['PATH'] = bin_dir + os.pathsep + env.get('PATH', '')
    proc = subprocess.run(['bash', '-euo', 'pipefail', '-c', block.text],
                          cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=600)
    assert proc.returncode == 0, f'{block.label}:\n{proc.stdout[-6000:]}'
    blocks = BLOCKS[block.page]
    following = blocks[blocks.index(block) + 1:][:1]
    if following and following[0].lang == 'text' and \
            'output' in following[0].tags:
        assert output_matches(following[0].text, proc.stdout), (
            f'{block.label} printed\n{proc.stdout[-3000:]}\nbut the docs show'
            f'\n{following[0].text}')


@pytest.mark.parametrize('page', PAGES)
def test_links_and_paths_exist(page):
    text = read_page(page)
    base = osp.dirname(osp.join(REPO_ROOT, page))
    for target in relative_links(text):
        path, _, anchor = target.partition('#')
        full = osp.normpath(osp.join(base, path)) if path else \
            osp.join(REPO_ROOT, page)
        assert osp.exists(full), f'{page}: broken link {target}'
        if anchor and full.endswith('.md'):
            with open(full, encoding='utf-8') as f:
                anchors = heading_anchors(f.read())
            assert anchor in anchors, \
                f'{page}: no heading #{anchor} in {path or page}'
    # Files the page itself creates (its config blocks) need not exist.
    created = {b.file_name for b in BLOCKS[page] if b.file_name}
    for path in REPO_PATH.findall(text):
        if '*' in path or '<' in path or '{' in path or path in created:
            continue
        assert osp.exists(osp.join(REPO_ROOT, path)), \
            f'{page}: mentions {path}, which does not exist'
    for path in PACKAGE_CONFIG.findall(text):
        assert osp.isfile(osp.join(REPO_ROOT, 'configs', path)), \
            f'{page}: mentions mmstructkd::{path}, which does not exist'


# The checks themselves must be able to fail.
def test_checks_reject_broken_examples():
    assert output_matches('a ... c', 'a b\nb c')
    assert not output_matches('a ... c', 'a b d')
    assert not output_matches('KeyError: x', 'KeyError: y')
    original = 'one\ntwo\nthree\n'
    diff = '--- a/f.py\n+++ b/g.py\n@@ -1,3 +1,3 @@\n one\n-two\n+2\n three\n'
    assert apply_unified_diff(original, diff) == 'one\n2\nthree\n'
    with pytest.raises(ValueError, match='does not match'):
        apply_unified_diff('one\nTWO\nthree\n', diff)
    with pytest.raises(ValueError, match='old and'):
        apply_unified_diff(original, diff.replace('-1,3', '-1,4'))
    blocks = parse_blocks('x.md', 'text\n```python\nprint(1)\n```\n'
                          '```text output\n1\n```\n```python config\n# a.py\n'
                          'x = 1\n```\n')
    assert [(b.lang, b.tags, b.line) for b in blocks] == [
        ('python', [], 2), ('text', ['output'], 5), ('python', ['config'], 8)]
    assert blocks[2].file_name == 'a.py'
    assert [r[0].line for r in python_runs(blocks)] == [2]
    with pytest.raises(ValueError, match='never closed'):
        parse_blocks('x.md', '```python\nprint(1)\n')
    assert shell_commands('# c\nmake a  # b\npython t.py \\\n  --x 1\n') == [
        ['make', 'a'], ['python', 't.py', '--x', '1']]
    assert relative_links('[a](b.md#c) [u](https://x) `[n](no.md)`') == [
        'b.md#c']
    assert heading_anchors('# Getting started\n## Step 1: a config\n') == [
        'getting-started', 'step-1-a-config']
    assert re.fullmatch(REPO_PATH, 'configs/toy/x.py')
