"""Pool histories a user's data goes through (an image folder that grows, loses and renames files; a table whose rows
are appended, removed and re-sorted, targets unknown), and the check that every scorer gives the in-memory picks.

Shared by tests/test_pool_path.py (in-memory vs chunked, hypothesis) and tests/test_distributed.py (Ray)."""
import shutil, warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from sklearn.datasets import load_digits

from fastai.tabular.all import Categorify, FillMissing, Normalize, TabularPandas, tabular_learner, tabular_config
from fastai.vision.all import get_image_files

from fastai_active.datasets import customer_table as customers
from fastai_active.demo import digits_block, digits_learner
from fastai_active.loop.learner import ActiveLearner
from fastai_active.data.split import ActiveSplit
import fastai_active.data.tabular  # registers TabularSplit, which `ActiveSplit(to, ...)` gives for a TabularPandas
from fastai_active.acquisition.scores import entropy, bald
from fastai_active.acquisition.strategies import as_acquisition
from fastai_active.acquisition.diversity_acquisition import TypiClust
from fastai_active.uncertainty.core import SinglePass
from fastai_active.uncertainty.mc_dropout import MCDropout

# every acquisition family: top-k, stochastic, joint, diversity (core-set, BADGE, TypiClust, Cluster-Margin)
# (TypiClust with clusters of at least 2: its default of 5 leaves no cluster on pools of a few dozen items)
FAMILIES = ['entropy', 'powerbald', 'batchbald', 'coreset', 'badge', TypiClust(min_cluster_size=1, k_nn=5), 'cluster_margin']
PER_ITEM = {'entropy': entropy, 'powerbald': bald}  # the score each of these returns for a picked item

_DIGITS = None
def digits():
    global _DIGITS
    if _DIGITS is None:
        X, y = load_digits(return_X_y=True)
        _DIGITS = ((X * 255 / 16).astype(np.uint8).reshape(-1, 8, 8), y)
    return _DIGITS


class Folder:
    "An image folder `root/<digit>/<name>.png` of scikit-learn's digits that changes as a user's does"
    def __init__(self, root, n:int, seed:int=0):
        self.root, self.rng, self.next = Path(root), np.random.default_rng(seed), 0
        self.add(n)

    def add(self, k:int):
        X, y = digits()
        for _ in range(k):
            i = self.next % len(X)
            (self.root/str(y[i])).mkdir(parents=True, exist_ok=True)
            Image.fromarray(X[i]).save(self.root/str(y[i])/f'img{self.next:05d}.png')
            self.next += 1

    def files(self): return sorted(self.root.rglob('*.png'))

    def _unlabelled(self, split, k:int):
        labelled = {str(Path(self.root)/key) for key in split.ledger.keys(split.ledger.labelled_idxs())}
        free = [f for f in self.files() if str(f) not in labelled]
        return [free[i] for i in self.rng.choice(len(free), size=min(k, max(len(free) - 12, 0)), replace=False)]

    def delete(self, split, k:int):
        for f in self._unlabelled(split, k): f.unlink()

    def rename(self, split, k:int):
        for f in self._unlabelled(split, k): f.rename(f.with_name('r' + f.name))


def folder_al(folder:Folder, db, sampler, fitted:ActiveLearner|None=None, item_cache=2**30, **kwargs)->ActiveLearner:
    "An ActiveLearner on the folder (a new session: a new split on the same ledger), with `fitted`'s learners or fitted"
    split = ActiveSplit(digits_block(), folder.root, path=db, vocab=[str(i) for i in range(10)], valid_pct=0.25, seed=0,
                        item_cache=item_cache)
    al = ActiveLearner(split, digits_learner, sampler=sampler, epochs=1, lr=1e-2, bs=16, dl_kwargs=dict(num_workers=0),
                       seed=0, show_progress=False, **kwargs)
    if fitted is None:
        if split.ledger.n_labelled == 0: split.label_random(20, seed=0)
        return al.fit()
    al.learns, al.dls, al._fitted, al._fit_error = fitted.learns, fitted.dls, al._label_state(), None  # the same model
    return al


class Table:
    "The table as a user holds it: targets known for a few rows (NaN for the rest), rows appended, removed, re-sorted"
    def __init__(self, n:int, seed:int=0):
        self.rng, self.next = np.random.default_rng(seed), n
        truth = customers(n, seed)
        self.df = truth.assign(left=np.nan)
        self.df.loc[truth.index[:24], 'left'] = truth.left[:24]
        self.valid = customers(60, seed + 1, start=90_000)

    def append(self, k:int):
        new = customers(k, int(self.rng.integers(1 << 30)), start=self.next).assign(left=np.nan)
        self.next += k
        self.df = pd.concat([self.df, new])

    def remove(self, k:int):
        free = np.flatnonzero(self.df.left.isna().to_numpy())
        drop = self.rng.choice(free, size=min(k, max(len(free) - 12, 0)), replace=False)
        self.df = self.df.drop(self.df.index[drop])

    def resort(self): self.df = self.df.iloc[self.rng.permutation(len(self.df))]


