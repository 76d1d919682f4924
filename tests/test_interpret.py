"Tests of the interpretation modules (metrics, correlation, ood, triage, interpretation) against closed forms, scipy/numpy and brute force."
import math

import numpy as np
import pytest
import torch
from hypothesis import example, given, strategies as st
from scipy import stats
from scipy.spatial.distance import cdist

from fastai_active.acquisition.scores import expected_iou_loss
from fastai_active.all import (iou, dice, correctness, nll, pearson, spearman, calibration_table,
                                     expected_calibration_error, Mahalanobis, knn_distance, triage, GROUPS)

masks = st.integers(1, 6).flatmap(lambda n: st.tuples(
    st.lists(st.lists(st.booleans(), min_size=9, max_size=9), min_size=n, max_size=n),
    st.lists(st.lists(st.booleans(), min_size=9, max_size=9), min_size=n, max_size=n)))


@given(masks)
def test_iou_dice_match_set_definitions(pair):
    p, t = (torch.tensor(m).reshape(len(m), 3, 3) for m in pair)
    j, d = iou(p, t), dice(p, t)
    for i in range(len(p)):
        P = {k for k, v in enumerate(pair[0][i]) if v}
        T = {k for k, v in enumerate(pair[1][i]) if v}
        want_j = len(P & T) / len(P | T) if P | T else 1.0
        want_d = 2 * len(P & T) / (len(P) + len(T)) if P or T else 1.0
        assert j[i].item() == pytest.approx(want_j)
        assert d[i].item() == pytest.approx(want_d)


def test_iou_dice_symmetric_and_errors():
    p = torch.tensor([[1, 1, 0, 0]])
    t = torch.tensor([[0, 1, 1, 1]])
    assert iou(p, t).item() == pytest.approx(1 / 4) == iou(t, p).item()
    assert dice(p, t).item() == pytest.approx(2 / 5)
    assert iou(torch.zeros(1, 4), torch.zeros(1, 4)).item() == 1.0
    with pytest.raises(ValueError, match='same shape'): iou(p, t[:, :3])
    with pytest.raises(ValueError, match='binary'): dice(p, t * 3)
    with pytest.raises(ValueError, match='N=0'): iou(p[:0], t[:0])
    with pytest.raises(TypeError, match='torch.Tensor or array'): iou('mask', t)


def test_correctness_nll_predictive_mean():
    probs = torch.tensor([[[.9, .1], [.1, .9], [.5, .5]]])  # K=3, mean (.5, .5): tie -> class 0
    lp = probs.log()
    assert correctness(lp, torch.tensor([0])).item() == 1.0
    assert nll(lp, torch.tensor([1])).item() == pytest.approx(math.log(2))
    # predictive mean, not the mean of the log-probs
    lp2 = torch.tensor([[[.99, .01], [.01, .99]]]).log()
    assert nll(lp2, torch.tensor([0])).item() == pytest.approx(math.log(2))
    with pytest.raises(ValueError, match='NaN'): nll(torch.full((1, 1, 2), float('nan')), torch.tensor([0]))
    with pytest.raises(ValueError, match=r'\[0, 2\)'): nll(lp2, torch.tensor([-1]))


