"""The image-level segmentation scores against Monte Carlo: labels sampled under each rule's own assumption.

For an empty predicted mask `M`, `E[IoU(M, Y)] = P(Y empty)`, which each `empty=` rule fixes by an assumption about
how the pixels of the label go together; sampling labels under that assumption must give the closed form. For a
non-empty `M`, `expected_iou_loss` is the ratio of the expected intersection and union under each sample (pixels'
marginals only), which sampling estimates too; `mask_disagreement` is the IoU with the samples' own argmax masks.
The references here are written with numpy, apart from the library.
"""
import math

import numpy as np
import torch
from hypothesis import given, settings, strategies as st, HealthCheck

from fastai_active.acquisition.scores import (EMPTY_DEFAULT, EMPTY_RULES, empty_label_prob, expected_iou_loss, fit_empty_area,
                                  mask_disagreement)

N_DRAWS = 6000
H, W = 4, 4


def _probs(seed, N, K, C, empty_share=0.5):
    "Random posteriors `[N, K, C, H, W]` (float64); about `empty_share` of the images get a background-heavy mean"
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(C, 0.4), size=(N, K, H, W)).transpose(0, 1, 4, 2, 3)   # [N, K, C, H, W]
    bg = np.zeros_like(p)
    bg[:, :, 0] = 1
    for n in range(N):
        if rng.random() < empty_share:   # most samples lean to the background: the mean's argmax mask is empty
            lam = np.full(K, 0.95) if K >= 3 else np.full(K, 0.6)
            if K >= 3: lam[rng.integers(K)] = 0   # one sample free: its own mask may be non-empty
            p[n] = lam[:, None, None, None] * bg[n] + (1 - lam[:, None, None, None]) * p[n]
    # probabilities exactly 0 and 1 on some pixels: log-probs of -inf and 0 must work
    hard = rng.random((N, K, H, W)) < 0.1
    cls = rng.integers(C, size=(N, K, H, W))
    onehot = np.moveaxis(np.eye(C)[cls], -1, 2)
    p = np.where(hard[:, :, None], onehot, p)
    return p


