"""Image-level segmentation scores when the predicted mask is empty: which rule for P(label empty) ranks best?

Generated shapes (`make_shapes`, 32 x 32) with empty images (background only, all-zero masks) and faint images
(shapes at contrast 0.08 instead of 0.35, under pixel noise 0.15): a training set of 160 images (10 % empty, 10 %
faint; a third of it held out for validation) and a scoring pool of 300 images (1/6 empty, 1/5 faint). Three
`SmallUNet(width=8)`s, 25 epochs of one-cycle at lr 5e-3 (`train_ensemble`); member 0 gives the single pass and MC
dropout (K = 20), the three together the ensemble.

An empty predicted mask has IoU 1 with an empty label and 0 with any other, so its expected IoU is P(label empty),
which the pixel-wise posterior does not fix. Each rule of `expected_iou_loss(..., empty=)` (and of
`mask_disagreement`) is scored on the same log-probs: 'nested', 'independent', 'samples' (K > 1), a correlation
area fitted on the validation images (`fit_empty_area`), fixed areas, and "always wrong" (an empty prediction scores
1.0, the rule of the first version). Per rule: Spearman with the IoU of the predicted mask over all pool images and
over the non-empty predictions, the percentile of the complete misses (object there, nothing predicted) and of the
correct empty masks among all scores, and their mean scores.

    python -m benchmarks.empty_masks --seeds 0 1 2 --threads 1 --out benchmarks/results/empty_masks_rules

`--cache DIR` keeps each seed's log-probs (`DIR/<setting>-seed<N>.pt`), so the rules can be scored again without
training. Once the four settings are written, `--choose benchmarks/results/empty_masks_rules` picks the default rule
from 'mixed' and 'short' (seeds 0-2) and counts the same goals on the held-out seeds (`choice.md`).
"""
from __future__ import annotations
import argparse, math, os, platform, tempfile, time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from scipy import stats

from benchmarks.label_efficiency import markdown_table

POOL, POOL_EMPTY, POOL_FAINT = 300, 1 / 6, 0.2
TRAIN = 160
AREAS = (16, 64, 96, 128, 160, 192, 224, 256, 384, 512)  # the fixed correlation areas compared (pixels)
CONFIDENT = 0.25  # a correct empty mask is "confident" when no pixel's predictive foreground probability reaches this


def posteriors(seed:int, epochs:int, train_empty:float, train_faint:float)->dict:
    "Train the three U-Nets of `seed`; the log-probs of the pool and of the validation images, their masks and kinds"
    from fastai.vision.all import (DataBlock, ImageBlock, MaskBlock, RandomSplitter, get_image_files, Learner,
                                   CrossEntropyLossFlat, ProgressCallback)
    from fastai_active.core import seeded
    from fastai_active.datasets import shapes_folder, shape_kinds, mask_of
    from fastai_active.models import SmallUNet
    from fastai_active.uncertainty.core import SinglePass, DeepEnsemble, train_ensemble
    from fastai_active.uncertainty.mc_dropout import MCDropout
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shapes_folder(root/'train', n=TRAIN, seed=seed, empty_frac=train_empty, faint_frac=train_faint)
        shapes_folder(root/'pool', n=POOL, seed=seed + 1, empty_frac=POOL_EMPTY, faint_frac=POOL_FAINT)
        dblock = DataBlock(blocks=(ImageBlock, MaskBlock(codes=['background', 'shape'])), get_items=get_image_files,
                           get_y=mask_of, splitter=RandomSplitter(1/3, seed=seed))
        with seeded(seed): dls = dblock.dataloaders(root/'train'/'images', bs=16, num_workers=0)
        sets = {'pool': sorted(get_image_files(root/'pool'/'images')), 'valid': list(dls.valid_ds.items)}
        def make(dls): return Learner(dls, SmallUNet(n_classes=2, c_in=3, width=8, p=0.2), loss_func=CrossEntropyLossFlat(axis=1))
        def fit(learn):
            with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(epochs, 5e-3)
        members = train_ensemble(make, dls, n_members=3, fit=fit, seed=seed)
        for m in members: m.remove_cb(ProgressCallback)
        out = dict(kinds=shape_kinds(POOL, seed + 1, POOL_EMPTY, POOL_FAINT))
        for where, items in sets.items():
            dl = dls.test_dl(items)
            out[where] = {'single pass': SinglePass()([members[0]], dl),
                          'MC dropout': MCDropout(20, seed=seed)([members[0]], dl),
                          'ensemble': DeepEnsemble(3)(members, dl)}
            out[f'{where}_targs'] = torch.stack([torch.from_numpy(np.array(Image.open(mask_of(f)))) for f in items]).long()
    return out


