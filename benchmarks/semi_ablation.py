"""Which FixMatch settings matter on digits with 20 labels: one fit per setting and seed, test accuracy.

The first round of the digits protocol of `semi_supervised.py` (20 balanced labels, the demo CNN from scratch, Adam
with one-cycle at 1e-2, 10 epochs), trained once with `FixMatch` under the settings given, on the `ArraySplit` path.
Each call appends one line per seed to OUT/ablation.jsonl; `--report` prints the table of every setting run so far.

    python -m benchmarks.semi_ablation --seeds 0 1 --tag base                       # mu 2, threshold 0.95, 1,000 steps
    python -m benchmarks.semi_ablation --seeds 0 1 --mu 7 --align --tag mu7_align
    python -m benchmarks.semi_ablation --report

`--ema DECAY` evaluates an exponential moving average of the weights (FixMatch's evaluation model), kept here as a
benchmark-only callback: it did not help on digits (see benchmarks/README.md), so the library does not ship it.
"""
from __future__ import annotations
import argparse, json, time
from pathlib import Path

import pandas as pd
import torch
from fastai.callback.core import Callback

from benchmarks.label_efficiency import make_split, markdown_table
from fastai_active.demo import digits_learner  # noqa: E402
from fastai_active.loop.learner import ActiveLearner, SkipValidation  # noqa: E402
from fastai_active.semi.fixmatch import FixMatch  # noqa: E402
from fastai_active.uncertainty.core import SinglePass  # noqa: E402


class WeightAverage(Callback):
    "An exponential moving average of the weights after each step (decay warmed up as (1 + n) / (10 + n)), loaded at the end of fit"
    order = 90
    def __init__(self, decay:float): self.decay, self.avg = decay, None
    def after_step(self):
        sd = self.learn.model.state_dict()
        if self.avg is None: self.avg, self.n = {k: v.detach().clone() for k, v in sd.items()}, 0
        self.n += 1
        d = min(self.decay, (1 + self.n) / (10 + self.n))
        with torch.no_grad():
            for k, v in sd.items():
                if v.is_floating_point(): self.avg[k].mul_(d).add_(v.detach(), alpha=1 - d)
                else: self.avg[k].copy_(v)
    def after_fit(self):
        if self.avg is not None and self.epoch >= self.n_epoch - 1:
            self.learn.model.load_state_dict(self.avg)
            self.avg = None


def one_fit(a, seed:int)->dict:
    start = time.perf_counter()
    split, _, _ = make_split('digits', None, None, seed, 20, a.items)   # a ledger in memory
    def fit(learn):
        cbs = [SkipValidation()] + ([WeightAverage(a.ema)] if a.ema else [])
        if a.sched == 'cos': learn.fit_flat_cos(a.epochs, a.lr, pct_start=0., cbs=cbs)
        else: learn.fit_one_cycle(a.epochs, a.lr, cbs=cbs)
    semi = FixMatch(mu=a.mu, threshold=a.thr, flex=a.flex, align=a.align, lambda_u=a.lam)
    al = ActiveLearner(split, digits_learner, fit=fit, acquisition='random', sampler=SinglePass(), epochs=a.epochs, lr=a.lr,
                       dl_kwargs=dict(num_workers=0), seed=seed, show_progress=False, semi=semi)
    al.fit()
    acc = float(al.validate()['accuracy'])
    keep = ('mu', 'thr', 'items', 'epochs', 'flex', 'align', 'ema', 'lr', 'lam', 'sched', 'tag')
    return dict({k: getattr(a, k) for k in keep}, seed=seed, acc=round(acc, 4), s=round(time.perf_counter() - start, 1))


def report(out:Path):
    df = pd.read_json(out/'ablation.jsonl', lines=True)
    t = df.pivot_table(index='tag', columns='seed', values='acc', aggfunc='last', sort=False)
    t = t.assign(mean=t.mean(axis=1))
    print(markdown_table(t.reset_index(), 3))
    return t


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1])
    p.add_argument('--mu', type=int, default=2)
    p.add_argument('--thr', type=float, default=0.95, help="FixMatch's threshold")
    p.add_argument('--items', type=int, default=6400, help="labelled items per epoch (steps = epochs x items / 64)")
    p.add_argument('--epochs', type=int, default=10)
    p.add_argument('--flex', action='store_true', help="FlexMatch's per-class thresholds")
    p.add_argument('--align', action='store_true', help="distribution alignment towards uniform")
    p.add_argument('--ema', type=float, default=None, help="evaluate a moving average of the weights with this decay")
    p.add_argument('--lr', type=float, default=1e-2)
    p.add_argument('--lam', type=float, default=1.0, help="lambda_u")
    p.add_argument('--sched', default='one_cycle', choices=['one_cycle', 'cos'])
    p.add_argument('--tag', default='')
    p.add_argument('--report', action='store_true', help="print the table of the settings run so far, and stop")
    p.add_argument('--out', default=str(Path(__file__).parent/'results'/'semi_ablation'))
    a = p.parse_args(argv)
    out = Path(a.out)
    if a.report: return report(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    for seed in a.seeds:
        r = one_fit(a, seed)
        print(json.dumps(r), flush=True)
        with open(out/'ablation.jsonl', 'a') as f: f.write(json.dumps(r) + '\n')


if __name__ == '__main__': main()
