"Semi-supervised training: FixMatch's loss by hand, no label leakage, BatchNorm, seeds, segmentation, label spreading."
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, strategies as st
from torch import nn
from fastai.callback.core import Callback
from fastai.data.block import DataBlock, TransformBlock, CategoryBlock
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat
from fastai.metrics import accuracy
from fastai.callback.progress import ProgressCallback  # noqa: F401  (registers Learner.no_bar)

from fastai_active.core import seeded, torch_generator, derive_seed
from fastai_active.semi.augment import BatchAugment, NoAugment, ImageWeak, RandAugment, SignalAugment
from fastai_active.semi.fixmatch import fixmatch_loss, flexmatch_thresholds, FixMatchCallback, FixMatch, UnlabelledStream
from fastai_active.semi.spreading import spread_labels, embeddings, SpreadingPseudoLabeller, LabelSpreadingStep
from fastai_active.data.split import ActiveSplit
from fastai_active.loop.learner import ActiveLearner, SimulatedOracle

from _learners import two_features as features


def log_softmax(z): return z - np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True)) - z.max(-1, keepdims=True)


# --- the loss -------------------------------------------------------------------------------------------------

@given(st.integers(0, 10_000), st.integers(1, 12), st.integers(2, 5), st.floats(0.2, 0.99))
def test_fixmatch_loss_matches_numpy(seed, n, c, tau):
    g = torch_generator(seed)
    weak, strong = torch.randn(n, c, generator=g) * 3, torch.randn(n, c, generator=g) * 3
    loss, mask, pseudo, conf = fixmatch_loss(weak, strong, tau)
    p = np.exp(log_softmax(weak.double().numpy()))
    want_mask = p.max(1) >= tau
    want = (want_mask * -log_softmax(strong.double().numpy())[np.arange(n), p.argmax(1)]).mean()
    np.testing.assert_array_equal(mask.numpy(), want_mask)
    np.testing.assert_array_equal(pseudo.numpy(), p.argmax(1))
    assert math.isclose(float(loss), want, rel_tol=1e-5, abs_tol=1e-6)


def test_dense_loss_is_the_per_pixel_loss():
    g = torch_generator(0)
    weak, strong = torch.randn(2, 3, 4, 5, generator=g) * 3, torch.randn(2, 3, 4, 5, generator=g)
    thr = torch.tensor([0.5, 0.7, 0.9])
    dense = fixmatch_loss(weak, strong, thr)
    flat = fixmatch_loss(weak.permute(0, 2, 3, 1).reshape(-1, 3), strong.permute(0, 2, 3, 1).reshape(-1, 3), thr)
    torch.testing.assert_close(dense[0], flat[0])
    assert torch.equal(dense[1].flatten(), flat[1])


def test_no_gradient_flows_through_the_weak_view():
    weak, strong = torch.tensor([[4., 0.]], requires_grad=True), torch.tensor([[0., 1.]], requires_grad=True)
    fixmatch_loss(weak, strong, 0.5)[0].backward()
    assert weak.grad is None and strong.grad is not None


def test_flexmatch_thresholds_by_hand():
    # sigma = [3, 1], unused = 2: beta = [1, 1/3] -> tau * beta / (2 - beta) = tau * [1, 0.2]
    torch.testing.assert_close(flexmatch_thresholds(torch.tensor([0, 0, 0, 1, -1, -1]), 2, 0.9), torch.tensor([0.9, 0.18]))


# --- the callback on a learner ----------------------------------------------------------------------------------

