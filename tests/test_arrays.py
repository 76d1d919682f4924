"`ArraySplit` / `TensorDL`: the per-item `DataBlock` path's batches, models and rounds, gathered from tensors"
import numpy as np
import pytest
import torch
from fastai.callback.core import Callback
from fastai.data.block import CategoryBlock, DataBlock, TransformBlock
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat
from fastai.metrics import accuracy

from fastai_active.data.arrays import ArraySplit, TensorDataLoaders, TensorDL
from fastai_active.core import seeded
from fastai_active.loop.learner import ActiveLearner, SimulatedOracle
from fastai_active.uncertainty.mc_dropout import MCDropout
from fastai_active.models import gal_cnn
from fastai_active.data.split import ActiveSplit

N, N_TEST = 300, 60


def arrays(seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, N + N_TEST)
    X = rng.integers(0, 40, (N + N_TEST, 1, 12, 12)).astype(np.uint8)
    X[np.arange(len(y)), 0, y, y] = 255          # a learnable class signal
    return X, y


class RowX:
    def __init__(self, X): self.X = X
    def __call__(self, i): return torch.from_numpy(self.X[int(i)]).float().div(255)


def splits():
    X, y = arrays()
    dblock = DataBlock(blocks=(TransformBlock, CategoryBlock(vocab=list(range(10)))), get_x=RowX(X),
                       get_y=lambda i: int(y[int(i)]))
    items = ActiveSplit(dblock, list(range(N)), vocab=list(range(10)), valid_items=list(range(N, N + N_TEST)),
                        min_epoch_items=128, seed=0)
    arr = ArraySplit(X[:N], y[:N], vocab=list(range(10)), valid_x=X[N:], valid_y=y[N:], min_epoch_items=128, seed=0)
    for s in (items, arr): s.label_random(20, balanced=True, seed=0)
    return items, arr


def make_learner(dls): return Learner(dls, gal_cnn(10, c_in=1, size=12), loss_func=CrossEntropyLossFlat(), metrics=accuracy)


def test_batches_equal_the_per_item_path():
    items, arr = splits()
    assert torch.equal(items.ledger.labelled_idxs(), arr.ledger.labelled_idxs())
    with seeded(3): dls_items = items.dataloaders(bs=16)
    with seeded(3): dls_arr = arr.dataloaders(bs=16)
    assert isinstance(dls_arr, TensorDataLoaders) and dls_arr.c == 10 and dls_arr.vocab == list(range(10))
    assert len(dls_items.train) == len(dls_arr.train) == 128 // 16
    for a, b in zip(list(dls_items.train) + list(dls_items.valid), list(dls_arr.train) + list(dls_arr.valid)):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])   # the same shuffled order, the same values
    pool = arr.pool()
    assert torch.equal(torch.cat([b[0] for b in arr.pool_dl(dls_arr, pool, bs=64)]),
                       torch.cat([b[0] for b in items.pool_dl(dls_items, items.pool(), bs=64)]))


def test_a_round_gives_the_per_item_paths_model_scores_and_picks():
    "Same seed, same data: the same trained weights, MC log-probs and acquired items"
    rounds = []
    for split in splits():
        al = ActiveLearner(split, make_learner, acquisition='bald', sampler=MCDropout(5, seed=0),
                           oracle=SimulatedOracle.from_split(split), epochs=2, lr=3e-3, seed=0, show_progress=False)
        h = al.loop(budget=10, n_per_round=10)
        rounds.append((al.learn.model.state_dict(), al.log_probs, split.ledger.labelled_idxs(), h))
    (w1, lp1, idx1, h1), (w2, lp2, idx2, h2) = rounds
    assert all(torch.allclose(w1[k].float(), w2[k].float(), atol=1e-6) for k in w1)
    assert torch.allclose(lp1, lp2, atol=1e-5)
    assert torch.equal(idx1, idx2) and len(idx1) == 30
    assert np.allclose(h1.accuracy, h2.accuracy) and (h2.valid_s > 0).all()


def test_fastai_callbacks_see_the_batches():
    _, arr = splits()
    seen = []
    class Count(Callback):
        def before_batch(self): seen.append((self.training, tuple(self.xb[0].shape), self.yb[0].dtype))
    learn = make_learner(arr.dataloaders(bs=32))
    learn.fit(1, cbs=Count())
    assert seen[0] == (True, (32, 1, 12, 12), torch.int64) and seen[-1][0] is False
    preds, targs = learn.get_preds()
    assert preds.shape == (N_TEST, 10) and torch.equal(targs, torch.as_tensor(arrays()[1][N:]))


def test_bad_inputs_are_refused():
    X, y = arrays()
    with pytest.raises(ValueError, match="classes up front"): ArraySplit(X, y)
    with pytest.raises(ValueError, match=f"expected {N + N_TEST} labels"): ArraySplit(X, y[:5], vocab=list(range(10)))
    with pytest.raises(ValueError, match="valid_x and valid_y together"): ArraySplit(X, y, vocab=list(range(10)), valid_x=X)
    with pytest.raises(TypeError, match="NumPy array or a tensor"): ArraySplit(X.tolist(), y, vocab=list(range(10)))
    with pytest.raises(ValueError, match="not in the vocabulary"):
        ArraySplit(X[:N], y[:N], vocab=list(range(10)), valid_x=X[N:], valid_y=y[N:] + 10)
    split = ArraySplit(X[:N], vocab=list(range(10)), valid_x=X[N:], valid_y=y[N:])
    with pytest.raises(ValueError, match="no `y`"): SimulatedOracle.from_split(split)(torch.tensor([0]))
    with pytest.raises(ValueError, match="no labelled items"): split.dataloaders()
    with pytest.raises(ValueError, match="one length"): TensorDL((X, y[:3]))
