"""One of two processes that acquire and label from the same ledger file at once (run by test_concurrency.py).

Usage: python _concurrent_worker.py LEDGER_PATH ROUNDS N_PER_ROUND NAME LOG_PATH START_FILE

It waits for START_FILE, then until the ledger reaches ROUNDS rounds with nothing pending: acquire N items (scoring
is slow on purpose, so that both processes are between the pending check and the request at the same time), then
label whatever is pending. Every call that the ledger accepted or refused is logged as a JSON line.
"""
import json, sys, time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from fastai.data.block import DataBlock, TransformBlock, CategoryBlock
from fastai.data.transforms import ColReader
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat

from fastai_active.data.split import ActiveSplit
from fastai_active.loop.learner import ActiveLearner
from fastai_active.uncertainty.core import PosteriorSampler


def make_data(n=120):
    return pd.DataFrame({'id': np.arange(n), 'y': np.where(np.arange(n) % 3 == 0, 'a', 'b')})


def features(row): return torch.tensor([float(row['id'])])


class SlowRandomSampler(PosteriorSampler):
    "Random log-probs, different in each process, after a pause that keeps the race window open"
    def __init__(self, seed, sleep_s): self.g, self.sleep_s = torch.Generator().manual_seed(seed), sleep_s
    def __call__(self, learns, dl):
        n = sum(len(b[0]) for b in dl)
        time.sleep(self.sleep_s)
        return torch.randn(n, 1, 2, generator=self.g).log_softmax(-1)


def build(path, seed, sleep_s=0.5):
    dblock = DataBlock(blocks=(TransformBlock, CategoryBlock), get_x=features, get_y=ColReader('y'))
    split = ActiveSplit(dblock, make_data(), path=path, vocab=['a', 'b'], valid_pct=0.5)
    make_learner = lambda dls: Learner(dls, nn.Linear(1, 2), loss_func=CrossEntropyLossFlat())
    return ActiveLearner(split, make_learner, acquisition='entropy', sampler=SlowRandomSampler(seed, sleep_s),
                         fit=lambda learn: None, dl_kwargs=dict(num_workers=0), show_progress=False)


if __name__ == '__main__':
    torch.set_num_threads(1)
    path, rounds, n, name, log_path, start_file = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:7]
    al = build(path, seed=sum(map(ord, name)))
    truth = dict(enumerate(make_data().y))
    log = open(log_path, 'a')
    def write(**kw): log.write(json.dumps(kw) + '\n'); log.flush()
    write(event='ready')
    while not Path(start_file).exists(): time.sleep(0.01)
    while not (al.ledger.round >= rounds and len(al.ledger.pending()) == 0):
        if al.ledger.round < rounds:
            try:
                al.fit()
                picked = al.acquire(n)
                write(event='acquired', ds_idxs=picked.ds_idx.tolist(), round=int(picked['round'].iloc[0]))
            except RuntimeError as e: write(event='acquire refused', error=str(e))
        todo = al.pending()
        if len(todo):
            answers = todo.assign(label=[truth[i] for i in todo.ds_idx])
            try:
                k = al.label(answers, annotator=name)
                write(event='labelled', ds_idxs=answers.ds_idx.tolist(), labels=answers.label.tolist(), n=k)
            except ValueError as e: write(event='label refused', error=str(e))
    print('done')