def frame(n, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({'x0': rng.normal(size=n), 'x1': rng.normal(size=n)})
    df['y'] = np.where(df.x0 + 0.5 * df.x1 > 0, 'a', 'b')
    return df


def label(row): return row['y']


class Shift(BatchAugment):
    "A deterministic strong view: x -> 2x + 0.5"
    def augment(self, x, g): return 2 * x + 0.5


class Catch(Callback):
    order = 0  # after FixMatchCallback
    def __init__(self): self.seen = []
    def after_loss(self):
        if self.training: self.seen.append((float(self.learn.loss_grad), self.learn.xb[0].detach().clone()))


def linear_model(W):
    m = nn.Linear(2, 3, bias=False)
    with torch.no_grad(): m.weight.copy_(W)
    return m


def test_callback_loss_is_the_hand_computed_loss_with_flexmatch_thresholds():
    df = frame(60)
    dls = DataBlock(blocks=(TransformBlock, CategoryBlock(vocab=['a', 'b', 'c'])), get_x=features, get_y=label,
                    splitter=lambda items: (list(range(5)), list(range(40, 60)))).dataloaders(df, bs=5, num_workers=0)
    W = torch.tensor([[2., 1.], [-1., 1.5], [0.3, -2.]])
    catch = Catch()
    # FlexMatch: before any item is learnt every threshold is 0, so every unlabelled item counts
    cb = FixMatchCallback(df.iloc[5:15], mu=2, lambda_u=0.5, threshold=0.9, flex=True, weak=NoAugment(), strong=Shift(), seed=1)
    learn = Learner(dls, linear_model(W), loss_func=CrossEntropyLossFlat())
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 0., cbs=[cb, catch])
    loss, xb = catch.seen[0]
    Wn = W.double().numpy()
    feats5 = df.iloc[:5][['x0', 'x1']].values.astype(np.float32)
    rows = [int(np.flatnonzero((feats5 == r).all(1))[0]) for r in xb[:5].numpy()]  # the batch is shuffled
    assert sorted(rows) == list(range(5))
    x_l, y_l = feats5[rows].astype(np.float64), np.array([{'a': 0, 'b': 1}[df.y.iloc[i]] for i in rows])
    x_u = df.iloc[5:15][['x0', 'x1']].values.astype(np.float32).astype(np.float64)
    sup = -log_softmax(x_l @ Wn.T)[np.arange(5), y_l].mean()
    pseudo = (x_u @ Wn.T).argmax(1)
    unsup = -log_softmax((2 * x_u + 0.5) @ Wn.T)[np.arange(10), pseudo].mean()  # mask all True
    assert math.isclose(loss, sup + 0.5 * unsup, rel_tol=1e-5)
    assert cb.epoch_stats[0]['passed'] == 1.0
    # the items whose weak view passed 0.9 are now "learnt": their classes raise those thresholds next time
    p = np.exp(log_softmax(x_u @ Wn.T))
    learnt = np.where(p.max(1) > 0.9, p.argmax(1), -1)
    assert sorted(cb.learned.tolist()) == sorted(learnt.tolist())


class PixelBN(nn.Module):
    "BatchNorm2d on the input, then a 1x1 convolution to 2 classes, pooled to one logit vector per image"
    def __init__(self):
        super().__init__()
        self.bn, self.conv = nn.BatchNorm2d(1, momentum=1.), nn.Conv2d(1, 2, 1)
    def forward(self, x): return self.conv(self.bn(x)).mean((2, 3))


def image_data(n=80, seed=0):
    "8x8 one-channel images: class 'a' bright on the left half, 'b' on the right, with noise"
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = rng.normal(0.2, 0.1, (n, 1, 8, 8)).astype(np.float32)
    for i, c in enumerate(y): X[i, :, :, (0 if c == 0 else 4):(4 if c == 0 else 8)] += 0.8
    return X, np.array(['a', 'b'])[y]


def test_batchnorm_normalises_the_combined_batch():
    X, y = image_data()
    block = DataBlock(blocks=(TransformBlock, CategoryBlock(vocab=['a', 'b'])), get_x=lambda i: torch.from_numpy(X[i]),
                      get_y=lambda i: y[i], splitter=lambda items: (list(range(4)), list(range(60, 80))))
    dls = block.dataloaders(list(range(80)), bs=4, num_workers=0)
    model = PixelBN()
    cb = FixMatchCallback(list(range(4, 12)), mu=2, weak=NoAugment(), strong=Shift(), seed=0)
    learn = Learner(dls, model, loss_func=CrossEntropyLossFlat())
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 0., cbs=cb)
    combined = np.concatenate([X[:4], X[4:12], 2 * X[4:12] + 0.5])
    np.testing.assert_allclose(model.bn.running_mean.numpy(), [combined.mean()], rtol=1e-5)
    np.testing.assert_allclose(model.bn.running_var.numpy(), [combined.var(ddof=1)], rtol=1e-4)


# --- in the loop: leakage, seeds, history ----------------------------------------------------------------------

class Labels:
    "The true labels of an array; raises if asked while a learner trains"
    def __init__(self, y): self.y, self.training, self.calls = y, False, 0
    def __call__(self, ds_idxs):
        if self.training: raise AssertionError(f"labels of {list(ds_idxs)[:5]} read during training")
        self.calls += 1
        return [self.y[int(i)] for i in ds_idxs]


class Guard(Callback):
    def __init__(self, labels): self.labels = labels
    def before_fit(self): self.labels.training = True
    def after_fit(self): self.labels.training = False


