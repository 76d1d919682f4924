"""Multi-label and regression targets through the loop: Bernoulli log-probs per label, regression moments, and the
strategies each target refuses."""
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from fastai.data.all import DataBlock, TransformBlock, MultiCategoryBlock, RegressionBlock
from fastai.learner import Learner
from fastai.losses import BCEWithLogitsLossFlat, CrossEntropyLossFlat, MSELossFlat
from fastai.metrics import accuracy_multi, rmse

from fastai_active.all import *

N, D, L = 240, 6, 3
NAMES = ['cat', 'dog', 'owl']


def multilabel_problem(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, D)).astype('float32')
    Y = (X @ rng.normal(size=(D, L)) + rng.normal(0, .5, (N, L))) > 0.3
    labels = [[n for n, b in zip(NAMES, row) if b] for row in Y]
    dblock = DataBlock(blocks=(TransformBlock, MultiCategoryBlock(vocab=NAMES)), get_x=lambda i: torch.tensor(X[i]),
                       get_y=lambda i: labels[i])
    split = ActiveSplit(dblock, list(range(N)), vocab=NAMES, valid_pct=0.3)
    split.label({i: labels[i] for i in range(30)}, source='initial')
    return X, labels, split


def regression_problem(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, D)).astype('float32')
    y = X @ rng.normal(size=D) + rng.normal(0, .3, N)
    dblock = DataBlock(blocks=(TransformBlock, RegressionBlock()), get_x=lambda i: torch.tensor(X[i]), get_y=lambda i: float(y[i]))
    split = ActiveSplit(dblock, list(range(N)), valid_pct=0.3)
    split.label({i: float(y[i]) for i in range(30)}, source='initial')
    return X, y, split


def mlp(out, p=0.2): return nn.Sequential(nn.Linear(D, 32), nn.ReLU(), nn.Dropout(p), nn.Linear(32, out))
def ml_learner(dls, loss=None): return Learner(dls, mlp(L), loss_func=loss or BCEWithLogitsLossFlat(), metrics=accuracy_multi)
def reg_learner(dls): return Learner(dls, mlp(1), loss_func=MSELossFlat(), metrics=rmse)
def gauss_learner(dls): return Learner(dls, mlp(2), loss_func=GaussianNLLLossFlat(), metrics=gaussian_rmse)
KW = dict(epochs=3, lr=1e-2, dl_kwargs=dict(num_workers=0), show_progress=False)


