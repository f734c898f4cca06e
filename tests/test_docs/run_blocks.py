"""Run the python blocks of one docs page, in order, in this process.

Usage: python run_blocks.py BLOCKS_JSON RESULTS_JSON

``BLOCKS_JSON`` holds ``[{"label": "docs/page.md:12", "code": "..."}]``.
The blocks share one namespace (a page reads like a notebook). What each
block prints is captured separately and written to ``RESULTS_JSON`` as
``[{"label", "stdout", "error"}]``; the first block that raises stops the
run and its traceback is its ``error``.
"""
import contextlib
import io
import json
import sys
import traceback


def main(blocks_path: str, results_path: str) -> int:
    with open(blocks_path) as f:
        blocks = json.load(f)
    # mmengine's logger writes to the stdout it finds when it is created:
    # create it now, so log lines do not end up in a block's output.
    from mmengine.logging import MMLogger
    MMLogger.get_instance('mmengine')
    namespace = {'__name__': '__main__'}
    results = []
    status = 0
    for block in blocks:
        out = io.StringIO()
        error = None
        try:
            code = compile(block['code'], block['label'], 'exec')
            with contextlib.redirect_stdout(out):
                exec(code, namespace)
        except BaseException:  # noqa: B902  (SystemExit too: report it)
            error = traceback.format_exc()
        results.append(
            dict(label=block['label'], stdout=out.getvalue(), error=error))
        if error is not None:
            status = 1
            break
    with open(results_path, 'w') as f:
        json.dump(results, f, indent=1)
    return status


if __name__ == '__main__':
    sys.exit(main(sys.argv[1], sys.argv[2]))
