"""Why per-pixel FixMatch hurts the generated-shapes segmentation benchmark: one first-round fit per setting, and
what the trained model predicts on the pool.

The first round of `pseudo_labels.py` (10 labelled images of its pool, `SmallUNet`, 8 epochs at 3e-3; run that
script first, it writes the images under OUT/data), trained once per setting; for each it prints the validation
Dice, the share of pool pixels that are shape (truth) and that the model calls shape, the share of pixels above the
0.95 threshold, the share of shape among those and how many of those are right; one JSON line per setting is
appended to OUT/probe_seedS.jsonl.

    python -m benchmarks.segmentation_fixmatch_probe --seed 1 --settings plain fixmatch nocut mild align labelled recalibrated

Settings: `plain` (no unlabelled loss); `fixmatch` (as in the benchmark: photometric RandAugment with cutout);
`nocut` (no cutout); `mild` (brightness, color, contrast and sharpness only, no cutout); `align` (per-pixel
distribution alignment towards uniform); `labelled` (towards the labelled masks' pixel shares); `recalibrated`
(`labelled`, then the BatchNorm statistics re-estimated on the clean pool images).
"""
from __future__ import annotations
import argparse, json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.pseudo_labels import segmentation_loop, segmentation_fixmatch
from fastai_active.datasets import mask_of

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
    semi = None if name == 'plain' else segmentation_fixmatch(align=ALIGN.get(name, False), **STRONG.get(name, {}))
    al = segmentation_loop(data, seed, semi=semi)   # a ledger in memory: the benchmark's first round
    split = al.split
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
