"""Pools for the chunked and Ray scoring tests: the digits as an image folder (the user's path), and a wide synthetic
pool on a memory-mapped array whose [N, K, C] log-probs would not fit in a small memory budget.

Ray's workers import this module by name (the tests put this folder on their PYTHONPATH)."""
import os, threading, time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from fastai.callback.progress import ProgressCallback
from fastai.data.block import CategoryBlock, DataBlock, TransformBlock
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat
from fastai.vision.all import get_image_files

from fastai_active.data.arrays import TensorDL, TensorDataLoaders
from fastai_active.core import seeded
from fastai_active.datasets import digits_folder
from fastai_active.demo import digits_block, digits_learner
from fastai_active.loop.learner import ActiveLearner, SimulatedOracle
from fastai_active.data.split import ActiveSplit


def digits_al(root, seed=0, pool_max_items=300, **kwargs):
    "An ActiveLearner on the digits written as PNG files, 50 labels, fitted for one epoch"
    path = digits_folder(Path(root)/'digits')
    split = ActiveSplit(digits_block(), path/'train', vocab=[str(i) for i in range(10)],
                        valid_items=get_image_files(path/'test')[:100], seed=seed)
    split.label_random(50, balanced=True, seed=seed)
    al = ActiveLearner(split, digits_learner, oracle=SimulatedOracle.from_split(split), epochs=1, lr=1e-2,
                       dl_kwargs=dict(num_workers=0), pool_max_items=pool_max_items, seed=seed, show_progress=False,
                       **kwargs)
    return al.fit()


def row_x(r): return torch.as_tensor(np.asarray(r[:8], dtype=np.float32))
def row_y(r): return int(r[8])


def wide_pool(path, N, C, seed=0):
    "N rows of 8 features and a class in [0, C), as a memory-mapped .npy file, and an untrained MLP with dropout"
    rng = np.random.default_rng(seed)
    rows = np.lib.format.open_memmap(path, mode='w+', dtype=np.float32, shape=(N, 9))
    rows[:, :8] = rng.normal(size=(N, 8))
    rows[:, 8] = rng.integers(0, C, size=N)
    rows.flush()
    rows = np.load(path, mmap_mode='r')
    dblock = DataBlock(blocks=(TransformBlock, CategoryBlock(vocab=list(range(C)))), get_x=row_x, get_y=row_y)
    with seeded(seed):
        dls = dblock.dataloaders(np.array(rows[:64]), bs=64, num_workers=0)
        model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, C))
        learn = Learner(dls, model, loss_func=CrossEntropyLossFlat())
    learn.remove_cb(ProgressCallback)
    return rows, learn


def row_features(x): return x[:, :8]  # a batch of `wide_pool` rows as features; the class column stays out


def tensor_learner(learn, rows):
    "`learn`'s model with `TensorDataLoaders` over `rows` (`wide_pool`'s): batches gathered from arrays, not per row"
    x = np.array(rows[:64])
    y = torch.as_tensor(x[:, 8]).long()
    vocab = list(learn.dls.vocab)
    tdls = TensorDataLoaders(*[TensorDL((x, y), bs=64, x_tfm=row_features, vocab=vocab) for _ in range(2)])
    return Learner(tdls, learn.model, loss_func=learn.loss_func)


class PeakMemory:
    "Peak growth of this process's private memory (RssAnon: heap and tensors, not shared or file pages) in a block"
    def __enter__(self):
        self.base = self.peak = anon_bytes()
        self.running = True
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()
        return self
    def _poll(self):
        while self.running:
            self.peak = max(self.peak, anon_bytes())
            time.sleep(0.002)
    def __exit__(self, *exc):
        self.running = False
        self.thread.join()
        self.peak = max(self.peak, anon_bytes())
    @property
    def growth(self): return self.peak - self.base


def anon_bytes()->int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('RssAnon:'): return int(line.split()[1]) * 1024
    raise RuntimeError("no RssAnon in /proc/self/status")
