"""Do pseudo-labels help? Active learning on generated segmentation data with and without them, same seeds.

    python -m benchmarks.pseudo_labels --seeds 0 1 2 --rounds 5 --out benchmarks/results/pseudo_segmentation
    python -m benchmarks.pseudo_labels --seeds 0 1 2 --rounds 5 --settings plain pseudo-labels fixmatch \
        --out benchmarks/results/semi_segmentation

`--settings` picks the loops to run per seed: `plain`, `pseudo-labels` (`PseudoLabeller(threshold)`) and `fixmatch`
(per-pixel consistency training in every round: `FixMatch(mu, semi_threshold)` with flips and shifts as the weak
view and a photometric `RandAugment` as the strong one). Each loop keeps its ledger under OUT/runs/, so a killed
run continues where it stopped.

Each seed runs the same loop twice (mean pixel entropy acquisition, a small U-Net with dropout retrained from
scratch each round), once plain and once with `PseudoLabeller(threshold)`: confident pool images are trained on
with their predicted masks. Prints a table of validation Dice by number of labels and writes curves and results.
"""
from __future__ import annotations
import argparse, json, time
from pathlib import Path

import pandas as pd
import torch
from fastai.data.block import DataBlock
from fastai.data.transforms import get_image_files
from fastai.vision.data import ImageBlock, MaskBlock
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat
from fastai.metrics import Dice

from fastai_active.acquisition.scores import entropy
from fastai_active.acquisition.selection import TopScores
from fastai_active.data.split import ActiveSplit
from fastai_active.datasets import shapes_folder, mask_of
from fastai_active.loop.learner import ActiveLearner, SimulatedOracle, PseudoLabeller
from fastai_active.loop.curves import plot_learning_curves
from fastai_active.semi.fixmatch import FixMatch
from fastai_active.semi.augment import ImageWeak, RandAugment
from fastai_active.models import SmallUNet


def make_learner(dls):
    return Learner(dls, SmallUNet(n_classes=2, width=16), loss_func=CrossEntropyLossFlat(axis=1), metrics=Dice())


def segmentation_fixmatch(mu:int=2, threshold:float=0.95, align=False, **strong)->FixMatch:
    "Per-pixel FixMatch: flips and shifts as the weak view, a photometric RandAugment (`strong`: its options) as the strong one"
    return FixMatch(mu=mu, threshold=threshold, align=align, weak=ImageWeak(flip=True, vflip=True),
                    strong=RandAugment(geometric=False, **strong))


def segmentation_loop(data:Path, seed:int, ledger:Path|None=None, n_initial:int=10, epochs:int=8, pseudo=None, semi=None):
    "The benchmark's loop on the shapes under `data` (pool/ and valid/): its split, first labels, U-Net and recipe"
    dblock = DataBlock(blocks=(ImageBlock, MaskBlock(codes=['background', 'shape'])), get_items=get_image_files, get_y=mask_of)
    split = ActiveSplit(dblock, data/'pool'/'images', path=ledger, valid_items=get_image_files(data/'valid'/'images'),
                        min_epoch_items=256, seed=seed)
    if split.ledger.n_labelled == 0: split.label_random(n_initial, seed=seed)
    return ActiveLearner(split, make_learner, acquisition=TopScores(entropy, reduce='mean'),
                         oracle=SimulatedOracle.from_split(split), pseudo=pseudo, semi=semi, epochs=epochs, lr=3e-3,
                         bs=16, dl_kwargs=dict(num_workers=0), seed=seed, show_progress=False)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--initial', type=int, default=10)
    p.add_argument('--per-round', type=int, default=10)
    p.add_argument('--pool', type=int, default=300)
    p.add_argument('--threshold', type=float, default=0.97)
    p.add_argument('--epochs', type=int, default=8)
    p.add_argument('--settings', nargs='+', default=['plain', 'pseudo-labels'], choices=['plain', 'pseudo-labels', 'fixmatch'])
    p.add_argument('--mu', type=int, default=2, help="fixmatch: unlabelled images per labelled one")
    p.add_argument('--semi-threshold', type=float, default=0.95, help="fixmatch: confidence a pixel's pseudo-label needs")
    p.add_argument('--threads', type=int, default=torch.get_num_threads())
    p.add_argument('--out', default='benchmarks/results/pseudo_segmentation')
    args = p.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    out = Path(args.out)
    data = Path(out/'data')
    shapes_folder(data/'pool', n=args.pool, size=32, seed=0)
    shapes_folder(data/'valid', n=100, size=32, seed=1)
    rows, curves = [], {}
    for seed in args.seeds:
        for name in args.settings:
            pseudo = PseudoLabeller(args.threshold) if name == 'pseudo-labels' else None
            semi = segmentation_fixmatch(args.mu, args.semi_threshold) if name == 'fixmatch' else None
            start = time.perf_counter()
            al = segmentation_loop(data, seed, out/'runs'/f'{name}-seed{seed}.db', args.initial, args.epochs, pseudo, semi)
            h = al.loop(rounds=args.rounds, n_per_round=args.per_round).assign(setting=name, seed=seed)
            curves.setdefault(name, []).append(h)
            rows.append(h)
            print(f"{name:>13} seed {seed}: dice {h.dice.iloc[0]:.3f} -> {h.dice.iloc[-1]:.3f} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    df = pd.concat(rows, ignore_index=True)
    df.to_csv(out/'results.csv', index=False)
    table = df.pivot_table(index='n_labelled', columns='setting', values='dice', aggfunc='median')
    per_seed = df.groupby(['setting', 'seed']).dice.mean().unstack('setting')
    gains = {s: (per_seed[s] - per_seed['plain']).round(4).to_dict() for s in per_seed.columns if s != 'plain' and 'plain' in per_seed}
    ax = plot_learning_curves(curves, metric='dice', title='shapes segmentation: validation Dice (median, quartiles)')
    ax.figure.savefig(out/'learning_curves.png', dpi=110, bbox_inches='tight')
    fit_s = df.groupby('setting').fit_s.median().round(1).to_dict()
    summary = dict(median_dice_by_labels=table.round(4).to_dict(), mean_dice_gain_vs_plain_per_seed=gains,
                   median_fit_s=fit_s, pseudo_accuracy_note="pixel agreement of pseudo-labelled masks with the true masks")
    if 'pseudo-labels' in args.settings: summary['n_pseudo_median'] = float(df[df.setting == 'pseudo-labels'].n_pseudo.median())
    if 'fixmatch' in args.settings: summary['n_confident_median'] = float(df[df.setting == 'fixmatch'].n_confident.median())
    (out/'summary.json').write_text(json.dumps(summary, indent=1))
    print(table.round(4).to_string())
    print("mean Dice over rounds minus plain, per seed:", gains)
    print("median seconds of training per round:", fit_s)


if __name__ == '__main__': main()