def percentile(values:np.ndarray, sel:np.ndarray)->np.ndarray:
    "Percentile (0-100) of `values[sel]` among all `values`, ties counted half"
    v = values[sel][:, None]
    return 100 * ((values[None] < v).mean(1) + 0.5 * (values[None] == v).mean(1))


def rules_for(lp_valid, targs_valid, K:int)->dict:
    "The `empty=` values to compare, by name: the library's rules, fixed areas, and an area fitted on the validation images"
    from fastai_active.acquisition.scores import fit_empty_area
    rules = {'nested': 'nested', 'independent': 'independent'}
    if K > 1: rules['samples'] = 'samples'
    for a in AREAS: rules[f"area {a}"] = float(a)
    if (targs_valid.flatten(1) == 0).all(1).any():   # the fit needs empty labels among the validation images
        rules['fitted area'] = fit_empty_area(lp_valid, targs_valid)
    return rules


def evaluate(post:dict, seed:int, setting:str)->pd.DataFrame:
    from fastai_active.acquisition.scores import expected_iou_loss, mask_disagreement
    from fastai_active.interpret.metrics import iou
    targs, kinds = post['pool_targs'], post['kinds']
    truth_empty = (targs.flatten(1).sum(1) == 0).numpy()
    rows = []
    for name, lp in post['pool'].items():
        pred = lp.exp().mean(1).argmax(1)
        pred_empty = (pred.flatten(1).sum(1) == 0).numpy()
        iou_N = iou(pred == 1, targs == 1).numpy()
        max_fg = (1 - lp.double().exp().mean(1)[:, 0]).flatten(1).amax(1).numpy()
        groups = {'correct empty': truth_empty & pred_empty, 'confident correct empty': truth_empty & pred_empty & (max_fg < CONFIDENT),
                  'complete miss': ~truth_empty & pred_empty & (iou_N == 0)}
        rules = rules_for(post['valid'][name], post['valid_targs'], lp.shape[1])
        scores = {'expected_iou_loss': expected_iou_loss}
        if lp.shape[1] > 1: scores['mask_disagreement'] = mask_disagreement
        for score_name, fn in scores.items():
            variants = {r: fn(lp, empty=e).double().numpy() for r, e in rules.items()}
            variants['always wrong (1.0)'] = np.where(pred_empty, 1.0, variants['nested'])
            for rule, v in variants.items():
                row = dict(setting=setting, seed=seed, posterior=name, score=score_name, rule=rule,
                           area=rules[rule] if isinstance(rules.get(rule), float) else math.nan,
                           n=len(v), n_pred_empty=int(pred_empty.sum()))
                row['spearman all'] = float(stats.spearmanr(v, iou_N).statistic)
                row['spearman non-empty pred'] = float(stats.spearmanr(v[~pred_empty], iou_N[~pred_empty]).statistic)
                for g, sel in groups.items():
                    row[f'{g} n'] = int(sel.sum())
                    pct = percentile(v, sel)
                    row[f'{g} mean score'] = float(v[sel].mean()) if sel.any() else math.nan
                    row[f'{g} median pct'] = float(np.median(pct)) if sel.any() else math.nan
                    row[f'{g} share above median' if g == 'complete miss' else f'{g} share below median'] = (
                        float(((pct > 50) if g == 'complete miss' else (pct < 50)).mean()) if sel.any() else math.nan)
                faint = kinds == 'faint'
                row['faint median pct'] = float(np.median(percentile(v, faint)))
                rows.append(row)
    return pd.DataFrame(rows)


SEPARATORS = {'largest foreground probability': lambda fg: fg.flatten(1).amax(1),
              'sum of foreground probabilities': lambda fg: fg.flatten(1).sum(1),
              'mean of the 10 largest': lambda fg: fg.flatten(1).topk(10, 1).values.mean(1),
              'largest 5 x 5 mean (spatially pooled)': lambda fg: torch.nn.functional.avg_pool2d(
                  fg[:, None], 5, 1, 2, count_include_pad=False).flatten(1).amax(1)}

