"""Why per-pixel FixMatch hurts the generated-shapes segmentation benchmark: one first-round fit per setting, and
what the trained model predicts on the pool.

The first round of `pseudo_labels.py` (10 labelled images of its pool, `SmallUNet`, 8 epochs at 3e-3; run that
script first, it writes the images under OUT/data), trained once per setting; for each it prints the validation
Dice, the share of pool pixels that are shape (truth) and that the model calls shape, the share of pixels above the
0.95 threshold, the share of shape among those and how many of those are right; one JSON line per setting is
appended to OUT/probe_seedS.jsonl.

    python benchmarks/segmentation_fixmatch_probe.py --seed 1 --settings plain fixmatch nocut mild align labelled recalibrated

Settings: `plain` (no unlabelled loss); `fixmatch` (as in the benchmark: photometric RandAugment with cutout);
`nocut` (no cutout); `mild` (brightness, color, contrast and sharpness only, no cutout); `align` (per-pixel
distribution alignment towards uniform); `labelled` (towards the labelled masks' pixel shares); `recalibrated`
(`labelled`, then the BatchNorm statistics re-estimated on the clean pool images).
"""
from __future__ import annotations
import argparse, json, sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from fastai.data.block import DataBlock
from fastai.data.transforms import get_image_files
from fastai.vision.data import ImageBlock, MaskBlock

sys.path.insert(0, str(Path(__file__).parent))
from pseudo_labels import make_learner  # noqa: E402
from fastai_active.split import ActiveSplit  # noqa: E402
from fastai_active.learner import ActiveLearner, SimulatedOracle  # noqa: E402
from fastai_active.scores import entropy  # noqa: E402
from fastai_active.selection import TopScores  # noqa: E402
from fastai_active.fixmatch import FixMatch  # noqa: E402
from fastai_active.augment import ImageWeak, RandAugment  # noqa: E402
from fastai_active.datasets import mask_of  # noqa: E402

PHOTO = ('identity', 'brightness', 'color', 'contrast', 'sharpness')
STRONG = dict(nocut=dict(cutout=0.), mild=dict(cutout=0., ops=PHOTO))
ALIGN = dict(align=True, labelled='labelled', recalibrated='labelled')


def recalibrate_batchnorm(model, batches):
    "BatchNorm running statistics re-estimated (a cumulative mean) from `batches` of clean inputs"
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns: m.reset_running_stats(); m.momentum = None
    model.train()
    with torch.no_grad():
        for b in batches: model(b[0])
    model.eval()


def probe(name, seed, data):
    dblock = DataBlock(blocks=(ImageBlock, MaskBlock(codes=['background', 'shape'])), get_items=get_image_files, get_y=mask_of)
    split = ActiveSplit(dblock, data/'pool'/'images', valid_items=get_image_files(data/'valid'/'images'), min_epoch_items=256, seed=seed)
    split.label_random(10, seed=seed)
    semi = None if name == 'plain' else FixMatch(mu=2, threshold=0.95, align=ALIGN.get(name, False),
                                                 weak=ImageWeak(flip=True, vflip=True),
                                                 strong=RandAugment(geometric=False, **STRONG.get(name, {})))
    al = ActiveLearner(split, make_learner, acquisition=TopScores(entropy, reduce='mean'), oracle=SimulatedOracle.from_split(split),
                       semi=semi, epochs=8, lr=3e-3, bs=16, dl_kwargs=dict(num_workers=0), seed=seed, show_progress=False)
    al.fit()
    pool = split.pool()
    if name == 'recalibrated': recalibrate_batchnorm(al.learn.model, split.pool_dl(al.dls, pool))
    with al.learn.no_bar(): probs, _ = al.learn.get_preds(dl=split.pool_dl(al.dls, pool))
    truth = torch.stack([torch.as_tensor(np.array(Image.open(mask_of(p)))) for p in pool.items()]).long()
    conf, pred = probs.max(1)
    m = conf >= 0.95
    return dict(setting=name, dice=round(float(al.validate()['dice']), 3), shape_true=round(truth.float().mean().item(), 3),
                shape_predicted=round(pred.float().mean().item(), 3), confident=round(m.float().mean().item(), 3),
                shape_among_confident=round(pred[m].float().mean().item(), 3),
                confident_right=round((pred[m] == truth[m]).float().mean().item(), 4))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--seed', type=int, default=1)
    p.add_argument('--settings', nargs='+', default=['plain', 'fixmatch'], choices=['plain', 'fixmatch', 'nocut', 'mild', 'align', 'labelled', 'recalibrated'])
    p.add_argument('--out', default='benchmarks/results/semi_segmentation', help="the pseudo_labels.py folder (its data/)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    for name in args.settings:
        r = probe(name, args.seed, Path(args.out)/'data')
        print(r, flush=True)
        with open(Path(args.out)/f'probe_seed{args.seed}.jsonl', 'a') as f: f.write(json.dumps(r) + '\n')


if __name__ == '__main__': main()