def image_al(semi, seed=0, path=None, sampler=None):
    X, y = image_data(200)
    Xv, yv = image_data(60, seed=1)
    allX, ally = np.concatenate([X, Xv]), np.concatenate([y, yv])
    labels = Labels(ally)
    block = DataBlock(blocks=(TransformBlock, CategoryBlock(vocab=['a', 'b'])), get_x=lambda i: torch.from_numpy(allX[i]),
                      get_y=lambda i: ally[i])
    split = ActiveSplit(block, list(range(200)), path=path, vocab=['a', 'b'], valid_items=list(range(200, 260)),
                        valid_labels=list(yv), min_epoch_items=32, seed=seed)
    if split.ledger.n_labelled == 0: split.label_random(4, balanced=True, labels_of=labels, seed=seed)

    def make_learner(dls):
        model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                              nn.Flatten(), nn.Linear(16, 2))
        return Learner(dls, model, loss_func=CrossEntropyLossFlat(), metrics=accuracy, cbs=Guard(labels))
    kw = dict(sampler=sampler) if sampler else {}
    al = ActiveLearner(split, make_learner, oracle=SimulatedOracle(labels), semi=semi, epochs=2, lr=1e-2, bs=8,
                       dl_kwargs=dict(num_workers=0), seed=seed, show_progress=False, **kw)
    return al, labels


def test_loop_with_fixmatch_never_reads_pool_labels_and_records_pseudo_label_quality():
    al, labels = image_al(FixMatch(mu=2, threshold=0.7))  # default image views: ImageWeak, RandAugment
    h = al.loop(rounds=2, n_per_round=4)
    assert h.n_labelled.tolist() == [4, 8, 12]
    assert labels.calls > 0  # the oracle was asked, but only outside training (it raises inside)
    assert {'n_confident', 'confident_accuracy'} <= set(h.columns)
    ds_idxs, cls = al.semi.confident()
    assert len(ds_idxs) == h.n_confident.iloc[-1]
    assert not set(ds_idxs.tolist()) & set(al.ledger.labelled_idxs().tolist())
    if len(ds_idxs):
        truth = labels(ds_idxs.tolist())
        assert math.isclose(h.confident_accuracy.iloc[-1], np.mean([['a', 'b'][c] == t for c, t in zip(cls.tolist(), truth)]))


def test_seeded_loops_with_fixmatch_repeat_exactly_and_seeds_differ():
    runs = []
    for seed in (0, 0, 1):
        al, _ = image_al(FixMatch(mu=2, threshold=0.7), seed=seed)
        h = al.loop(rounds=1, n_per_round=4)
        w = torch.cat([p.detach().flatten() for p in al.learn.model.parameters()])
        runs.append((h[['n_labelled', 'n_confident', 'valid_loss']].values, w, al.ledger.labelled_idxs()))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert torch.equal(runs[0][1], runs[1][1]) and torch.equal(runs[0][2], runs[1][2])
    assert not torch.equal(runs[0][1], runs[2][1])


def test_validate_between_fits_keeps_the_callbacks_memory(tmp_path):
    al, _ = image_al(FixMatch(mu=2, threshold=0.6))
    al.fit()
    before = al.semi.confident()[0].clone()
    al.validate()
    al.learn.get_preds(dl=al.dls.valid)
    assert torch.equal(al.semi.confident()[0], before)
    assert al.semi._cb.stream is None  # released after the fit, not rebuilt by validation


def test_resumed_run_with_semi_finishes_like_an_uninterrupted_one(tmp_path):
    al, _ = image_al(FixMatch(mu=2, threshold=0.7), path=tmp_path/'a.db')
    full = al.loop(rounds=2, n_per_round=4)
    al1, _ = image_al(FixMatch(mu=2, threshold=0.7), path=tmp_path/'b.db')
    al1.loop(rounds=1, n_per_round=4)
    al2, _ = image_al(FixMatch(mu=2, threshold=0.7), path=tmp_path/'b.db')  # a new process, same ledger
    resumed = al2.loop(rounds=2, n_per_round=4)
    np.testing.assert_array_equal(full[['n_labelled', 'n_confident', 'valid_loss']].values,
                                  resumed[['n_labelled', 'n_confident', 'valid_loss']].values)


def test_ensemble_members_get_their_own_callbacks():
    from fastai_active.uncertainty.core import DeepEnsemble
    al, _ = image_al(FixMatch(mu=2, threshold=0.7), sampler=DeepEnsemble(n_members=2))
    al.fit()
    cbs = [[c for c in l.cbs if isinstance(c, FixMatchCallback)] for l in al.learns]
    assert [len(c) for c in cbs] == [1, 1] and cbs[0][0] is not cbs[1][0]
    assert cbs[0][0].seed != cbs[1][0].seed


