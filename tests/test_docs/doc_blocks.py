"""Read the fenced code blocks of the Markdown pages in ``docs/`` and the
small checks the docs tests apply to them.

The conventions (also explained to readers in ``docs/README.md``), by the
fence's info string:

* ``python``: run, in page order, in one fresh process per page (the
  blocks of a page share their variables, like a notebook).
* ``text output``: what the ``python`` block right before it prints. A
  ``...`` stands for any text (as doctest's ELLIPSIS).
* ``python config``: a complete training config whose first line is
  ``# <file name>``; trained for 2 iterations with ``tools/train.py``.
* ``diff``: a unified diff from a repository file (``--- a/<path>``) to a
  config block of the same page (``+++ b/<file name>``); applying it must
  give exactly that block.
* ``bash``: every command is checked without running it (the script and
  configs exist, the options parse). ``bash run``: executed.
* anything with ``no-run`` in the info string (and any other language) is
  not executed.
"""
import os
import os.path as osp
import re
import shlex
from dataclasses import dataclass, field
from typing import List, Optional

TESTS_DIR = osp.dirname(osp.abspath(__file__))
REPO_ROOT = osp.dirname(osp.dirname(TESTS_DIR))
DOCS_DIR = osp.join(REPO_ROOT, 'docs')

FENCE = re.compile(r'^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$')


@dataclass
class Block:
    """One fenced code block of a Markdown page."""
    page: str  # path relative to the repository root
    line: int  # 1-based line of the opening fence
    lang: str
    tags: List[str] = field(default_factory=list)
    text: str = ''

    @property
    def label(self) -> str:
        return f'{self.page}:{self.line}'

    @property
    def file_name(self) -> Optional[str]:
        """The name a config block gives itself on its first line."""
        first = self.text.split('\n', 1)[0]
        match = re.match(r'#\s*(\S+\.py)\s*$', first)
        return match.group(1) if match else None

    @property
    def runs(self) -> bool:
        return 'no-run' not in self.tags


def doc_pages() -> List[str]:
    """Every Markdown page of docs/, relative to the repository root."""
    pages = []
    for root, dirs, files in os.walk(DOCS_DIR):
        dirs.sort()
        for name in sorted(files):
            if name.endswith('.md'):
                pages.append(osp.relpath(osp.join(root, name), REPO_ROOT))
    return pages


def read_page(page: str) -> str:
    with open(osp.join(REPO_ROOT, page), encoding='utf-8') as f:
        return f.read()


def parse_blocks(page: str, text: Optional[str] = None) -> List[Block]:
    """The fenced code blocks of ``page`` in order.

    Raises:
        ValueError: on a fence that is never closed (the rest of the page
            would silently become code).
    """
    text = read_page(page) if text is None else text
    lines = text.split('\n')
    blocks = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, info = match.group('fence'), match.group('info').strip()
        words = info.split()
        start = i
        body = []
        i += 1
        while i < len(lines):
            close = FENCE.match(lines[i])
            if close and close.group('fence')[0] == fence[0] and \
                    len(close.group('fence')) >= len(fence) and \
                    not close.group('info').strip():
                break
            body.append(lines[i])
            i += 1
        else:
            raise ValueError(f'{page}:{start + 1}: code fence never closed')
        blocks.append(
            Block(page=page, line=start + 1,
                  lang=words[0] if words else '', tags=words[1:],
                  text='\n'.join(body) + '\n'))
        i += 1
    return blocks


def python_runs(blocks: List[Block]):
    """``(block, expected output or None)`` for each executed python block."""
    runs = []
    for i, block in enumerate(blocks):
        if block.lang != 'python' or block.tags:
            continue
        expected = None
        if i + 1 < len(blocks) and blocks[i + 1].lang == 'text' and \
                'output' in blocks[i + 1].tags:
            expected = blocks[i + 1]
        runs.append((block, expected))
    return runs


def output_matches(expected: str, actual: str) -> bool:
    """Whether ``actual`` is ``expected`` with each ``...`` standing for any
    text (possibly several lines). Trailing spaces and the final newlines
    are ignored."""

    def norm(s):
        return '\n'.join(line.rstrip() for line in s.strip('\n').split('\n'))

    parts = norm(expected).split('...')
    pattern = '.*?'.join(re.escape(part) for part in parts)
    return re.fullmatch(pattern, norm(actual), flags=re.DOTALL) is not None


HUNK = re.compile(r'^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@')


def diff_paths(diff: str):
    """The ``(old, new)`` paths of a one-file unified diff, prefixes
    ``a/`` and ``b/`` removed."""
    old = new = None
    for line in diff.split('\n'):
        if line.startswith('--- ') and old is None:
            old = line[4:].split('\t')[0].strip()
        elif line.startswith('+++ ') and new is None:
            new = line[4:].split('\t')[0].strip()
    if old is None or new is None:
        raise ValueError('diff has no ---/+++ header')
    strip = lambda p: p[2:] if p[:2] in ('a/', 'b/') else p  # noqa: E731
    return strip(old), strip(new)


