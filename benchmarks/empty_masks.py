"""Image-level segmentation scores on images that contain nothing: do correct empty masks score low?

Generated shapes (`make_shapes`, 32 x 32): a training set with 10 % empty images (the texture without a shape), a
scoring pool of 300 images of which about 1/6 are empty, and 80 low-contrast images (contrast 0.1) whose objects the
model often misses. Three `SmallUNet(width=8)`s, 25 epochs of one-cycle at lr 5e-3 (`train_ensemble`); member 0 gives
the single pass and MC dropout (K = 20, consistent masks), the three together the ensemble. For each score the table
gives its mean on the correct empty masks (nothing there, nothing predicted), on the missed objects (something there,
nothing predicted), and on the non-empty predictions, and its Spearman correlation with the IoU of the predicted mask
over the whole pool. The rows "before" recompute the definitions used before for an empty predicted mask
(`expected_iou_loss`: `1 - mean_k prod_i p_k,i(background)`; `mask_disagreement`: the share of samples whose argmax
mask is not empty), for comparison.

    python benchmarks/empty_masks.py --out benchmarks/results/empty_masks
"""
from __future__ import annotations
import argparse, sys, tempfile, time, warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from scipy import stats
from fastai.vision.all import (DataBlock, ImageBlock, MaskBlock, RandomSplitter, get_image_files, Learner,
                               CrossEntropyLossFlat, ProgressCallback)

sys.path.insert(0, str(Path(__file__).parent))
from label_efficiency import markdown_table
from fastai_active.core import seeded
from fastai_active.datasets import make_shapes, mask_of
from fastai_active.models import SmallUNet
from fastai_active.metrics import iou
from fastai_active.scores import expected_iou_loss, mask_disagreement
from fastai_active.uncertainty import SinglePass, DeepEnsemble, train_ensemble
from fastai_active.mc_dropout import MCDropout


def write_set(path:Path, n:int, seed:int, empty_frac:float, **kwargs):
    "`n` shapes images and masks; a share `empty_frac` replaced by shapeless images (contrast 0) with empty masks"
    images, masks = make_shapes(n, seed=seed, **kwargs)
    blank, _ = make_shapes(n, seed=seed + 100, contrast=0.0)
    empty = np.random.default_rng(seed).random(n) < empty_frac
    (path/'images').mkdir(parents=True)
    (path/'masks').mkdir()
    for i in range(n):
        img, m = (blank[i], np.zeros_like(masks[i])) if empty[i] else (images[i], masks[i])
        Image.fromarray(img).save(path/'images'/f'{i:04d}.png')
        Image.fromarray(m).save(path/'masks'/f'{i:04d}.png')


def rule_before(score_name, lp, score_now):
    "The definitions used before, for an empty predicted mask (other images are unchanged)"
    p = lp.double().exp()
    empty = p.mean(1).argmax(1).flatten(1).amax(1) == 0
    if score_name == 'expected_iou_loss': before = 1 - p[:, :, 0].flatten(2).log().sum(-1).exp().mean(1)  # product rule
    else: before = (p.argmax(2).flatten(2).amax(-1) > 0).double().mean(1)  # hard: the share of samples with any foreground
    return torch.where(empty, before, score_now.double())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--epochs', type=int, default=25)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--out', required=True)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_set(root/'train', 160, args.seed, 0.1)
        write_set(root/'pool', 300, args.seed + 1, 1 / 6)
        write_set(root/'low', 80, args.seed + 7, 0.0, contrast=0.1)
        dblock = DataBlock(blocks=(ImageBlock, MaskBlock(codes=['background', 'shape'])), get_items=get_image_files,
                           get_y=mask_of, splitter=RandomSplitter(1/3, seed=args.seed))
        with seeded(args.seed): dls = dblock.dataloaders(root/'train'/'images', bs=16, num_workers=0)
        items = sorted(get_image_files(root/'pool'/'images')) + sorted(get_image_files(root/'low'/'images'))
        pool_dl = dls.test_dl(items)
        targs = torch.stack([torch.from_numpy(np.array(Image.open(mask_of(f)))) for f in items]).long()
        def make(dls): return Learner(dls, SmallUNet(n_classes=2, c_in=3, width=8, p=0.2), loss_func=CrossEntropyLossFlat(axis=1))
        def fit(learn):
            with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(args.epochs, 5e-3)
        members = train_ensemble(make, dls, n_members=3, fit=fit, seed=args.seed)
        for m in members: m.remove_cb(ProgressCallback)
        posteriors = {'single pass': SinglePass()([members[0]], pool_dl),
                      'MC dropout': MCDropout(20, seed=args.seed)([members[0]], pool_dl),
                      'ensemble': DeepEnsemble(3)(members, pool_dl)}
    truth_empty = targs.flatten(1).sum(1) == 0
    rows = []
    for name, lp in posteriors.items():
        pred = lp.exp().mean(1).argmax(1)
        pred_empty = pred.flatten(1).sum(1) == 0
        iou_N = iou(pred == 1, targs == 1).numpy()
        groups = {'correct empty': truth_empty & pred_empty, 'missed object': ~truth_empty & pred_empty,
                  'non-empty prediction': ~pred_empty}
        scores = {'expected_iou_loss': expected_iou_loss(lp)}
        if lp.shape[1] > 1: scores['mask_disagreement'] = mask_disagreement(lp)
        for score_name, s in list(scores.items()):
            for rule, values in (('now', s), ('before', rule_before(score_name, lp, s))):
                v = values.double().numpy()
                row = dict(posterior=name, score=score_name, rule=rule)
                for g, sel in groups.items():
                    row[f'{g} (n)'] = int(sel.sum())
                    row[f'{g}: mean'] = float(v[sel.numpy()].mean()) if sel.any() else float('nan')
                row['spearman with IoU'] = float(stats.spearmanr(v, iou_N).statistic)
                rows.append(row)
    df = pd.DataFrame(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out/'scores.csv', index=False)
    text = (f"Empty masks: {int(truth_empty.sum())} of {len(targs)} pool images contain nothing; seed {args.seed}, "
            f"{time.perf_counter() - start:.0f} s\n\n" + markdown_table(df, 3) + "\n")
    (out/'report.md').write_text(text)
    print(text)


if __name__ == '__main__': main()