@given(st.integers(5, 40), st.integers(0, 10_000), st.floats(0.5, 0.99))
@example(6, 55, 0.5)  # ranks in perfect agreement: found by hypothesis
def test_correlations_match_scipy(n, seed, conf):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = 0.5 * x + rng.normal(size=n)
    y[: n // 4] = y[0]  # ties
    if np.ptp(y) == 0: return
    p = pearson(torch.tensor(x), torch.tensor(y), conf=conf)
    ref = stats.pearsonr(x, y)
    ci = ref.confidence_interval(conf)
    assert (p.r, p.p, p.lo, p.hi) == pytest.approx((ref.statistic, ref.pvalue, ci.low, ci.high), rel=1e-6, abs=1e-9)
    try: s = spearman(x, y, conf=conf, n_resamples=500)
    except ValueError as e:  # too few distinct values for a bootstrap interval: said, not returned as NaN
        assert 'nearly constant' in str(e)
        return
    ref = stats.spearmanr(x, y)
    assert (s.r, s.p) == pytest.approx((ref.statistic, ref.pvalue), rel=1e-6, abs=1e-9)
    if abs(ref.statistic) == 1:  # a perfect rank correlation (n=6, seed=55): the interval is the point
        assert s.lo == s.hi == s.r == pytest.approx(ref.statistic)
    assert s.lo <= s.r <= s.hi and p.lo <= p.r <= p.hi
    assert spearman(x, y, conf=conf, n_resamples=500) == s   # seeded


def _loop_bootstrap(x, y, conf, B, seed):
    "An independent percentile bootstrap of Spearman's rho: a Python loop over scipy.stats.spearmanr"
    rng, out = np.random.default_rng(seed), []
    for _ in range(B):
        i = rng.integers(0, len(x), len(x))
        if np.ptp(x[i]) > 0 and np.ptp(y[i]) > 0: out.append(stats.spearmanr(x[i], y[i]).statistic)
    return np.quantile(out, [(1 - conf) / 2, (1 + conf) / 2])


def _tied_pairs(rng, n):
    "Half the scores exactly 0 and half the IoU-like values exactly 1, strongly related (as mask_disagreement vs IoU)"
    z = rng.normal(size=n)
    score = np.where(z + 0.4 * rng.normal(size=n) < 0, 0., z)
    iou_like = np.where(z < 0, 1., np.round(np.clip(1 - 0.3 * z, 0, 1), 2))
    return score, iou_like


def test_spearman_interval_agrees_with_an_independent_bootstrap_under_ties():
    x, y = _tied_pairs(np.random.default_rng(0), 120)
    s = spearman(x, y, n_resamples=4000)
    lo, hi = _loop_bootstrap(x, y, 0.95, 2000, 100)
    assert (s.lo, s.hi) == pytest.approx((lo, hi), abs=0.025)


def test_spearman_interval_covers_under_ties():
    "Item 10: 300 samples of 150 tied pairs (rho -0.93): the Fisher/Bonett-Wright interval covered 76%, the bootstrap 92%"
    rng = np.random.default_rng(5)
    X, Y = _tied_pairs(rng, 400_000)
    true = stats.spearmanr(X, Y).statistic
    covered = [(s.lo <= true <= s.hi) for s in (spearman(*_tied_pairs(rng, 150), n_resamples=500, seed=t) for t in range(300))]
    assert np.mean(covered) >= 0.91, np.mean(covered)


def test_correlation_errors():
    with pytest.raises(ValueError, match='at least 4'): pearson([1., 2., 3.], [1., 2., 4.])
    with pytest.raises(ValueError, match='not constant'): spearman([1., 1., 1., 1.], [1., 2., 3., 4.])
    with pytest.raises(ValueError, match='finite'): pearson([1., 2., 3., np.inf], [1., 2., 3., 4.])


def _calibrated(n_bins_conf, n, rng):
    "A predictor that is right with probability equal to its confidence, C=3"
    conf = rng.choice(n_bins_conf, size=n)
    right = rng.random(n) < conf
    probs = np.stack([conf, (1 - conf) / 2, (1 - conf) / 2], 1)
    targs = np.where(right, 0, rng.integers(1, 3, size=n))
    return torch.tensor(probs).log()[:, None], torch.tensor(targs)


def test_ece_of_calibrated_predictor_is_near_zero():
    lp, t = _calibrated(np.array([.45, .6, .75, .9]), 200_000, np.random.default_rng(0))
    assert expected_calibration_error(lp, t) < 0.005  # sampling noise only: sd per bin ~ 0.002


def test_ece_overconfident_gap_and_bins():
    # confidences 0.95 (right 70%) and 0.85 (right 50%) in two different bins: ECE = .5*.25 + .5*.35
    conf = torch.tensor([.95] * 10 + [.85] * 10, dtype=torch.float64)
    lp = torch.stack([conf, 1 - conf], 1).log()[:, None]
    t = torch.tensor([0] * 7 + [1] * 3 + [0] * 5 + [1] * 5)
    assert expected_calibration_error(lp, t, n_bins=10) == pytest.approx(0.3)
    table = calibration_table(lp, t, n_bins=10)
    assert table['count'].tolist() == [0] * 8 + [10, 10]
    # a single bin pools the two: |0.6 - 0.9| = 0.3 as well; with 20 bins each sits in its own bin
    assert expected_calibration_error(lp, t, n_bins=1) == pytest.approx(0.3)
    # posterior samples: two members at .99 / .79 average to .89 -> bin (.8, .9]
    lp_k = torch.tensor([[[.99, .01], [.79, .21]]], dtype=torch.float64).log()
    assert calibration_table(lp_k, torch.tensor([0]), n_bins=10)['count'].tolist()[8] == 1


def test_ece_bins_are_right_closed():
    # Guo et al.: bin m holds confidences in ((m-1)/M, m/M]; 0.5, 0.75 and 1.0 sit exactly on edges for M=4
    conf = torch.tensor([.5, .75, 1.], dtype=torch.float64)
    lp = torch.stack([conf, 1 - conf], 1).log()[:, None]
    table = calibration_table(lp, torch.tensor([0, 1, 0]), n_bins=4)
    assert table['count'].tolist() == [0, 1, 1, 1]
    assert table['accuracy'].tolist()[1:] == [1., 0., 1.]
    assert expected_calibration_error(lp, torch.tensor([0, 1, 0]), n_bins=4) == pytest.approx((0.5 + 0.75 + 0) / 3)


def test_ece_dense_equals_flattened_pixels():
    g = torch.Generator().manual_seed(0)
    lp = torch.randn(3, 2, 4, 5, 6, generator=g).log_softmax(2)
    t = torch.randint(0, 4, (3, 5, 6), generator=g)
    flat_lp = lp.permute(0, 3, 4, 1, 2).reshape(-1, 2, 4)
    assert expected_calibration_error(lp, t, dense=True) == pytest.approx(expected_calibration_error(flat_lp, t.reshape(-1)))
    with pytest.raises(ValueError, match='expected targets of shape'): expected_calibration_error(lp, t[:, 0], dense=True)


@given(st.integers(0, 1000), st.floats(0.01, 1.0), st.integers(1, 5))
def test_mahalanobis_vs_numpy(seed, a, chunk):
    rng = np.random.default_rng(seed)
    D, C = 4, 3
    ref = rng.normal(size=(30, D)) + np.repeat(np.eye(C, D) * 3, 10, 0)
    y = np.repeat(np.arange(C), 10)
    q = rng.normal(size=(7, D)) * 3
    means = np.stack([ref[y == c].mean(0) for c in range(C)])
    cov = np.cov((ref - means[y]).T, bias=True)
    cov = (1 - a) * cov + a * np.trace(cov) / D * np.eye(D)
    VI = np.linalg.inv(cov)
    want = np.sqrt(np.min([[(x - m) @ VI @ (x - m) for m in means] for x in q], 1))
    got = Mahalanobis(shrinkage=a, chunk_size=chunk).fit(torch.tensor(ref), torch.tensor(y))(torch.tensor(q))
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-7, atol=1e-9)


