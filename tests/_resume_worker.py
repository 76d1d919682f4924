"""A small active-learning run on a ledger file, killed and restarted by test_resume.py.

Usage: python _resume_worker.py LEDGER_PATH ROUNDS N_PER_ROUND ORACLE_SLEEP_S
"""
import sys, time

import numpy as np
import pandas as pd
import torch
from fastai.data.block import DataBlock, TransformBlock, CategoryBlock
from fastai.data.transforms import ColReader

from fastai_active.acquisition.scores import entropy
from fastai_active.data.split import ActiveSplit
from fastai_active.loop.learner import ActiveLearner, SimulatedOracle

from _learners import mlp_learner, two_features as features


def make_data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({'x0': rng.normal(size=n), 'x1': rng.normal(size=n)})
    df['y'] = np.where(np.sin(2 * df.x0) + df.x1 > 0, 'a', 'b')
    return df


make_learner = mlp_learner


class SlowOracle(SimulatedOracle):
    "Reveals held labels after a pause, which leaves a window in which requests are pending"
    def __init__(self, labels, sleep_s): super().__init__(labels); self.sleep_s = sleep_s
    def __call__(self, ds_idxs):
        time.sleep(self.sleep_s)
        return super().__call__(ds_idxs)


def build(path, sleep_s=0.0):
    df = make_data()
    dblock = DataBlock(blocks=(TransformBlock, CategoryBlock), get_x=features, get_y=ColReader('y'))
    split = ActiveSplit(dblock, df, path=path, vocab=['a', 'b'], valid_items=make_data(100, seed=1), min_epoch_items=64)
    if split.ledger.n_labelled == 0: split.label_random(10, balanced=True, seed=0)
    return ActiveLearner(split, make_learner, acquisition=entropy, oracle=SlowOracle(list(df.y), sleep_s),
                         epochs=2, lr=1e-2, dl_kwargs=dict(num_workers=0), seed=0, show_progress=False)


if __name__ == '__main__':
    torch.set_num_threads(1)
    path, rounds, n, sleep_s = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    build(path, sleep_s).loop(rounds=rounds, n_per_round=n)
    print("done")