def table_to(df):
    return TabularPandas(df, procs=[Categorify, FillMissing, Normalize], cat_names=['plan'], cont_names=['tenure', 'spend'],
                         y_names='left', do_setup=False)

def table_learner(dls): return tabular_learner(dls, layers=[16], config=tabular_config(ps=0.2))

def table_al(table:Table, db, sampler, fitted:ActiveLearner|None=None, **kwargs)->ActiveLearner:
    "An ActiveLearner on the table in a new session (a new split on the same ledger), with `fitted`'s learners or fitted"
    split = ActiveSplit(table_to(table.df), path=db, vocab=[0, 1], valid_items=table.valid, seed=0)
    if split.ledger.n_labelled == 0: split.label(table.df.left.dropna().astype(int).to_dict(), source='initial')
    al = ActiveLearner(split, table_learner, sampler=sampler, epochs=1, lr=1e-2, bs=16, dl_kwargs=dict(num_workers=0),
                       seed=0, show_progress=False, **kwargs)
    if fitted is None: return al.fit()
    al.learns, al.dls, al._fitted, al._fit_error = fitted.learns, fitted.dls, al._label_state(), None
    return al


FOLDER_OPS = (['add', 'delete', 'rename'], 12)   # what may happen to a folder, and at most how many files at once
TABLE_OPS = (['append', 'remove', 'resort'], 15)

def folder_history(tmp, ops, sampler, n:int=60)->ActiveLearner:
    "A learner on a folder of `n` images after `ops`: `(op, k, 'refresh' | 'session')` each, files changed then read again"
    folder = Folder(tmp/'imgs', n)
    al = folder_al(folder, tmp/'labels.db', sampler)
    for op, k, how in ops:
        if op == 'add': folder.add(k)
        else: getattr(folder, op)(al.split, k)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')  # files gone from the folder: reported, as they should be
            if how == 'refresh': al.split.refresh()
            else: al = folder_al(folder, tmp/'labels.db', sampler, fitted=al)
    return al

def table_history(tmp, ops, sampler, n:int=90)->ActiveLearner:
    "A learner on a table of `n` rows after `ops`: `(op, k, 'refresh' | 'session')` each, rows changed then read again"
    table = Table(n)
    al = table_al(table, tmp/'labels.db', sampler)
    for op, k, how in ops:
        getattr(table, op)(*([] if op == 'resort' else [k]))
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            if how == 'refresh': al.split.refresh(source=table.df)
            else: al = table_al(table, tmp/'labels.db', sampler, fitted=al)
    return al


def picks(al:ActiveLearner, scorer, acquisition:str, n:int=4)->pd.DataFrame:
    "What `acquire(n)` returns with `scorer` and `acquisition`; the requests are withdrawn again"
    al.scorer, al.acquisition = None, as_acquisition(acquisition)
    al.scorer = scorer
    al.sampler = al.sampler.for_acquisition(al.acquisition)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # BatchBALD's saturation warning on a tiny pool
        got = al.acquire(n)
    al.ledger.cancel_requests()
    return got


def own_scores(al:ActiveLearner, keys:list, score, sampler) -> np.ndarray:
    "Each item's score computed directly, one item at a time: `get_preds` (or the sampler) on that item alone"
    out = []
    for key in keys:
        ds_idx = al.split.idxs_of([key])
        items = al.split.unlabelled_items(al.split.pool().subset(al.split.pool().to_pool(ds_idx)))
        dl = al.learn.dls.test_dl(items, bs=1)
        if isinstance(sampler, SinglePass): lp = al.learn.get_preds(dl=dl)[0].log()[:, None]
        else: lp = sampler([al.learn], dl)
        out.append(float(score(lp)[0]))
    return np.array(out)


def assert_same_picks(got:pd.DataFrame, want:pd.DataFrame, what:str):
    "The same items, in the same order, with the same scores"
    assert got.key.tolist() == want.key.tolist(), f"{what}: picked {got.key.tolist()}, in memory {want.key.tolist()}"
    np.testing.assert_allclose(got.score.to_numpy(float), want.score.to_numpy(float), rtol=1e-4, atol=1e-5, err_msg=what)
