"""Class-balanced batches on an imbalanced pool: does spreading picks over predicted classes help?

    python -m benchmarks.class_balance --seeds 0 1 2 --budget 100 --out benchmarks/results/class_balance

The pool is scikit-learn's digits with classes 5-9 cut to 10% of their items (a seeded cut; classes 0-4 kept whole),
the test set the balanced 600 digits of `label_efficiency.py`. Each (strategy, seed) starts from the same 20 random
pool labels (so mostly classes 0-4), acquires 10 a round with one deterministic pass (`SinglePass`), and trains the
demo's digits CNN with the same recipe. Printed and written (JSON, Markdown): per strategy, the test accuracy at the
end and its mean over rounds (median and range over seeds), and the share of minority-class labels acquired.
"""
from __future__ import annotations
import argparse, json, time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from fastai.data.block import DataBlock, TransformBlock, CategoryBlock

from benchmarks.label_efficiency import load_dataset, ArrayX, ArrayY   # the same data and item readers
from fastai_active.data.split import ActiveSplit
from fastai_active.demo import digits_learner
from fastai_active.loop.learner import ActiveLearner, SimulatedOracle
from fastai_active.acquisition.strategies import ClassBalanced
from fastai_active.acquisition.strategies import as_acquisition
from fastai_active.uncertainty.core import SinglePass

MINORITY = [5, 6, 7, 8, 9]
STRATEGIES = {'random': 'random', 'entropy': 'entropy', 'balanced-entropy': ClassBalanced('entropy'),
              'powerentropy': 'powerentropy', 'balanced-powerentropy': ClassBalanced('powerentropy')}


def imbalanced_digits(keep=0.1, seed=0):
    (X, y), (Xt, yt), size = load_dataset('digits')
    rng = np.random.default_rng(seed)
    keep_mask = ~np.isin(y, MINORITY) | (rng.random(len(y)) < keep)
    return (X[keep_mask], y[keep_mask]), (Xt, yt)


def run_one(strategy, seed, args):
    (X, y), (Xt, yt) = imbalanced_digits(args.keep, seed)
    vocab = [str(i) for i in range(10)]
    allX, ally = np.concatenate([X, Xt]), np.concatenate([y, yt])
    dblock = DataBlock(blocks=(TransformBlock, CategoryBlock(vocab=vocab)), get_x=ArrayX(allX), get_y=ArrayY(ally))
    split = ActiveSplit(dblock, list(range(len(X))), vocab=vocab, valid_items=list(range(len(X), len(allX))),
                        min_epoch_items=512, seed=seed)
    split.label_random(args.initial, seed=seed)
    al = ActiveLearner(split, digits_learner, acquisition=STRATEGIES[strategy], sampler=SinglePass(),
                       oracle=SimulatedOracle.from_split(split), epochs=args.epochs, lr=1e-2,
                       dl_kwargs=dict(num_workers=0), seed=seed, show_progress=False)
    h = al.loop(budget=args.budget, n_per_round=args.per_round)
    acquired = split.ledger.to_df().query('round > 0').label
    minority = float(acquired.isin([str(c) for c in MINORITY]).mean())
    return dict(strategy=strategy, seed=seed, final_accuracy=float(h.accuracy.iloc[-1]),
                mean_accuracy=float(h.accuracy.mean()), minority_share=minority,
                s_per_round=float((h.fit_s + h.score_s.fillna(0) + h.acquire_s.fillna(0)).mean()),
                pool=len(X), pool_minority=float(np.isin(y, MINORITY).mean()))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--strategies', nargs='+', default=list(STRATEGIES))
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--keep', type=float, default=0.1, help="share of the minority classes' items kept in the pool")
    p.add_argument('--initial', type=int, default=20)
    p.add_argument('--per-round', type=int, default=10)
    p.add_argument('--budget', type=int, default=100)
    p.add_argument('--epochs', type=int, default=10)
    p.add_argument('--out', required=True)
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    rows = []
    for seed in args.seeds:
        for s in args.strategies:
            start = time.perf_counter()
            rows.append(run_one(s, seed, args))
            print(f"{s} seed {seed}: {rows[-1]} ({time.perf_counter() - start:.0f} s)", flush=True)
    df = pd.DataFrame(rows)
    (out/'runs.json').write_text(df.to_json(orient='records', indent=1))
    summary = df.groupby('strategy', sort=False).agg(
        final_median=('final_accuracy', 'median'), final_min=('final_accuracy', 'min'), final_max=('final_accuracy', 'max'),
        mean_acc_median=('mean_accuracy', 'median'), minority_share=('minority_share', 'mean'),
        s_per_round=('s_per_round', 'median'), seeds=('seed', 'count')).round(3)
    md = summary.to_string()   # plain text: no `tabulate` dependency
    (out/'summary.md').write_text(f"pool {rows[0]['pool']} items, {rows[0]['pool_minority']:.1%} of classes 5-9; "
                                  f"{vars(args)}\n\n{md}\n")
    print(md)


if __name__ == '__main__': main()