def test_mahalanobis_errors():
    with pytest.raises(ValueError, match=r'shrinkage in \[0, 1\]'): Mahalanobis(shrinkage=2)
    with pytest.raises(ValueError, match='shape \\[N, D\\]'): Mahalanobis().fit(torch.zeros(5))
    m = Mahalanobis().fit(torch.randn(10, 2))
    with pytest.raises(ValueError, match='D=2'): m(torch.zeros(3, 3))


@given(st.integers(0, 1000), st.integers(1, 6), st.integers(1, 9), st.sampled_from(['cosine', 'euclidean']))
def test_knn_vs_brute_force(seed, k, chunk, metric):
    rng = np.random.default_rng(seed)
    q, ref = rng.normal(size=(11, 3)), rng.normal(size=(8, 3))
    want = np.sort(cdist(q, ref, metric=metric), 1)[:, k - 1]
    got = knn_distance(torch.tensor(q), torch.tensor(ref), k=k, metric=metric, chunk_size=chunk)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-6, atol=1e-9)
    assert got.dtype == torch.float64


@given(st.integers(10, 200), st.sampled_from([0.8, 0.9, 0.95]), st.sampled_from([0.05, 0.1, 0.2]))
def test_triage_counts_from_quantiles(n, qa, qp):
    scores = torch.randperm(n, generator=torch.Generator().manual_seed(n)).double()  # distinct 0..n-1
    df = triage(scores, annotate=qa, pseudo=qp)
    # np.quantile with linear interpolation on 0..n-1 is q*(n-1): count the integers at or beyond it
    assert (df.group == 'annotate').sum() == n - math.ceil(qa * (n - 1) - 1e-9)
    assert (df.group == 'pseudo-label').sum() == math.floor(qp * (n - 1) + 1e-9) + 1
    assert len(df) == n and set(df.group) <= set(GROUPS)
    assert (df.group == 'out-of-distribution').sum() == 0


