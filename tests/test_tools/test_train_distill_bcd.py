"""BCD on the toy segmentation set through tools/train.py, alone and
combined with CWD in one distiller."""
import math
import os.path as osp

import pytest

from conftest import quick_train_options, run_tool, scalars, toy_config

BCD = 'bcd_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_toyscenes.py'
CWD_BCD = 'cwd-bcd_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_toyscenes.py'



@pytest.mark.slow
@pytest.mark.parametrize('config, keys', [
    (BCD, ['distill.loss_boundary', 'distill.loss_context']),
    (CWD_BCD,
     ['distill.loss_boundary', 'distill.loss_context', 'distill.loss_cwd']),
])
def test_bcd_trains_and_validates(config, keys, tmp_path, toy_env,
                                  toy_teacher_ckpt):
    work_dir = str(tmp_path / 'bcd')
    run_tool(['tools/train.py', toy_config(config), '--work-dir', work_dir,
              '--cfg-options', f'model.teacher_ckpt={toy_teacher_ckpt}'] +
             quick_train_options(iters=3), env=toy_env)
    logs = scalars(work_dir)
    train = [x for x in logs if 'distill.loss_boundary' in x]
    assert len(train) == 3
    for entry in train:
        assert set(keys) <= set(entry)
        for key in keys:
            assert math.isfinite(entry[key]) and entry[key] > 0, key
    assert any('mIoU' in x and 'teacher.mIoU' in x for x in logs)