def separability(post:dict, seed:int, setting:str)->pd.DataFrame:
    "AUROC of statistics of the predictive foreground probabilities for 'complete miss' against 'correct empty', among the empty predictions"
    from sklearn.metrics import roc_auc_score
    from fastai_active.interpret.metrics import iou
    targs = post['pool_targs']
    truth_empty = (targs.flatten(1).sum(1) == 0).numpy()
    rows = []
    for name, lp in post['pool'].items():
        p = lp.double().exp().mean(1)
        pred = p.argmax(1)
        pred_empty = (pred.flatten(1).sum(1) == 0).numpy()
        miss = ~truth_empty & pred_empty & (iou(pred == 1, targs == 1).numpy() == 0)
        sel = pred_empty & (miss | truth_empty)
        row = dict(setting=setting, seed=seed, posterior=name, misses=int(miss.sum()), correct_empty=int((sel & truth_empty).sum()))
        for k, f in SEPARATORS.items():
            v = f(1 - p[:, 0]).numpy()
            row[k] = float(roc_auc_score(miss[sel], v[sel])) if 0 < miss[sel].sum() < sel.sum() else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def machine()->str:
    cpu = next((l.split(':', 1)[1].strip() for l in Path('/proc/cpuinfo').read_text().splitlines()
                if l.startswith('model name')), platform.processor()) if Path('/proc/cpuinfo').exists() else platform.processor()
    return f"{cpu}, {os.cpu_count()} cores, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"


def summary(df:pd.DataFrame)->pd.DataFrame:
    "Mean over seeds per (posterior, score, rule), and the seeds on which each goal is met"
    g = df.groupby(['setting', 'posterior', 'score', 'rule'], sort=False)
    out = g[['spearman all', 'spearman non-empty pred', 'complete miss median pct', 'correct empty median pct',
             'confident correct empty median pct', 'complete miss mean score', 'correct empty mean score']].mean()
    out['seeds: misses above median'] = g['complete miss median pct'].apply(lambda s: int((s > 50).sum()))
    out['seeds: confident empties below median'] = g['confident correct empty median pct'].apply(lambda s: int((s < 50).sum()))
    return out.reset_index()


OLD_RULE = 'always wrong (1.0)'   # the rule of the first version, "the old rule" of the goal
CHOOSE, CONFIRM = ('mixed', 'short'), ('mixed_heldout', 'short_heldout')

def goals_met(scores:pd.DataFrame)->pd.DataFrame:
    "Per single-pass rule of `expected_iou_loss`: on how many runs (setting, seed) each goal is met, and the mean Spearman"
    d = scores[(scores.posterior == 'single pass') & (scores.score == 'expected_iou_loss')]
    old = d[d.rule == OLD_RULE].set_index(['setting', 'seed'])['spearman all']
    d = d[d.rule != OLD_RULE].join(old.rename('old spearman'), on=['setting', 'seed'])
    miss, conf = d['complete miss median pct'], d['confident correct empty median pct']
    d = d.assign(miss_n=miss.notna(), miss_met=miss > 50, conf_n=conf.notna(), conf_met=conf < 50,
                 sp_met=d['spearman all'] <= d['old spearman'])
    g = d.groupby('rule', sort=False)
    out = pd.DataFrame({'misses above median': g.miss_met.sum().astype(int).astype(str) + '/' + g.miss_n.sum().astype(int).astype(str),
                        'confident empties below median': g.conf_met.sum().astype(int).astype(str) + '/' + g.conf_n.sum().astype(int).astype(str),
                        'spearman at least the old rule': g.sp_met.sum().astype(int).astype(str) + '/' + g.size().astype(str),
                        'goals met': g.miss_met.sum() + g.conf_met.sum() + g.sp_met.sum(),
                        'goals': g.miss_n.sum() + g.conf_n.sum() + g.size(),
                        'mean spearman': g['spearman all'].mean()})
    return out