def test_semi_set_after_a_supervised_loop_is_the_fit_of_a_learner_made_with_it(tmp_path):
    "The recipe of a long final fit: supervised rounds pick the labels, then `semi` trains only on the final labels"
    al, _ = image_al(None, path=tmp_path/'a.db')
    h = al.loop(rounds=1, n_per_round=4)
    assert 'n_confident' not in h.columns and h.n_labelled.tolist() == [4, 8]
    al.semi = FixMatch(mu=2, threshold=0.7)
    for call in (al.evaluate, al.score):
        with pytest.raises(RuntimeError, match=r"`semi` changed to FixMatch.*call `fit\(\)` before"): call()
    al.fit()
    rec = al.evaluate()
    h = al.history
    assert h.n_labelled.tolist() == [4, 8] and not math.isnan(h.n_confident.iloc[-1])  # the last row rewritten
    assert rec['n_confident'] == h.n_confident.iloc[-1] == len(al.semi.confident()[0])
    # the reference path: a learner made with the method on the same ledger, fitting the same round
    ref, _ = image_al(FixMatch(mu=2, threshold=0.7), path=tmp_path/'a.db')
    ref.fit()
    for p, q in zip(al.learn.model.parameters(), ref.learn.model.parameters()): assert torch.equal(p, q)
    assert torch.equal(al.semi.confident()[0], ref.semi.confident()[0])
    assert math.isclose(ref.evaluate()['valid_loss'], rec['valid_loss'])
    al.semi = al.semi      # the same method again: the learners stay fresh
    al.score()
    al.semi = None         # back to supervised: stale again, and `loop` refits before it records
    with pytest.raises(RuntimeError, match="`semi` changed to None"): al.evaluate()
    h = al.loop(rounds=2, n_per_round=4)   # round 1 is refitted without the method, and its row rewritten by that fit
    assert h.n_labelled.tolist() == [4, 8, 12] and 'n_confident' not in h.columns


# --- misuse ---------------------------------------------------------------------------------------------------

def test_float_targets_and_geometric_views_for_masks_are_refused():
    df = frame(40)
    df['t'] = df.x0 * 2.
    dls = DataBlock(blocks=(TransformBlock, TransformBlock), get_x=features, get_y=lambda r: torch.tensor([r.t]),
                    splitter=lambda items: (list(range(8)), list(range(30, 40)))).dataloaders(df, bs=8, num_workers=0)
    learn = Learner(dls, nn.Linear(2, 1), loss_func=nn.MSELoss())
    with learn.no_bar(), learn.no_logging():
        with pytest.raises(ValueError, match="targets are floats"):
            learn.fit(1, cbs=FixMatchCallback(df.iloc[8:30], weak=NoAugment(), strong=NoAugment()))
    weights = [p.detach().clone() for p in learn.model.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(weights, learn.model.parameters()))  # nothing trained


def segmentation_dls(n=24):
    from fastai_active.datasets import make_shapes
    images, masks = make_shapes(n, size=16, seed=0)
    x = torch.tensor(images).permute(0, 3, 1, 2).float() / 255
    m = torch.tensor(masks).long()
    block = DataBlock(blocks=(TransformBlock, TransformBlock), get_x=lambda i: x[i], get_y=lambda i: m[i],
                      splitter=lambda items: (list(range(4)), list(range(16, 24))))
    return block.dataloaders(list(range(n)), bs=4, num_workers=0)


def tiny_segmenter():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 2, 1))


def test_fixmatch_for_segmentation_is_per_pixel_and_refuses_moving_strong_views():
    dls = segmentation_dls()
    learn = Learner(dls, tiny_segmenter(), loss_func=CrossEntropyLossFlat(axis=1))
    with learn.no_bar(), learn.no_logging():
        with pytest.raises(ValueError, match="moves pixels"):
            learn.fit(1, cbs=FixMatchCallback(list(range(4, 16)), mu=1, strong=RandAugment()))
        with pytest.raises(ValueError, match="needs one class per item"):
            learn.fit(1, cbs=FixMatchCallback(list(range(4, 16)), mu=1, flex=True))
        cb = FixMatchCallback(list(range(4, 16)), mu=3, threshold=0.6)  # default: ImageWeak, photometric RandAugment
        learn.fit(2, 1e-2, cbs=cb)
    assert not cb._views[1].geometric
    assert 0 <= cb.epoch_stats[-1]['passed'] <= 1
    assert cb.stats['n_seen'] == 12