def test_triage_ood_precedence_and_reasons():
    scores = torch.tensor([0.1, 0.1, 0.5, 0.9, 0.9])
    dist = torch.tensor([5., 0., 5., 5., 0.])
    df = triage(scores, dist, annotate=0.8, pseudo=0.2, ood=1.0, by='value', score_name='bald')
    assert df.group.tolist() == ['out-of-distribution', 'pseudo-label', 'out-of-distribution', 'annotate', 'annotate']
    assert df.far.tolist() == [True, False, True, True, False]
    assert df.reason[1] == 'bald 0.1 <= 0.2 and distance 0 < 1'
    assert 'also far' in df.reason[3] and 'also far' not in df.reason[4]
    assert list(df.columns) == ['bald', 'distance', 'far', 'group', 'reason']
    with pytest.raises(ValueError, match='distances of length 5'): triage(scores, dist[:2])
    with pytest.raises(ValueError, match='finite distances'): triage(scores, dist.clone().fill_(float('nan')))


# ---------------------------------------------------------------- UncertaintyInterpretation
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
from torch import nn
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat
from fastai.callback.progress import ProgressCallback  # registers Learner.no_bar
from fastai_active.acquisition.scores import entropy
from fastai_active.uncertainty.core import PosteriorSampler
from fastai_active.interpret.interpretation import UncertaintyInterpretation


def bald(log_probs, dense=False):
    "BALD from its closed form H[mean_k p_k] - mean_k H[p_k], in numpy (class axis 2, sample axis 1)"
    p = log_probs.double().exp().numpy()
    mean = p.mean(1)
    with np.errstate(divide='ignore', invalid='ignore'):
        h = lambda q, ax: -np.nansum(np.where(q > 0, q * np.log(q), 0.), axis=ax)
        return torch.tensor(h(mean, 1) - h(p, 2).mean(1))


def test_interpretation_with_bald_classification():
    g = torch.Generator().manual_seed(0)
    lp = torch.randn(30, 4, 3, generator=g, dtype=torch.float64).mul(2).log_softmax(2)
    t = torch.randint(0, 3, (30,), generator=g)
    interp = UncertaintyInterpretation(lp, t, score=bald)
    assert interp.score_name == 'bald'
    np.testing.assert_allclose(interp.scores.numpy(), bald(lp).numpy())
    # BALD of identical samples is 0 (no disagreement), and never negative
    assert (interp.scores > -1e-12).all()
    same = UncertaintyInterpretation(lp[:, :1].repeat(1, 4, 1), t, score=bald)
    np.testing.assert_allclose(same.scores.numpy(), 0, atol=1e-12)
    mean_p = lp.exp().mean(1)
    np.testing.assert_allclose(interp.perf.nll.values, -np.log(mean_p[torch.arange(30), t].numpy()))
    np.testing.assert_array_equal(interp.perf.correct.values, (mean_p.argmax(1) == t).double().numpy())
    corr = interp.correlation().set_index(['perf', 'method'])
    ref = stats.spearmanr(bald(lp).numpy(), interp.perf.nll.values)
    assert corr.loc[('nll', 'spearman'), 'r'] == pytest.approx(ref.statistic)
    df = interp.triage(annotate=0.9, pseudo=0.1)
    assert df.reason[int(interp.scores.argmax())].startswith('bald ')
    assert (df.group == 'annotate').sum() == 3 and (df.group == 'pseudo-label').sum() == 3
    assert list(df.columns) == ['bald', 'group', 'reason', 'correct', 'nll']