def _sample_labels(p_K_C_P, rule, rng, n=N_DRAWS, area_blocks=None):
    "Labels `[n, P]` drawn from the posterior predictive of one image: a sample k, then the pixels by `rule`"
    K, C, P = p_K_C_P.shape
    ks = rng.integers(K, size=n)
    p = p_K_C_P[ks]                                    # [n, C, P]
    if rule == 'samples': return p.argmax(1)           # the label is sample k's argmax mask
    q_fg = 1 - p[:, 0]                                 # [n, P] P(any foreground)
    if rule == 'independent': u = rng.random((n, P))
    elif rule == 'nested': u = np.repeat(rng.random((n, 1)), P, 1)        # one uniform for every pixel
    else: u = rng.random((n, P // area_blocks)).repeat(area_blocks, 1)   # one uniform per block of pixels
    fg = u < q_fg
    # which foreground class, given foreground: by its share of q_fg (marginals p_c kept); shared within a block
    cum = np.cumsum(p[:, 1:] / np.clip(q_fg, 1e-300, None)[:, None], 1)   # [n, C-1, P]
    v = rng.random((n, P)) if rule == 'independent' else (
        np.repeat(rng.random((n, 1)), P, 1) if rule == 'nested' else rng.random((n, P // area_blocks)).repeat(area_blocks, 1))
    cls = 1 + (v[:, None] > cum).sum(1).clip(max=C - 2)
    return np.where(fg, cls, 0)


def _iou(pred_P, labels_n_P, C):
    "IoU of one predicted mask with each label, averaged over the foreground classes present in the prediction"
    present = [c for c in range(1, C) if (pred_P == c).any()]
    if not present: return (labels_n_P == 0).all(1).astype(float)   # an empty M: 1 if the label is empty too
    out = []
    for c in present:
        m, y = pred_P == c, labels_n_P == c
        out.append((y & m).sum(1) / (y | m).sum(1))
    return np.mean(out, 0)


def _mc_expected_iou_loss(p_K_C_P, rule, rng, area_blocks=None):
    "Monte Carlo `1 - E[IoU]`: exact sampling for an empty M; for a non-empty M the ratio of sampled expectations"
    K, C, P = p_K_C_P.shape
    pred = p_K_C_P.mean(0).argmax(0)
    if not (pred > 0).any():
        return 1 - _iou(pred, _sample_labels(p_K_C_P, rule, rng, area_blocks=area_blocks), C).mean()
    ious = []
    for k in range(K):   # per sample: E|M & Y| / E|M | Y| from sampled labels, mean over the classes in M
        y = _sample_labels(p_K_C_P[k:k+1], 'independent', rng)
        per_c = [((y == c) & (pred == c)).sum(1).mean() / ((y == c) | (pred == c)).sum(1).mean()
                 for c in range(1, C) if (pred == c).any()]
        ious.append(np.mean(per_c))
    return 1 - np.mean(ious)


def _tol(value):
    "Five standard errors of a mean of N_DRAWS values in [0, 1], and a little for the ratio of two means"
    return 5 * math.sqrt(max(value * (1 - value), 0.01) / N_DRAWS) + 0.01


posteriors = st.tuples(st.integers(0, 2**31), st.integers(1, 4), st.integers(2, 3))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(posteriors, st.sampled_from(['nested', 'independent', 'samples']))
def test_expected_iou_loss_matches_sampling(params, rule):
    seed, K, C = params
    if rule == 'samples' and K == 1: K = 2
    p = _probs(seed, 3, K, C)
    lp = torch.from_numpy(p).log()
    got = expected_iou_loss(lp, empty=rule).numpy()
    rng = np.random.default_rng(seed + 1)
    for n in range(3):
        want = _mc_expected_iou_loss(p[n].reshape(K, C, -1), rule, rng)
        assert abs(got[n] - want) <= _tol(want), (rule, n, got[n], want)


@settings(max_examples=25, deadline=None)
@given(posteriors, st.sampled_from([1, 2, 4, 8, 16]))
def test_correlation_area_is_exact_for_blocks(params, area):
    "Blocks of `area` pixels with one probability, foreground together: P(empty) = prod_i (1 - p_i)^(1 / area)"
    seed, K, C = params
    rng = np.random.default_rng(seed)
    p = _probs(seed, 2, K, C, empty_share=1.0).reshape(2, K, C, -1)
    # make the probabilities constant on blocks of `area` consecutive pixels
    blocks = p.reshape(2, K, C, -1, area)[..., :1].repeat(area, -1).reshape(2, K, C, H, W)
    got = empty_label_prob(torch.from_numpy(blocks).log(), empty=float(area)).numpy()
    for n in range(2):
        labels = _sample_labels(blocks[n].reshape(K, C, -1), 'area', rng, area_blocks=area)
        want = (labels == 0).all(1).mean()
        assert abs(got[n] - want) <= _tol(want), (area, n, got[n], want)
        # the closed form by hand: mean over samples of the product over blocks of P(block background)
        by_hand = np.mean([np.prod(blocks[n, k, 0].reshape(-1, area)[:, 0]) for k in range(K)])
        np.testing.assert_allclose(got[n], by_hand, rtol=1e-12, atol=1e-300)


@settings(max_examples=25, deadline=None)
@given(posteriors.filter(lambda t: t[1] >= 2), st.sampled_from(['nested', 'independent', 'samples', 4.0]))
def test_mask_disagreement_against_the_samples_masks(params, rule):
    "A non-empty M: the mean IoU with each sample's argmax mask; an empty M: the mean of P_k(empty) under the rule"
    seed, K, C = params
    p = _probs(seed, 3, K, C)
    lp = torch.from_numpy(p).log()
    got = mask_disagreement(lp, empty=rule).numpy()
    for n in range(3):
        flat = p[n].reshape(K, C, -1)
        pred = flat.mean(0).argmax(0)
        samples = flat.argmax(1)
        if (pred > 0).any():
            ious = []
            for k in range(K):
                present = [c for c in range(1, C) if (pred == c).any() or (samples[k] == c).any()]
                ious.append(np.mean([((samples[k] == c) & (pred == c)).sum() / ((samples[k] == c) | (pred == c)).sum()
                                     for c in present]))
            want = 1 - np.mean(ious)
        elif rule == 'samples': want = 1 - (samples == 0).all(1).mean()
        else:
            bg = flat[:, 0]
            per_k = (bg.min(1) if rule == 'nested' else bg.prod(1) if rule == 'independent'
                     else np.minimum(bg.min(1), bg.prod(1) ** (1 / rule)))
            want = 1 - per_k.mean()
        np.testing.assert_allclose(got[n], want, rtol=1e-9, atol=1e-12)


def test_rules_bracket_each_other():
    "independent <= area <= nested for P(empty), and the area's limits are the two rules"
    p = _probs(3, 20, 3, 3, empty_share=1.0)
    lp = torch.from_numpy(p).log()
    ind, nes = empty_label_prob(lp, empty='independent'), empty_label_prob(lp, empty='nested')
    for a in (1.5, 4., 30.):
        mid = empty_label_prob(lp, empty=a)
        assert ((ind <= mid + 1e-12) & (mid <= nes + 1e-12)).all()
    torch.testing.assert_close(empty_label_prob(lp, empty=1), ind)
    torch.testing.assert_close(empty_label_prob(lp, empty=math.inf), nes)
    # the Frechet bounds of any joint law: 1 - min(1, sum p) <= P(empty) <= 1 - max p
    q = 1 - p[:, :, 0].reshape(20, 3, -1)
    assert (ind.numpy() >= (1 - q.sum(-1).clip(max=1)).mean(1) - 1e-12).all()


def test_stable_at_zero_and_one():
    "Log-probs of -inf and 0: no NaN, and a certain empty label (or a certain object) gives P(empty) 1 (or 0)"
    certain_empty = torch.zeros(1, 2, 2, 32, 32, dtype=torch.float64)
    certain_empty[:, :, 0] = 1
    one_fg = certain_empty.clone()
    one_fg[:, :, :, 5, 5] = torch.tensor([0., 1.], dtype=torch.float64)   # a sure foreground pixel (C is the last index here)
    for rule in list(EMPTY_RULES) + [3.0]:
        torch.testing.assert_close(empty_label_prob(certain_empty.log(), empty=rule), torch.ones(1, dtype=torch.float64))
        torch.testing.assert_close(expected_iou_loss(certain_empty.log(), empty=rule), torch.zeros(1, dtype=torch.float64))
        assert not expected_iou_loss(one_fg.log(), empty=rule).isnan().any()
        if rule != 'samples': torch.testing.assert_close(empty_label_prob(one_fg.log(), empty=rule), torch.zeros(1, dtype=torch.float64))
    # a 64 x 64 image at 1e-3 foreground everywhere: the product underflows nothing in log space
    faint = torch.full((1, 1, 64 * 64), 1e-3, dtype=torch.float32)
    lp = torch.stack([1 - faint, faint], 2).log()
    torch.testing.assert_close(empty_label_prob(lp, empty='independent'), torch.tensor([0.999 ** 4096]), rtol=1e-3, atol=0)


def test_bad_rules_are_refused():
    lp = torch.randn(2, 1, 2, 3, 3).log_softmax(2)
    for bad in ('Nested', 'product', 0.5, 0, -2, float('nan'), True, None, [1]):
        try:
            expected_iou_loss(lp, empty=bad)
        except ValueError as e:
            assert 'correlation area >= 1' in str(e) and repr(bad) in str(e), str(e)
        else: raise AssertionError(f"empty={bad!r} was accepted")
    try: expected_iou_loss(lp, empty='samples')
    except ValueError as e: assert 'got K=1' in str(e), str(e)
    else: raise AssertionError("empty='samples' with K=1 was accepted")
    assert EMPTY_DEFAULT in EMPTY_RULES or isinstance(EMPTY_DEFAULT, float)


def test_fit_empty_area_recovers_the_blocks():
    "Labels drawn from blocks of 4 pixels that go together: the fitted area is near 4, not 1 and not infinite"
    rng = np.random.default_rng(0)
    N, area = 400, 4
    q = rng.uniform(0, 0.4, size=(N, 16 // area)).repeat(area, 1)     # block-constant foreground probabilities
    labels = (rng.random((N, 16 // area)).repeat(area, 1) < q).astype(np.int64)
    lp = torch.from_numpy(np.stack([1 - q, q], 1)[:, None]).log().reshape(N, 1, 2, 4, 4)
    fitted = fit_empty_area(lp, torch.from_numpy(labels).reshape(N, 4, 4))
    assert 2 <= fitted <= 8, fitted
    # nested labels (one uniform for the whole image): the fit goes towards the nested end (with four blocks a large
    # area is close to nested on most images, and the likelihood is flat once it reaches it)
    nested = (rng.random((N, 1)) < q).astype(np.int64)
    fitted = fit_empty_area(lp, torch.from_numpy(nested).reshape(N, 4, 4))
    assert fitted > 8, fitted
    gap = (empty_label_prob(lp, empty=fitted) - empty_label_prob(lp, empty='nested')).abs().mean()
    assert gap < 0.01 < (empty_label_prob(lp, empty=4.) - empty_label_prob(lp, empty='nested')).abs().mean(), gap


def test_fit_empty_area_refuses_what_it_cannot_fit():
    lp = torch.randn(4, 2, 2, 3, 3, dtype=torch.float64).log_softmax(2)
    def refused(targs, text, exc=ValueError, **kw):
        try: fit_empty_area(lp, targs, **kw)
        except exc as e: assert text in str(e), str(e)
        else: raise AssertionError(f"accepted {text}")
    refused(torch.zeros(4, 3, 3, dtype=torch.long), 'got 4 empty of 4')
    refused(torch.ones(4, 3, 3, dtype=torch.long), 'got 0 empty of 4')
    refused(torch.zeros(4, 9, dtype=torch.long), 'expected class masks of shape (4, 3, 3)')
    refused(torch.zeros(4, 3, 3), 'integer class masks', TypeError)
    refused(torch.full((4, 3, 3), 2), 'class indices in [0, 1]')
    ok = torch.zeros(4, 3, 3, dtype=torch.long)
    ok[0, 1, 1] = 1
    refused(ok, 'candidate areas >= 1', areas=[0.5, 2.])