def apply_unified_diff(original: str, diff: str) -> str:
    """Apply a one-file unified diff to ``original``.

    Every context and removed line must match ``original`` at the place its
    hunk header says, and the hunk line counts must add up; anything else
    raises ``ValueError`` (a diff that no longer applies is a broken doc).
    """
    old_lines = original.split('\n')
    if old_lines and old_lines[-1] == '':
        old_lines.pop()
    out: List[str] = []
    pos = 0  # next unconsumed line of the original (0-based)
    lines = diff.split('\n')
    i = 0
    seen_hunk = False
    while i < len(lines):
        match = HUNK.match(lines[i])
        if not match:
            if seen_hunk and lines[i].strip():
                raise ValueError(f'unexpected diff line {lines[i]!r}')
            i += 1
            continue
        seen_hunk = True
        old_start = int(match.group(1))
        old_count = int(match.group(2) or 1)
        new_count = int(match.group(4) or 1)
        start = old_start - 1 if old_count else old_start
        if start < pos:
            raise ValueError(f'hunk at line {old_start} overlaps the previous')
        out.extend(old_lines[pos:start])
        pos = start
        i += 1
        removed = added = 0
        while i < len(lines) and not HUNK.match(lines[i]):
            line = lines[i]
            if line == '' and i == len(lines) - 1:
                break
            tag, content = (line[:1], line[1:]) if line else (' ', '')
            if tag == '\\':  # "\ No newline at end of file"
                i += 1
                continue
            if tag in (' ', '-'):
                if pos >= len(old_lines) or old_lines[pos] != content:
                    found = old_lines[pos] if pos < len(old_lines) else None
                    raise ValueError(
                        f'diff line {line!r} does not match line {pos + 1} '
                        f'of the original: {found!r}')
                pos += 1
                removed += 1
                if tag == ' ':
                    out.append(content)
                    added += 1
            elif tag == '+':
                out.append(content)
                added += 1
            else:
                raise ValueError(f'unexpected diff line {line!r}')
            i += 1
        if removed != old_count or added != new_count:
            raise ValueError(
                f'hunk @@ -{old_start},{old_count} +...,{new_count} @@ has '
                f'{removed} old and {added} new lines')
    if not seen_hunk:
        raise ValueError('diff has no hunk')
    out.extend(old_lines[pos:])
    return '\n'.join(out) + '\n'


def shell_commands(script: str) -> List[List[str]]:
    """The commands of a bash block as argument lists: backslash
    continuations joined, comments and blank lines dropped."""
    joined = re.sub(r'\\\n', ' ', script)
    commands = []
    for line in joined.split('\n'):
        words = shlex.split(line, comments=True)
        if words:
            commands.append(words)
    return commands


MARKDOWN_LINK = re.compile(r'!?\[[^\]]*\]\(([^)\s]+)\)')
FENCED_BLOCK = re.compile(r'^ {0,3}(`{3,}|~{3,}).*?^ {0,3}\1\s*$',
                          flags=re.DOTALL | re.MULTILINE)


def strip_code_blocks(text: str) -> str:
    """``text`` without its fenced code blocks."""
    return FENCED_BLOCK.sub('', text)


def strip_code(text: str) -> str:
    """``text`` without fenced blocks and inline code spans."""
    return re.sub(r'`[^`\n]*`', '', strip_code_blocks(text))


def relative_links(text: str) -> List[str]:
    """Targets of the Markdown links and images of ``text`` that point into
    the repository (not URLs, not mail addresses)."""
    targets = []
    for target in MARKDOWN_LINK.findall(strip_code(text)):
        if not re.match(r'^[a-z][a-z0-9+.-]*:', target):
            targets.append(target)
    return targets


def heading_anchors(text: str) -> List[str]:
    """GitHub's anchors for the headings of a page."""
    anchors = []
    counts = {}
    for line in strip_code_blocks(text).split('\n'):
        match = re.match(r'^#{1,6}\s+(.*?)\s*#*\s*$', line)
        if not match:
            continue
        slug = match.group(1).strip().lower()
        slug = re.sub(r'[^\w\- ]', '', slug).replace(' ', '-')
        n = counts.get(slug, 0)
        counts[slug] = n + 1
        anchors.append(slug if n == 0 else f'{slug}-{n}')
    return anchors


# Repository paths mentioned in prose or code that must exist.
REPO_PATH = re.compile(
    r'(?<![\w/.-])((?:configs|tools|tests|mmstructkd|benchmarks)/'
    r'[\w./-]*\w)')
PACKAGE_CONFIG = re.compile(r'mmstructkd::([\w./-]+\.py)')
