"""Small learners the tests share, in the spirit of fastai's `synth_learner`: rows of a table with two features `x0`,
`x1` (and, where a test reads it back, the row's `id`), and a one-hidden-layer MLP on them, with or without dropout.

Imported by name (`from _learners import mlp_learner`): pytest puts tests/ on `sys.path` for its test modules (they are
not in a package), and a worker script run as `python tests/_x.py` has its own folder first on `sys.path` too."""
import torch
from torch import nn
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat
from fastai.metrics import accuracy


def two_features(row): return torch.tensor([row.x0, row.x1], dtype=torch.float32)


def two_features_and_id(row):
    "`x0`, `x1` and the row's `id`: `IgnoreId` models see the features only, the tests read the id back"
    return torch.tensor([row.x0, row.x1, float(row.id)], dtype=torch.float32)


def mlp(c, p=None):
    "Two features -> 16 -> `c` logits, with `nn.Dropout(p)` before the last layer when `p` is given (for MC dropout)"
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), *([nn.Dropout(p)] if p is not None else []), nn.Linear(16, c))


def mlp_learner(dls, p=None):
    "A `Learner` of `mlp(dls.c, p)` with cross-entropy and accuracy"
    return Learner(dls, mlp(dls.c, p), loss_func=CrossEntropyLossFlat(), metrics=accuracy)


class IgnoreId(nn.Module):
    "`mlp` on the two real features of `two_features_and_id` (the third column is the item's id, kept for the tests)"
    def __init__(self, c, p=None): super().__init__(); self.net = mlp(c, p)
    def forward(self, x): return self.net(x[:, :2])


def ignore_id_learner(dls, p=None):
    "A `Learner` of `IgnoreId(dls.c, p)` with cross-entropy and accuracy"
    return Learner(dls, IgnoreId(dls.c, p), loss_func=CrossEntropyLossFlat(), metrics=accuracy)