def test_interpretation_dense_bald_mean_and_max():
    g = torch.Generator().manual_seed(1)
    lp = torch.randn(5, 3, 2, 4, 4, generator=g).log_softmax(2)
    masks = torch.randint(0, 2, (5, 4, 4), generator=g)
    per_pixel = bald(lp.permute(0, 3, 4, 1, 2).reshape(-1, 3, 2)).reshape(5, 16)
    np.testing.assert_allclose(UncertaintyInterpretation(lp, masks, score=bald).scores.numpy(), per_pixel.mean(1).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(UncertaintyInterpretation(lp, masks, score=bald, reduce='max').scores.numpy(), per_pixel.max(1).values.numpy(), rtol=1e-5, atol=1e-6)
    interp = UncertaintyInterpretation(lp, masks, score=bald, reduce=lambda s: s.flatten(1).quantile(0.5, dim=1))
    np.testing.assert_allclose(interp.scores.numpy(), per_pixel.quantile(0.5, dim=1).numpy(), rtol=1e-5, atol=1e-6)
    preds = lp.exp().mean(1).argmax(1)
    want = [((preds[i] == 1) & (masks[i] == 1)).sum().item() / max(((preds[i] == 1) | (masks[i] == 1)).sum().item(), 1)
            if ((preds[i] == 1) | (masks[i] == 1)).any() else 1.0 for i in range(5)]
    np.testing.assert_allclose(interp.perf.iou.values, want)
    with pytest.raises(ValueError, match='to return one score per item'):
        UncertaintyInterpretation(lp, masks, score=bald, reduce=lambda s: s.flatten())


def _tensor_dls(x, y, bs=8):
    n = len(x) * 2 // 3
    return DataLoaders(DataLoader(list(zip(x[:n], y[:n])), bs=bs), DataLoader(list(zip(x[n:], y[n:])), bs=bs))


def test_from_learner_classification_embeddings_and_mahalanobis():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(45, 3, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    dls = _tensor_dls(x, y)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Sequential(nn.Linear(3, 5), nn.Tanh()), nn.Linear(5, 2))
    learn = Learner(dls, model, loss_func=CrossEntropyLossFlat())
    with learn.no_bar():
        interp = UncertaintyInterpretation.from_learner(learn, ref_dl=dls.train, id_dl=dls.train, shrinkage=0.2)
    with torch.no_grad():
        e = model[0](x).double().numpy()  # the input of the last nn.Linear (`penultimate_layer`), the default layer
        logits = model(x[30:])
    np.testing.assert_allclose(interp.embs.numpy(), e[30:], rtol=1e-5, atol=1e-6)
    ref, yr = e[:30], y[:30].numpy()
    means = np.stack([ref[yr == c].mean(0) for c in (0, 1)])
    cov = np.cov((ref - means[yr]).T, bias=True)
    cov = 0.8 * cov + 0.2 * np.trace(cov) / 5 * np.eye(5)
    VI = np.linalg.inv(cov)
    d = lambda q: np.sqrt(min((q - m) @ VI @ (q - m) for m in means))
    np.testing.assert_allclose(interp.distances.numpy(), [d(q) for q in e[30:]], rtol=1e-4)
    np.testing.assert_allclose(interp.ref_distances.numpy(), [d(q) for q in e[:30]], rtol=1e-4)
    np.testing.assert_allclose(interp.scores.numpy(), entropy(logits.log_softmax(1)[:, None]).numpy(), rtol=1e-5)
    np.testing.assert_array_equal(interp.perf.correct.values, (logits.argmax(1) == y[30:]).float().numpy())
    # the ood threshold is a quantile of the reference items' distances
    df = interp.triage(ood=0.5)
    assert df.attrs['thresholds']['ood'] == pytest.approx(np.quantile(interp.ref_distances.numpy(), 0.5))


def test_from_learner_default_embeddings_are_the_extractors():
    "The default layer is `penultimate_layer`'s input, as in the loop and the chunked scorer: in a fastai-like head the"
    "features after the last BatchNorm, before the dropout in front of the last Linear (not the body's output)"
    g = torch.Generator().manual_seed(5)
    x = torch.randn(45, 3, generator=g)
    y = (x[:, 0] > 0).long()
    dls = _tensor_dls(x, y)
    torch.manual_seed(0)
    head = nn.Sequential(nn.BatchNorm1d(6), nn.Dropout(0.5), nn.Linear(6, 4), nn.ReLU(), nn.BatchNorm1d(4), nn.Dropout(0.5), nn.Linear(4, 2))
    model = nn.Sequential(nn.Sequential(nn.Linear(3, 6), nn.ReLU()), head)
    with torch.no_grad():  # BatchNorm statistics away from the identity, so every layer changes the features
        for bn in (head[0], head[4]): bn.running_mean.uniform_(-1, 1); bn.running_var.uniform_(0.5, 2)
    learn = Learner(dls, model, loss_func=CrossEntropyLossFlat())
    with learn.no_bar():
        interp = UncertaintyInterpretation.from_learner(learn, ref_dl=dls.train, ood='knn', k=1, metric='euclidean')
    model.eval()
    with torch.no_grad(): e = head[:5](model[0](x)).double().numpy()  # computed here, layer by layer
    assert interp.embs.shape == (15, 4)
    np.testing.assert_allclose(interp.embs.numpy(), e[30:], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(interp.distances.numpy(), cdist(e[30:], e[:30]).min(1), rtol=1e-4, atol=1e-6)
    with learn.no_bar(): body = UncertaintyInterpretation.from_learner(learn, embed=model[0])  # a module: its output
    with torch.no_grad(): np.testing.assert_allclose(body.embs.numpy(), model[0](x[30:]).numpy(), rtol=1e-5, atol=1e-6)
    assert not any(m._forward_hooks for m in model.modules())


class _Scaled(PosteriorSampler):
    "K=3 'posterior samples': the model's logits scaled by 0.5, 1 and 2"
    def __call__(self, learns, dl):
        logits = learns[0].get_preds(dl=dl, act=lambda o: o)[0]
        return torch.stack([(logits * s).log_softmax(1) for s in (0.5, 1., 2.)], 1)


def test_from_learner_segmentation_sampler_knn_and_plots():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(24, 3, 6, 6, generator=g)
    y = (x[:, 0] > 0).long()
    dls = _tensor_dls(x, y)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 2, 1))
    learn = Learner(dls, model, loss_func=CrossEntropyLossFlat(axis=1))
    with learn.no_bar():
        interp = UncertaintyInterpretation.from_learner(learn, sampler=_Scaled(), score=bald, ref_dl=dls.train,
                                                        embed=model[0], ood='knn', k=2, metric='euclidean')
        # no nn.Linear, so no default layer: refused before any pass, naming `embed=`
        with pytest.raises(ValueError, match=r'Sequential has no nn.Linear.*pass `embed=`'):
            UncertaintyInterpretation.from_learner(learn, sampler=_Scaled(), ref_dl=dls.train)
    assert interp.dense and interp.log_probs.shape == (8, 3, 2, 6, 6)
    with torch.no_grad():
        feats = model[0](x).mean((2, 3)).double().numpy()
        logits = model(x[16:])
    lp = torch.stack([(logits * s).log_softmax(1) for s in (0.5, 1., 2.)], 1)
    np.testing.assert_allclose(interp.scores.numpy(), bald(lp.permute(0, 3, 4, 1, 2).reshape(-1, 3, 2)).reshape(8, 36).mean(1).numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(interp.embs.numpy(), feats[16:], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(interp.distances.numpy(), np.sort(cdist(feats[16:], feats[:16]), 1)[:, 1], rtol=1e-4, atol=1e-6)
    preds = lp.exp().mean(1).argmax(1)
    np.testing.assert_allclose(interp.perf.iou.values, iou(preds == 1, y[16:] == 1).numpy())
    assert interp.ece() == pytest.approx(expected_calibration_error(lp, y[16:], dense=True))

    ax = interp.plot_scatter(annotate=0.75, pseudo=0.25, ood=0.9)
    assert sum(len(c.get_offsets()) for c in ax.collections) == 8  # every item drawn once
    assert len(ax.patches) == 3  # pseudo-label, ignore and annotate regions
    assert ax.get_xlabel() == 'bald' and ax.get_ylabel() == 'iou'
    ax = interp.plot_reliability(n_bins=10)
    assert len(ax.patches) == 2 * (interp.calibration(n_bins=10)['count'] > 0).sum()
    axs = interp.plot_top_uncertain(2)
    top = int(interp.scores.argmax())
    assert axs.shape == (2, 4) and axs[0, 0].get_title().startswith(f'item {top}:')
    with pytest.raises(ValueError, match='metric in'): interp.plot_scatter(metric='accuracy')
    plt.close('all')

    # an image-level score (reduce=None): its own scores, entropy maps in the plots
    with learn.no_bar():
        img = UncertaintyInterpretation.from_learner(learn, sampler=_Scaled(), score=expected_iou_loss, reduce=None)
    np.testing.assert_allclose(img.scores.numpy(), expected_iou_loss(lp).numpy(), rtol=1e-4, atol=1e-6)
    assert img.pixel_scores is None and img.correlation().set_index(['perf', 'method']).loc[('iou', 'spearman'), 'r'] <= 1
    axs = img.plot_top_uncertain(2)
    assert axs[0, 0].get_title().startswith(f'item {int(img.scores.argmax())}: expected_iou_loss')
    plt.close('all')


def test_plot_top_uncertain_classification_titles():
    g = torch.Generator().manual_seed(4)
    lp = torch.randn(6, 1, 3, generator=g).log_softmax(2)
    dl = DataLoader(list(zip(torch.rand(6, 1, 5, 5, generator=g), torch.zeros(6, dtype=torch.long))), bs=3)
    interp = UncertaintyInterpretation(lp, torch.zeros(6, dtype=torch.long), dl=dl)
    axs = interp.plot_top_uncertain(3)
    order = torch.argsort(interp.scores, descending=True)[:3].tolist()
    assert [ax.get_title().split(':')[0] for ax in axs.flat[:3]] == [f'item {i}' for i in order]
    with pytest.raises(ValueError, match='no dl'): UncertaintyInterpretation(lp).plot_top_uncertain(2)
    plt.close('all')


@given(st.integers(0, 2**16), st.integers(4, 40), st.integers(2, 6), st.randoms(use_true_random=False))
def test_spearman_interval_does_not_depend_on_the_order_of_the_pairs(seed, n, levels, rnd):
    "The bootstrap resamples the pairs in a canonical order: any order of the same pairs gives the same interval, or the same refusal"
    rng = np.random.default_rng(seed)
    x, y = rng.integers(0, levels, n).astype(float), rng.integers(0, levels, n).astype(float)  # heavy ties, as with IoU 1s
    perm = list(range(n)); rnd.shuffle(perm)
    def outcome(a, b):
        try: return spearman(a, b, n_resamples=200)
        except ValueError as e: return str(e)
    assert outcome(x[perm], y[perm]) == outcome(x, y)