def test_multilabel_loop_end_to_end_with_bernoulli_log_probs():
    X, labels, split = multilabel_problem()
    al = ActiveLearner(split, ml_learner, acquisition='powerbald', sampler=MCDropout(n_samples=6, seed=0),
                       oracle=SimulatedOracle.from_split(split), **KW)
    h = al.loop(rounds=2, n_per_round=8)
    assert al.target == 'multilabel' and h.n_labelled.tolist() == [30, 38, 46]
    assert al.acquisition.reduce == 'sum'   # 'powerbald' by name: BALD summed over the labels
    # the history shows the class balance of the labels each round (a list of labels counts each class once)
    last = h.class_counts.iloc[-1]
    assert last == {c: sum(c in split.ledger.labels()[i] for i in split.ledger.labelled_idxs().tolist()) for c in NAMES}
    lp = al.score()
    assert lp.shape == (N - 46, 6, 2, L)
    torch.testing.assert_close(lp.exp().sum(2), torch.ones(N - 46, 6, L))
    # against the model by hand: a deterministic pass is the sigmoid of each label's logit, not a softmax over labels
    learn = al.learn
    pool = al.split.pool()
    one = SinglePass()([learn], al.split.pool_dl(al.dls, pool))
    x = torch.tensor(X[pool.ds_idxs.numpy()])
    learn.model.eval()
    with torch.no_grad(): p_N_L = torch.sigmoid(learn.model(x))
    torch.testing.assert_close(one[:, 0, 1].exp(), p_N_L, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(one[:, 0, 1].exp(), p_N_L.softmax(1))


def test_multilabel_ensemble_validates_the_mean_probability():
    X, labels, split = multilabel_problem(1)
    al = ActiveLearner(split, ml_learner, acquisition='entropy', sampler=DeepEnsemble(2), **KW)
    al.fit()
    rec = al.evaluate()
    dls = al.dls
    xb = torch.stack([dls.valid_ds[i][0] for i in range(len(dls.valid_ds))])
    yb = torch.stack([dls.valid_ds[i][1] for i in range(len(dls.valid_ds))]).float()
    with torch.no_grad():
        for l in al.learns: l.model.eval()
        p = torch.stack([torch.sigmoid(l.model(xb)) for l in al.learns]).mean(0)
    bce = -(yb * p.log() + (1 - yb) * (1 - p).log()).mean()
    assert rec['valid_loss'] == pytest.approx(bce.item(), rel=1e-4)
    assert rec['accuracy_multi'] == pytest.approx(((p > .5).float() == yb).float().mean().item(), rel=1e-5)


def test_multilabel_refusals():
    X, labels, split = multilabel_problem(2)
    al = ActiveLearner(split, ml_learner, acquisition='batchbald', sampler=MCDropout(n_samples=4, seed=0), **KW)
    with pytest.raises(ValueError, match="not supported on multi-label outputs.*'powerbald'"): al.fit()
    assert al.learns == []   # nothing half-done: no learners of a refused round
    for acq, msg in [(TopScores(entropy), 'not a softmax over the labels'), ('variance', 'scores regression moments'),
                     ('expected_iou_loss', 'image-level segmentation score')]:
        with pytest.raises(ValueError, match=msg):
            ActiveLearner(split, ml_learner, acquisition=acq, sampler=MCDropout(n_samples=4, seed=0), target='multilabel', **KW)
    with pytest.raises(ValueError, match='is for a regression target but its DataLoaders hold a multilabel'):
        ActiveLearner(split, lambda dls: ml_learner(dls, MSELossFlat()), **KW).fit()
    with pytest.raises(ValueError, match='expected a target in'): ActiveLearner(split, ml_learner, target='multi', **KW)
    with pytest.raises(ValueError, match='pseudo-labelling takes classification'):
        ActiveLearner(split, ml_learner, pseudo=PseudoLabeller(), target='multilabel', **KW)


def test_explicit_target_for_an_unknown_loss():
    X, labels, split = multilabel_problem(3)
    bce = nn.BCEWithLogitsLoss()
    def loss(out, targ): return bce(out, targ.float())  # a plain function: the loss says nothing, the data does
    al = ActiveLearner(split, lambda dls: ml_learner(dls, loss), acquisition=TopScores(bald, reduce='max'),
                       sampler=MCDropout(n_samples=4, seed=0), target='multilabel', **KW)
    al.fit()
    assert al.score().shape[2:] == (2, L)
    assert len(al.acquire(5)) == 5


def test_regression_mc_dropout_scores_match_the_samples():
    X, y, split = regression_problem()
    al = ActiveLearner(split, reg_learner, acquisition='epistemic_variance', sampler=MCDropout(n_samples=8, seed=0),
                       oracle=SimulatedOracle.from_split(split), **KW)
    h = al.loop(rounds=2, n_per_round=6)
    assert al.target == 'regression' and h.n_labelled.tolist() == [30, 36, 42] and '_rmse' in h
    mom = al.score()
    assert mom.shape == (N - 42, 8, 2) and (mom[:, :, 1] == 0).all()
    # against the K forward passes by hand (the same consistent masks)
    pool = al.split.pool()
    preds = al.learn.get_mc_preds(al.split.pool_dl(al.dls, pool), n_samples=8, seed=0)[0]
    torch.testing.assert_close(preds, mom)
    torch.testing.assert_close(epistemic_variance(mom), mom[:, :, 0].var(1, unbiased=False))
    torch.testing.assert_close(predictive_variance(mom), epistemic_variance(mom))   # no aleatoric part without a Gaussian head
    picked = al.acquire(4)
    assert sorted(picked.score.tolist(), reverse=True) == pytest.approx(epistemic_variance(mom).topk(4).values.tolist())


def test_gaussian_head_ensemble_total_is_epistemic_plus_aleatoric():
    X, y, split = regression_problem(1)
    al = ActiveLearner(split, gauss_learner, acquisition='powervariance', sampler=DeepEnsemble(2),
                       oracle=SimulatedOracle.from_split(split), **KW)
    h = al.loop(rounds=1, n_per_round=6)
    assert al.target == 'gaussian' and 'gaussian_rmse' in h
    mom = al.score()
    x = torch.tensor(X[al.split.pool().ds_idxs.numpy()])
    with torch.no_grad():
        outs = torch.stack([l.model.eval()(x) for l in al.learns], 1)   # [N, 2, (mean, log-variance)]
    torch.testing.assert_close(mom[:, :, 0], outs[:, :, 0])
    torch.testing.assert_close(mom[:, :, 1], outs[:, :, 1].exp())
    torch.testing.assert_close(predictive_variance(mom), outs[:, :, 0].var(1, unbiased=False) + outs[:, :, 1].exp().mean(1))


def test_regression_refusals():
    X, y, split = regression_problem(2)
    for acq in ('powerentropy', 'bald', 'batchbald', TopScores(margin)):
        al = ActiveLearner(split, reg_learner, acquisition=acq, sampler=MCDropout(n_samples=4, seed=0), **KW)
        with pytest.raises(ValueError, match="regression moments.*use 'variance'"): al.fit()
    al = ActiveLearner(split, reg_learner, acquisition='variance', **KW)   # one deterministic pass: all variances 0
    with pytest.raises(ValueError, match='one point prediction per item of a regression target'): al.fit()
    with pytest.raises(ValueError, match=r'\(K=1\)'): ActiveLearner(split, reg_learner, acquisition='epistemic_variance', **KW)
    ActiveLearner(split, gauss_learner, acquisition='variance', **KW).fit()   # a Gaussian head: its own variance, K=1 is fine