def choose(root:Path)->str:
    "Pick the default rule on the runs of `CHOOSE` (most goals met, then the strongest mean Spearman); report it on `CONFIRM` too"
    read = lambda names: pd.concat([pd.read_csv(root/n/'scores.csv') for n in names], ignore_index=True)
    chosen, confirmed = goals_met(read(CHOOSE)), goals_met(read(CONFIRM))
    best = chosen.sort_values(['goals met', 'mean spearman'], ascending=[False, True]).index[0]
    table = chosen.join(confirmed.add_suffix(' (held-out seeds)')).reset_index()
    text = (f"# The default rule for an empty prediction, chosen\n\n"
            f"Single-pass `expected_iou_loss`, every rule but the old one ({OLD_RULE!r}). Runs: each seed of each setting. "
            f"Chosen on {', '.join(CHOOSE)} (most goals met over the runs, ties broken by the strongest mean Spearman "
            f"over all images), then the same counts on the seeds not looked at ({', '.join(CONFIRM)}).\n\n"
            f"**Chosen: {best}.**\n\n" + markdown_table(table, 3) + "\n")
    table.to_csv(root/'choice.csv', index=False)
    (root/'choice.md').write_text(text)
    return text


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--choose', default=None, help="results folder holding mixed/, short/, mixed_heldout/, short_heldout/: "
                   "pick the default rule from them (writes choice.md and choice.csv there) and stop")
    p.add_argument('--seeds', type=int, nargs='+', default=[0])
    p.add_argument('--epochs', type=int, default=25)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--train-empty', type=float, default=0.1, help='share of empty training images')
    p.add_argument('--train-faint', type=float, default=0.1, help='share of faint training images')
    p.add_argument('--setting', default='mixed', help='name of this training setting in the results')
    p.add_argument('--cache', default=None, help='folder for the log-probs of each seed (read if there, else written)')
    p.add_argument('--train-only', action='store_true', help='only train and fill --cache')
    p.add_argument('--out', default=None)
    args = p.parse_args(argv)
    if args.choose: return print(choose(Path(args.choose)))
    torch.set_num_threads(args.threads)
    start, machine_start = time.perf_counter(), machine()
    frames, seps, times = [], [], {}
    for seed in args.seeds:
        t0 = time.perf_counter()
        cached = Path(args.cache)/f'{args.setting}-seed{seed}.pt' if args.cache else None
        if cached is not None and cached.exists(): post = torch.load(cached, weights_only=False)
        else:
            post = posteriors(seed, args.epochs, args.train_empty, args.train_faint)
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                torch.save(post, cached)
        times[seed] = time.perf_counter() - t0
        print(f"seed {seed}: posteriors in {times[seed]:.0f} s", flush=True)
        if not args.train_only:
            frames.append(evaluate(post, seed, args.setting))
            seps.append(separability(post, seed, args.setting))
    if args.train_only: return
    df, sep = pd.concat(frames, ignore_index=True), pd.concat(seps, ignore_index=True)
    summ = summary(df)
    text = (f"# Empty predicted masks: rules for P(label empty)\n\n"
            f"Pool of {POOL} generated shapes per seed ({POOL_EMPTY:.0%} empty, {POOL_FAINT:.0%} faint), seeds "
            f"{', '.join(map(str, args.seeds))}; setting '{args.setting}': training set of {TRAIN} with "
            f"{args.train_empty:.0%} empty and {args.train_faint:.0%} faint images, {args.epochs} epochs; torch threads "
            f"{args.threads}. Machine: "
            f"{machine_start} at the start, {machine()} at the end; {time.perf_counter() - start:.0f} s in all "
            f"(posteriors per seed: {', '.join(f'{s}: {t:.0f} s' for s, t in times.items())}; a cached seed is read, "
            f"not trained).\n\n"
            f"Confident correct empty: nothing there, nothing predicted, no pixel at {CONFIDENT} foreground or more. "
            "pct: percentile among all pool scores (higher = more uncertain, ranked earlier for labelling). "
            "Goals: complete misses above the median (pct > 50), confident correct empty masks below it (pct < 50), "
            "Spearman over all images at least as strong (negative) as with the old rule (every empty mask scored 1.0, "
            "'always wrong (1.0)').\n\n"
            "## Mean over seeds\n\n" + markdown_table(summ, 3) + "\n\n## Per seed\n\n" + markdown_table(df, 3) + "\n\n"
            "## Can the model's own probabilities tell a miss from a correct empty mask?\n\n"
            "AUROC for 'complete miss' against 'correct empty' among the empty predictions, by statistics of the "
            "predictive foreground probabilities (0.5 = chance; a rule for P(label empty) is a function of such "
            "statistics):\n\n" + markdown_table(sep, 3) + "\n")
    print(text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        df.to_csv(out/'scores.csv', index=False)
        summ.to_csv(out/'summary.csv', index=False)
        sep.to_csv(out/'separability.csv', index=False)
        (out/'report.md').write_text(text)


if __name__ == '__main__': main()
