"""Generate the bundled toy street scenes (``make data``).

Writes the segmentation layout of mmseg and a COCO instance set from the same
synthetic scenes (see ``mmstructkd/toy_data/`` for the scene model and
the exact layout). Deterministic and idempotent: the same arguments
give byte-identical files, and a second run with them does nothing.

Examples::

    python tools/make_toy_data.py                      # data/toy_scenes
    python tools/make_toy_data.py --size 64 --out /tmp/toy64
    python tools/make_toy_data.py --montage toy_montage.png
"""
import argparse
import os.path as osp
import time

from mmstructkd.toy_data import (DEFAULT_MIN_VISIBLE_AREA,
                                 generate_toy_scenes, save_montage)

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Generate the toy street-scene data set (mmseg layout '
        'and COCO instances).')
    parser.add_argument(
        '--out',
        default=osp.join(REPO_ROOT, 'data', 'toy_scenes'),
        help='output root (default: data/toy_scenes in the repository)')
    parser.add_argument('--num-train', type=int, default=1000)
    parser.add_argument('--num-val', type=int, default=100)
    parser.add_argument(
        '--size', type=int, default=96, help='side of the square pictures')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--holdout-fraction',
        type=float,
        default=0.2,
        help='share of train listed in splits/train_holdout.txt (the rest in '
        'train_fit.txt) for choosing hyper-parameters without val')
    parser.add_argument(
        '--min-area',
        type=int,
        default=DEFAULT_MIN_VISIBLE_AREA,
        help='visible instances smaller than this many pixels are left out '
        'of the COCO files')
    parser.add_argument(
        '--object-scale',
        type=float,
        default=1.0,
        help='factor on the size of everything on the street (a detection '
        'variant of the scenes uses larger objects)')
    parser.add_argument(
        '--min-depth',
        type=float,
        default=0.0,
        help='nothing stands farther than this perspective depth (0 = the '
        'horizon, 1 = the bottom row): leaves out the far objects of a few '
        'pixels, which carry no box to learn')
    parser.add_argument(
        '--force',
        action='store_true',
        help='regenerate even if the set is up to date')
    parser.add_argument(
        '--montage',
        metavar='PNG',
        help='also save pictures, class maps and COCO boxes of a few '
        'training images side by side')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    start = time.perf_counter()
    generate_toy_scenes(
        args.out,
        num_train=args.num_train,
        num_val=args.num_val,
        size=args.size,
        seed=args.seed,
        holdout_fraction=args.holdout_fraction,
        min_area=args.min_area,
        object_scale=args.object_scale,
        min_depth=args.min_depth,
        force=args.force,
        verbose=True)
    if args.montage:
        save_montage(args.out, args.montage)
        print(f'montage saved to {args.montage}')
    print(f'done in {time.perf_counter() - start:.1f} s')


if __name__ == '__main__':
    main()