def test_signals_need_named_views_and_train_with_them():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 20)).astype(np.float32)
    y = np.where(X[:, :10].sum(1) > 0, 'a', 'b')
    dls = DataBlock(blocks=(TransformBlock, CategoryBlock(vocab=['a', 'b'])), get_x=lambda i: torch.from_numpy(X[i]),
                    get_y=lambda i: y[i], splitter=lambda items: (list(range(6)), list(range(40, 60)))).dataloaders(list(range(60)), bs=6, num_workers=0)
    learn = Learner(dls, nn.Sequential(nn.Linear(20, 8), nn.ReLU(), nn.Linear(8, 2)), loss_func=CrossEntropyLossFlat())
    with learn.no_bar(), learn.no_logging():
        with pytest.raises(ValueError, match="pass weak= and strong="):
            learn.fit(1, cbs=FixMatchCallback(list(range(6, 40))))
        cb = FixMatchCallback(list(range(6, 40)), mu=2, weak=SignalAugment(), strong=SignalAugment.strong())
        learn.fit(2, 1e-2, cbs=cb)
    assert cb.stats['n_seen'] == 24


# --- label spreading ------------------------------------------------------------------------------------------

def test_spread_labels_is_the_closed_form_on_the_symmetric_knn_graph():
    from sklearn.neighbors import kneighbors_graph
    emb = torch.randn(40, 5, generator=torch_generator(2))
    lab_idx, labs = torch.tensor([0, 1, 2, 3, 4]), torch.tensor([0, 1, 2, 0, 1])
    got = spread_labels(emb[lab_idx], labs, emb[5:], 3, n_neighbors=6, alpha=0.6, max_iter=100_000, tol=1e-12)
    X = F.normalize(emb.double(), dim=1).numpy()
    A = kneighbors_graph(X, 6, include_self=False).toarray()
    W = np.maximum(A, A.T)
    d = W.sum(1)
    S = W / np.sqrt(d[:, None] * d[None])
    Y = np.zeros((40, 3))
    Y[lab_idx.numpy(), labs.numpy()] = 1
    Fs = np.linalg.solve(np.eye(40) - 0.6 * S, Y)[5:]
    reached = Fs.sum(1) > 0
    np.testing.assert_allclose(got.numpy()[reached], (Fs[reached] / Fs[reached].sum(1, keepdims=True)), atol=1e-5)
    np.testing.assert_allclose(got.numpy()[~reached], 1 / 3)


def test_spread_labels_does_not_depend_on_the_order_of_the_unlabelled_items():
    emb = torch.randn(30, 4, generator=torch_generator(3))
    perm = torch.randperm(25, generator=torch_generator(4))
    a = spread_labels(emb[:5], torch.tensor([0, 1, 0, 1, 0]), emb[5:], 2, n_neighbors=5)
    b = spread_labels(emb[:5], torch.tensor([0, 1, 0, 1, 0]), emb[5:][perm], 2, n_neighbors=5)
    torch.testing.assert_close(a[perm], b, atol=1e-5, rtol=1e-5)


def test_label_spreading_in_the_loop_never_reads_pool_labels():
    al, labels = image_al(LabelSpreadingStep(threshold=0.6, mu=2))
    h = al.loop(rounds=1, n_per_round=4)
    assert (h.n_confident > 0).all()
    al2, _ = image_al(None)
    al2.pseudo = SpreadingPseudoLabeller(threshold=0.6)
    h2 = al2.loop(rounds=1, n_per_round=4)
    assert h2.n_pseudo.iloc[-1] > 0 and 0 <= h2.pseudo_accuracy.iloc[-1] <= 1


def test_active_learner_refuses_a_semi_that_is_not_a_method():
    with pytest.raises(TypeError, match="expected a SemiSupervised method as semi.*got str"):
        image_al('fixmatch')
    al, _ = image_al(None)
    with pytest.raises(TypeError, match="expected a SemiSupervised method as semi.*got str"): al.semi = 'fixmatch'
    assert al.semi is None


def test_alignment_of_dense_weak_views_is_per_pixel():
    "With a mask target every pixel is a row: the running mean is over the pixels, each pixel's probabilities aligned"
    cb = FixMatchCallback(list(range(4)), align=True)
    cb._recent = []
    logits = torch.randn(2, 3, 2, 4, generator=torch.Generator().manual_seed(0))   # [B, C, H, W]
    got = cb._aligned(logits).exp()
    p = torch.softmax(logits, 1).permute(0, 2, 3, 1).reshape(-1, 3)   # 16 pixels
    want = p * ((1 / 3) / p.mean(0))
    want = (want / want.sum(1, keepdim=True)).reshape(2, 2, 4, 3).permute(0, 3, 1, 2)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got.sum(1), torch.ones(2, 2, 4))
