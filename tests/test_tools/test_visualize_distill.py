"""tools/visualize_distill.py and the maps behind its pictures.

The maps are checked against the losses they illustrate (their means are the
losses) and on simple known cases; the tool is run end to end on the tiny
toy set for every loss type it draws."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from PIL import Image

import mmstructkd  # noqa: F401
from conftest import (last_checkpoint, quick_train_options, run_tool,
                      scalars, toy_config)
from mmstructkd.models.losses import (BoundaryLoss, ChannelWiseDivergence,
                                      ContextLoss, PairWiseLoss,
                                      PixelWiseLoss,
                                      channel_wise_divergence,
                                      context_relation_kl_naive,
                                      pair_wise_loss, pixel_wise_kl)
from mmstructkd.models.losses.ssim import (StructuralSimilarityLoss,
                                           structural_similarity_loss)
from mmstructkd.registry import MODELS
from mmstructkd.visualization import (VisContext, distill_maps, paint_loss,
                                      paint_predictions)
from mmstructkd.visualization.panels import loss_title

CWD_BCD = 'cwd-bcd_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_toyscenes.py'
PA_HO = 'skd_pi-pa-ho_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_toyscenes.py'
SSIM_DET = ('ssim_fpn_faster-rcnn-r34-thin32_faster-rcnn-r18-thin16_'
            '1xb8-2k_toyscenes-64x64.py')
# Two teachers (MultiTeacherDistill), CWD on each one's logits.
MULTI = ('cwd_logits_pspnet-r34-thin32-and-deeplabv3-r34-thin32_'
         'pspnet-r18-thin16_1xb8-2k_toyscenes.py')
TEACHERS = ('pspnet', 'deeplabv3')


def assert_png(path, min_size=(250, 400)):
    """A readable PNG of at least min_size (h, w) that is not blank."""
    assert osp.isfile(path), f'{path} was not written'
    with Image.open(path) as image:
        assert image.format == 'PNG'
        pixels = np.asarray(image.convert('RGB'))
    assert pixels.shape[0] >= min_size[0] and pixels.shape[1] >= min_size[1]
    assert pixels.std() > 10, f'{path} is (nearly) blank'
    return pixels


def two_regions(channels=6, height=8, width=12, border=5):
    """Features constant on two regions split at column ``border``: region
    A lights channel 0, region B channel 1 (plus a shared offset)."""
    feats = torch.full((1, channels, height, width), 0.1)
    feats[:, 0, :, :border] = 1.0
    feats[:, 1, :, border:] = 1.0
    return feats


# ---------------------------------------------------------------------------
# The maps


def test_affinity_row_is_the_loss_matrix_row_and_peaks_at_the_node():
    torch.manual_seed(0)
    feats_S = torch.randn(1, 8, 6, 10)
    feats_T = torch.randn(1, 16, 6, 10)
    for scale in (None, 0.5):
        _, _, rows, cols = distill_maps.node_grid(6, 10, scale)
        rows_T = torch.stack([
            distill_maps.affinity_row(feats_T, (i, j), scale)
            for i in range(rows) for j in range(cols)])
        rows_S = torch.stack([
            distill_maps.affinity_row(feats_S, (i, j), scale)
            for i in range(rows) for j in range(cols)])
        # Stacked rows are the affinity matrices: their MSE is the loss.
        torch.testing.assert_close(
            (rows_T - rows_S).square().mean(),
            pair_wise_loss(feats_S, feats_T, scale=scale))
        for index, row in enumerate(rows_T):
            node = divmod(index, cols)
            assert row[node] == pytest.approx(1.0, abs=1e-5)
            assert row[node] >= row.max() - 1e-6


def test_node_at_maps_input_pixels_to_nodes():
    # 64x64 input, 8x8 map (stride 8), nodes of 4x4 positions.
    assert distill_maps.node_at((0, 0), (64, 64), (8, 8)) == (0, 0)
    assert distill_maps.node_at((63.9, 8.0), (64, 64), (8, 8)) == (7, 1)
    assert distill_maps.node_at((40, 20), (64, 64), (8, 8), (4, 4)) == (1, 0)
    assert distill_maps.node_at((500, -3), (64, 64), (8, 8)) == (7, 0)


def test_relation_rows_and_kl_map_match_the_context_loss():
    torch.manual_seed(1)
    feats_S = torch.randn(1, 5, 4, 7)
    feats_T = torch.randn(1, 9, 4, 7)
    row = distill_maps.relation_row(feats_T, (2, 3), tau=0.1)
    assert row.shape == (4, 7)
    assert float(row.sum()) == pytest.approx(1.0, abs=1e-5)
    # cos(u_i, u_i) = 1 is the largest similarity: the row peaks there.
    assert row[2, 3] == row.max()
    # Blocks of 5 rows (28 positions): same map as in one block.
    kl = distill_maps.relation_kl_map(feats_S, feats_T, tau=0.1,
                                      rows_per_chunk=5)
    torch.testing.assert_close(
        kl, distill_maps.relation_kl_map(feats_S, feats_T, tau=0.1))
    assert bool((kl >= -1e-6).all())
    torch.testing.assert_close(
        kl.mean(), context_relation_kl_naive(feats_S, feats_T, tau=0.1))


def test_boundary_maps_are_high_on_the_border_of_two_regions():
    feats = two_regions(border=5)
    maps = distill_maps.stage_boundary_maps(feats, feats.clone())
    teacher = maps['teacher']
    # Both sides of the border (columns 4 and 5) are boundaries, the
    # interiors and the image border are not.
    assert torch.allclose(teacher[:, 4:6], torch.ones(8, 2))
    assert float(teacher[:, :4].abs().max()) < 1e-6
    assert float(teacher[:, 6:].abs().max()) < 1e-6
    assert float(maps['squared_diff'].max()) == 0.0
    # A student that misses the border: the difference is on the border.
    flat = torch.ones_like(feats)
    missed = distill_maps.stage_boundary_maps(flat, feats)['squared_diff']
    assert torch.allclose(missed[:, 4:6], torch.ones(8, 2))
    assert float(missed[:, :4].max()) < 1e-6


def test_channel_maps_match_the_cwd_loss():
    torch.manual_seed(2)
    logits_S = torch.randn(2, 5, 6, 6)
    logits_T = torch.randn(2, 5, 6, 6)
    probs = distill_maps.channel_distributions(logits_T, tau=2.0)
    torch.testing.assert_close(probs.sum(dim=(1, 2)), torch.ones(5))
    divergences = distill_maps.channel_divergences(logits_S, logits_T, 2.0)
    assert divergences.shape == (5, )
    torch.testing.assert_close(
        divergences.mean(),
        channel_wise_divergence(logits_S[:1], logits_T[:1], tau=2.0))


def test_ssim_and_pixel_maps_match_their_losses():
    torch.manual_seed(3)
    level_S, level_T = torch.randn(1, 4, 15, 13), torch.randn(1, 4, 15, 13)
    maps = distill_maps.ssim_level_maps(level_S, level_T)
    assert maps['window'] == 11 and maps['ssim'].shape == (4, 5, 3)
    torch.testing.assert_close(
        maps['loss'], structural_similarity_loss(level_S, level_T))
    same = distill_maps.ssim_level_maps(level_T, level_T.clone())
    torch.testing.assert_close(same['ssim'], torch.ones(4, 5, 3))
    assert float(same['loss']) == pytest.approx(0.0, abs=1e-6)
    logits_S, logits_T = torch.randn(1, 5, 6, 7), torch.randn(1, 5, 6, 7)
    kl = distill_maps.pixel_divergence_map(logits_S, logits_T, tau=1.5)
    assert kl.shape == (6, 7)
    torch.testing.assert_close(kl.mean(),
                               pixel_wise_kl(logits_S, logits_T, 1.5))


# ---------------------------------------------------------------------------
# The painters (every loss type), on known inputs


def context(size=64, point=(8.0, 40.0), **kwargs):
    image = (np.random.default_rng(0).random((size, size, 3)) * 255).astype(
        np.uint8)
    return VisContext(image=image, frame=(size, size), point=point,
                      class_names=('a', 'b', 'c', 'd', 'e'), **kwargs)


def test_painters_draw_every_loss_type_with_the_right_maps():
    torch.manual_seed(4)
    ctx = context(point=(8.0, 40.0))  # node (1, 5) of an 8x8 map
    feats_S, feats_T = torch.rand(1, 8, 8, 8), torch.rand(1, 16, 8, 8)
    logits_S, logits_T = torch.randn(1, 5, 8, 8), torch.randn(1, 5, 8, 8)
    cases = {
        'loss_pa': (PairWiseLoss(scale=None),
                    dict(preds_S=feats_S, preds_T=feats_T)),
        'loss_ctx': (ContextLoss(), dict(preds_S=feats_S, preds_T=feats_T)),
        'loss_cwd': (ChannelWiseDivergence(tau=1.0),
                     dict(preds_S=logits_S, preds_T=logits_T)),
        'loss_pi': (PixelWiseLoss(), dict(preds_S=logits_S,
                                          preds_T=logits_T)),
        'loss_b': (BoundaryLoss(),
                   dict(feats_S=(two_regions(4, 16, 16), feats_S),
                        feats_T=(two_regions(8, 16, 16), feats_T))),
        'loss_ssim': (StructuralSimilarityLoss(),
                      dict(preds_S=(torch.rand(1, 4, 16, 16),
                                    torch.rand(1, 4, 8, 8)),
                           preds_T=(torch.rand(1, 4, 16, 16),
                                    torch.rand(1, 4, 8, 8)))),
    }
    for name, (loss, inputs) in cases.items():
        (figure, ) = paint_loss(name, loss, inputs, ctx)
        assert figure.name == name
        assert figure.image.dtype == np.uint8 and figure.image.ndim == 3
        assert figure.image.shape[0] >= 250 and figure.image.shape[1] >= 600
        maps = figure.maps
        if name == 'loss_pa':
            assert tuple(maps['0_node']) == (1, 5)
            assert maps['0_teacher'][1, 5] == pytest.approx(1.0, abs=1e-5)
            assert maps['0_teacher'].max() <= 1.0 + 1e-5
        if name == 'loss_ctx':
            assert maps['0_teacher'].argmax() == 1 * 8 + 5
            assert maps['0_kl'].mean() == pytest.approx(
                float(loss(feats_S, feats_T)), rel=1e-4)
        if name == 'loss_cwd':
            assert len([k for k in maps if k.endswith('teacher')]) == 4
        if name == 'loss_b':
            # Stage 0: border of the two regions at columns 4 and 5.
            assert np.allclose(maps['0_teacher'][:, 4:6], 1.0)
            assert np.allclose(maps['0_teacher'][:, :4], 0.0, atol=1e-6)
        if name == 'loss_ssim':
            assert len([k for k in maps if k.endswith('_ssim')]) == 2
            # 16x16 level, 11x11 window: SSIM at the 6x6 valid positions.
            assert maps['0_ssim'].shape == (6, 6)
    # The critic's scores need a log; without one there is no picture.
    from mmstructkd.models.losses import AdversarialGeneratorLoss
    assert paint_loss('loss_ho', AdversarialGeneratorLoss(), {}, ctx) == []
    records = [{'disc.d_score_T': 0.5 + i, 'disc.d_score_S': -0.5 - i,
                'disc.d_wasserstein': 1.0 + 2 * i, 'step': i + 1}
               for i in range(4)]
    (critic, ) = paint_loss('loss_ho', AdversarialGeneratorLoss(), {},
                            context(scalars=records))
    assert critic.name == 'loss_ho_critic'
    np.testing.assert_allclose(critic.maps['disc.d_score_T'],
                               [0.5, 1.5, 2.5, 3.5])
    np.testing.assert_allclose(critic.maps['disc.d_wasserstein'],
                               [1.0, 3.0, 5.0, 7.0])


# ---------------------------------------------------------------------------
# The tool, end to end on the tiny toy set


def train(config, work_dir, env, teacher_ckpt, iters=2):
    """``teacher_ckpt``: a path, or teacher name -> path (several)."""
    # Not quick_train_options: the adversarial config's param_scheduler is
    # a dict of two lists (its `end` stays beyond these few iterations).
    options = [o for o in quick_train_options(iters=iters, batch=2)
               if not o.startswith('param_scheduler')]
    teachers = [f'model.teachers.{name}.ckpt={path}'
                for name, path in teacher_ckpt.items()] \
        if isinstance(teacher_ckpt, dict) else \
        [f'model.teacher_ckpt={teacher_ckpt}']
    run_tool(['tools/train.py', toy_config(config), '--work-dir', work_dir,
              '--cfg-options'] + teachers + options, env=env)
    return osp.join(work_dir, osp.basename(last_checkpoint(work_dir)))


def visualize(config, ckpt, img, out_dir, env, *extra, check=True):
    return run_tool(['tools/visualize_distill.py', toy_config(config), ckpt,
                     img, '--out-dir', out_dir] + list(extra), env=env,
                    check=check)


def val_image(root):
    return osp.join(root, 'img_dir', 'val', 'val_00000.png')


@pytest.mark.slow
def test_cwd_boundary_context_pictures(tmp_path, toy_env, toy_data_root,
                                       toy_teacher_ckpt):
    ckpt = train(CWD_BCD, str(tmp_path / 'train'), toy_env,
                 toy_teacher_ckpt, iters=1)
    out_dir = str(tmp_path / 'vis')
    proc = visualize(CWD_BCD, ckpt, val_image(toy_data_root), out_dir,
                     toy_env, '--teacher-ckpt', toy_teacher_ckpt, '--node',
                     '10', '50', '--channels', '3')
    for name in ('predictions', 'loss_cwd', 'loss_boundary',
                 'loss_context'):
        assert_png(osp.join(out_dir, f'{name}_1.png'))
        assert f'{name}_1.png' in proc.stdout
    # Four backbone stages: four rows, taller than a one-row picture.
    boundary = assert_png(osp.join(out_dir, 'loss_boundary_1.png'))
    context_png = assert_png(osp.join(out_dir, 'loss_context_1.png'))
    assert boundary.shape[0] > 2 * context_png.shape[0]


@pytest.mark.slow
def test_skd_pictures_critic_scores_and_loss_curves(tmp_path, toy_env,
                                                    toy_data_root,
                                                    toy_teacher_ckpt):
    work_dir = str(tmp_path / 'train')
    ckpt = train(PA_HO, work_dir, toy_env, toy_teacher_ckpt, iters=3)
    # The critic step logs D(teacher) and D(student); their gap is the
    # logged Wasserstein estimate.
    train_lines = [x for x in scalars(work_dir) if 'disc.d_score_T' in x]
    assert len(train_lines) == 3
    for line in train_lines:
        assert line['disc.d_score_T'] - line['disc.d_score_S'] == \
            pytest.approx(line['disc.d_wasserstein'], abs=1e-6)

    out_dir = str(tmp_path / 'vis')
    proc = visualize(PA_HO, ckpt, val_image(toy_data_root), out_dir,
                     toy_env, '--teacher-ckpt', toy_teacher_ckpt,
                     '--scalars', work_dir)
    for name in ('predictions', 'loss_pi', 'loss_pa', 'loss_ho_critic'):
        assert_png(osp.join(out_dir, f'{name}_3.png'))
    assert 'critic on this image: D(teacher)=' in proc.stdout

    # Without the log there is no critic picture, and the tool says why.
    out_dir = str(tmp_path / 'vis_no_log')
    proc = visualize(PA_HO, ckpt, val_image(toy_data_root), out_dir,
                     toy_env, '--teacher-ckpt', toy_teacher_ckpt,
                     '--losses', 'loss_ho')
    assert 'loss_ho (AdversarialGeneratorLoss): skipped' in proc.stdout
    assert not osp.exists(osp.join(out_dir, 'loss_ho_critic_3.png'))
    assert osp.isfile(osp.join(out_dir, 'predictions_3.png'))

    # analyze_logs on the same run: every term plotted and tabulated.
    out = str(tmp_path / 'curves.png')
    proc = run_tool(['tools/analyze_logs.py', work_dir, '--out', out])
    assert_png(out, min_size=(500, 900))
    for key in ('distill.loss_pi', 'distill.loss_pa', 'distill.loss_ho',
                'student.decode.loss_ce', 'disc.d_score_T'):
        assert key in proc.stdout


@pytest.mark.slow
def test_ssim_detection_pictures(tmp_path, toy_env, toy_data_root):
    # A randomly initialised teacher is enough to check the wiring.
    ckpt = train(SSIM_DET, str(tmp_path / 'train'), toy_env, 'None',
                 iters=1)
    out_dir = str(tmp_path / 'vis')
    visualize(SSIM_DET, ckpt, val_image(toy_data_root), out_dir, toy_env,
              '--cfg-options', 'model.teacher_ckpt=None', '--score-thr',
              '0.0')
    assert_png(osp.join(out_dir, 'predictions_1.png'))
    ssim = assert_png(osp.join(out_dir, 'loss_ssim_fpn_1.png'))
    assert ssim.shape[0] > 1000  # one row per FPN level (5)


@pytest.mark.slow
def test_multi_teacher_pictures(tmp_path, toy_env, toy_data_root,
                                toy_teacher_ckpt,
                                toy_deeplabv3_teacher_ckpt):
    ckpts = dict(pspnet=toy_teacher_ckpt,
                 deeplabv3=toy_deeplabv3_teacher_ckpt)
    ckpt = train(MULTI, str(tmp_path / 'train'), toy_env, ckpts, iters=1)
    out_dir = str(tmp_path / 'vis')
    # One teacher from --teacher-ckpt NAME=PATH, the other from the config.
    proc = visualize(MULTI, ckpt, val_image(toy_data_root), out_dir,
                     toy_env, '--teacher-ckpt',
                     f'pspnet={toy_teacher_ckpt}', '--cfg-options',
                     f'model.teachers.deeplabv3.ckpt='
                     f'{toy_deeplabv3_teacher_ckpt}')
    for name in TEACHERS:
        assert (f"teacher {name!r} ({ckpts[name]}): predicted, recorded "
                f"['logits']") in proc.stdout
    for name in ('predictions', 'loss_cwd_pspnet', 'loss_cwd_deeplabv3'):
        assert_png(osp.join(out_dir, f'{name}_1.png'))
        assert f'{name}_1.png' in proc.stdout
    # The input, two teachers and the student: four panels, wider than the
    # three (870 pixels) of one teacher's picture.
    predictions = assert_png(osp.join(out_dir, 'predictions_1.png'))
    assert predictions.shape[1] > 1100


def test_multi_teacher_runs_each_teacher_with_its_recorders(
        monkeypatch, toy_data_root):
    monkeypatch.setenv('TOY_DATA_ROOT', toy_data_root)
    tool = load_tool('visualize_distill')
    cfg = Config.fromfile(toy_config(MULTI))
    for name in TEACHERS:  # random weights: the wiring is checked
        cfg.model.teachers[name].ckpt = None
    init_default_scope('mmseg')
    torch.manual_seed(0)
    algorithm = MODELS.build(cfg.model).eval()
    data = tool.prepare_data(cfg, val_image(toy_data_root))
    inputs, teacher_samples, student_sample = tool.run_networks(
        algorithm, pseudo_collate([data]))
    assert list(teacher_samples) == list(TEACHERS)
    kwargs = tool.loss_inputs(algorithm, inputs)
    distiller = algorithm.distiller
    for name in TEACHERS:
        loss_name = f'loss_cwd_{name}'
        # Each loss gets the logits of the teacher its mapping names.
        with torch.no_grad():
            logits = algorithm.teachers[name](inputs, mode='tensor')
        torch.testing.assert_close(kwargs[loss_name]['preds_T'], logits)
        mapping = distiller.loss_forward_mappings[loss_name]
        assert tool.mapped_teachers(mapping) == (name, )
        assert tool.recorder_sources(algorithm, mapping) == dict(
            preds_S='decode_head.conv_seg', preds_T='decode_head.conv_seg')
    assert not torch.allclose(kwargs['loss_cwd_pspnet']['preds_T'],
                              kwargs['loss_cwd_deeplabv3']['preds_T'])
    distiller.reset_records()

    # One prediction panel per teacher, labelled with its name.
    image = data['inputs'].permute(1, 2, 0).numpy()[..., ::-1]
    ctx = VisContext(image=np.ascontiguousarray(image),
                     frame=tuple(inputs.shape[-2:]), point=(32.0, 32.0))
    several = paint_predictions(ctx, teacher_samples, student_sample)
    assert set(several.maps) == {'teacher.pspnet', 'teacher.deeplabv3',
                                 'student'}
    for name in TEACHERS:
        np.testing.assert_array_equal(
            several.maps[f'teacher.{name}'],
            teacher_samples[name].pred_sem_seg.data[0].numpy())
    one = paint_predictions(ctx, teacher_samples['pspnet'], student_sample)
    assert set(one.maps) == {'teacher', 'student'}
    assert several.image.shape[1] > 1.3 * one.image.shape[1]
    # A loss's title names the teacher it compares with (none with one).
    loss = distiller.distill_losses['loss_cwd_deeplabv3']
    assert loss_title('loss_cwd_deeplabv3', loss, None, 'tau=1',
                      ('deeplabv3', )) == \
        'loss_cwd_deeplabv3: ChannelWiseDivergence (tau=1) vs teacher ' \
        'deeplabv3'
    assert loss_title('loss_cwd', loss, None, 'tau=1') == \
        'loss_cwd: ChannelWiseDivergence (tau=1)'
    pictures = []
    for ctx.teachers in (('deeplabv3', ), ()):
        (picture, ) = paint_loss('loss_cwd_deeplabv3', loss,
                                 kwargs['loss_cwd_deeplabv3'], ctx)
        pictures.append(picture.image)
    assert pictures[0].shape == pictures[1].shape
    assert not np.array_equal(*pictures)  # the title differs


def test_teacher_ckpt_form_errors_name_the_teachers(tmp_path):
    tool = load_tool('visualize_distill')

    def run(config, *values):
        argv = [toy_config(config), str(tmp_path / 'missing.pth'),
                str(tmp_path / 'missing.png')]
        for value in values:
            argv += ['--teacher-ckpt', value]
        with pytest.raises(SystemExit) as info:
            tool.main(argv)
        return str(info.value)

    for values, why in ((['psp.pth'], 'write NAME=PATH'),
                        (['pspnet='], 'write NAME=PATH'),
                        (['psp=psp.pth'], "'psp' is not one of them"),
                        (['pspnet=a.pth', 'pspnet=b.pth'],
                         "teacher 'pspnet' given twice")):
        message = run(MULTI, *values)
        assert message.startswith('error: --teacher-ckpt')
        assert why in message
        assert "['pspnet', 'deeplabv3']" in message
    assert 'has one teacher: give one PATH' in run(CWD_BCD, 'a.pth',
                                                    'b.pth')
    # The right form sets the named teacher's ckpt, and only its.
    cfg = Config.fromfile(toy_config(MULTI))
    other = cfg.model.teachers.deeplabv3.ckpt
    tool.set_teacher_ckpts(cfg, ['pspnet=/ckpts/psp=1.pth'])
    assert cfg.model.teachers.pspnet.ckpt == '/ckpts/psp=1.pth'
    assert cfg.model.teachers.deeplabv3.ckpt == other
    # One teacher: the value is its path, as it always was.
    single = Config.fromfile(toy_config(CWD_BCD))
    tool.set_teacher_ckpts(single, ['a=b.pth'])
    assert single.model.teacher_ckpt == 'a=b.pth'


def load_tool(name):
    """Import a script of tools/ as a module."""
    import importlib.util
    path = osp.join(osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))), 'tools', f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'tool_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_backends(tmp_path):
    tool = load_tool('visualize_distill')
    image = np.zeros((20, 30, 3), np.uint8)
    image[5:15, 10:20] = (255, 0, 0)
    out_dir = str(tmp_path / 'local')
    visualizer = tool.build_visualizer(out_dir, [])
    visualizer.add_image('picture', image, step=7)
    written = np.asarray(Image.open(osp.join(out_dir, 'picture_7.png')))
    np.testing.assert_array_equal(written, image)
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(SystemExit, match='TensorBoard is not importable'):
            tool.build_visualizer(str(tmp_path / 'tb'), ['tensorboard'])
    else:
        out_dir = str(tmp_path / 'tb')
        visualizer = tool.build_visualizer(out_dir, ['tensorboard'])
        visualizer.add_image('picture', image, step=7)
        visualizer.close()
        import glob
        assert glob.glob(osp.join(out_dir, 'tensorboard', 'events.*'))
        assert osp.isfile(osp.join(out_dir, 'picture_7.png'))


def test_missing_checkpoint_is_a_clear_error(tmp_path, toy_env,
                                             toy_data_root):
    proc = visualize(CWD_BCD, str(tmp_path / 'missing.pth'),
                     val_image(toy_data_root), str(tmp_path / 'vis'),
                     toy_env, '--cfg-options', 'model.teacher_ckpt=None',
                     check=False)
    assert proc.returncode != 0
    assert 'missing.pth' in proc.stdout and 'does not exist' in proc.stdout
