"Acquisition scores and selection: closed forms, independent references, invariants, and batchbald_redux fixtures."
import itertools, json, math, pathlib, warnings

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

from fastai_active.all import (
    entropy, conditional_entropy, bald, margin, least_confidence, variation_ratios, mean_std, reduce_dense,
    expected_iou_loss, mask_disagreement,
    top_k, random_batch, stochastic_batch, batchbald, batch_mutual_information,
    TopScores, StochasticAcquisition, BatchBALDAcquisition, RandomAcquisition, as_acquisition)
from fastai_active.acquisition.selection import random
from fastai_active.acquisition.scores import needs_samples
from fastai_active.acquisition.joint import _exact_joint, _sampled_joint
from fastai_active.core import torch_generator

FIXTURES = json.loads((pathlib.Path(__file__).parent / 'fixtures' / 'batchbald_redux.json').read_text())
SCORES = [entropy, bald, margin, least_confidence, variation_ratios, mean_std]
dtypes = st.sampled_from([torch.float32, torch.float64])


def make_log_probs(seed, N, K, C, dtype=torch.float64, scale=3.0, zeros=0.0):
    "Random posterior log-probs; a fraction `zeros` of the probabilities set to exactly 0 (one class always kept)"
    g = torch_generator(seed)
    logits = torch.randn(N, 1, C, generator=g, dtype=torch.float64) * scale
    logits = logits + torch.randn(N, K, C, generator=g, dtype=torch.float64) * scale / 2
    if zeros:
        mask = torch.rand(N, K, C, generator=g, dtype=torch.float64) < zeros
        mask[..., 0] &= ~mask[..., 1:].all(-1)
        logits = logits.masked_fill(mask, -math.inf)
    return logits.log_softmax(-1).to(dtype)


def np_reference(lp):
    "Textbook formulas in numpy float64, on probabilities"
    p = lp.double().exp().numpy()
    pm = p.mean(1)
    with np.errstate(divide='ignore', invalid='ignore'):
        H = -np.nansum(np.where(pm > 0, pm * np.log(pm), 0), 1)
        EH = -np.nansum(np.where(p > 0, p * np.log(p), 0), 2).mean(1)
    srt = np.sort(pm, 1)
    K = p.shape[1]
    votes = np.stack([np.bincount(row, minlength=p.shape[2]) for row in p.argmax(2)])
    return dict(entropy=H, bald=H - EH, conditional_entropy=EH, margin=1 - (srt[:, -1] - srt[:, -2]),
                least_confidence=1 - pm.max(1), variation_ratios=1 - votes.max(1) / K,
                mean_std=p.std(1).mean(1))


def brute_joint_mi(lp, idxs):
    "I[y_B; w] by enumerating the joint labellings with itertools, float64"
    p = lp.double().exp()[list(idxs)]  # [m, K, C]
    m, K, C = p.shape
    H = 0.
    for ys in itertools.product(range(C), repeat=m):
        pk = torch.ones(K, dtype=torch.float64)
        for i, y in enumerate(ys): pk = pk * p[i, :, y]
        q = pk.mean().item()
        if q > 0: H -= q * math.log(q)
    EH = -(torch.xlogy(p, p)).sum(2).mean(1).sum().item()
    return H - EH


# ---------------------------------------------------------------- scores: closed forms and references
@given(st.integers(1, 6), st.integers(1, 5), st.integers(1, 12), dtypes)
def test_uniform_predictions_have_entropy_log_c(N, K, C, dtype):
    lp = torch.full((N, K, C), -math.log(C), dtype=dtype)
    torch.testing.assert_close(entropy(lp), torch.full((N,), math.log(C), dtype=dtype))
    torch.testing.assert_close(least_confidence(lp), torch.full((N,), 1 - 1 / C, dtype=dtype))


@given(st.integers(0, 2**31), st.integers(1, 8), st.integers(2, 8), st.integers(2, 6), dtypes, st.sampled_from([0., .3]))
def test_identical_samples_have_no_bald(seed, N, K, C, dtype, zeros):
    lp = make_log_probs(seed, N, 1, C, dtype, zeros=zeros).expand(N, K, C)
    assert (bald(lp) == 0).all() or bald(lp).abs().max() < 1e-6
    assert (variation_ratios(lp) == 0).all()
    assert mean_std(lp).abs().max() < 1e-6


@given(st.integers(0, 2**31), st.integers(1, 20), st.integers(1, 8), st.integers(2, 8), dtypes, st.sampled_from([0., .4]),
       st.floats(0.1, 30))
def test_scores_match_numpy_reference_and_bounds(seed, N, K, C, dtype, zeros, scale):
    lp = make_log_probs(seed, N, K, C, dtype, scale=scale, zeros=zeros)
    ref = np_reference(lp)
    tol = dict(atol=1e-5, rtol=1e-4) if dtype == torch.float32 else dict(atol=1e-10, rtol=1e-9)
    for f in SCORES + [conditional_entropy]:
        if K == 1 and needs_samples(f): continue  # refused: tested on its own
        out = f(lp)
        assert out.dtype == dtype and out.shape == (N,)
        assert torch.isfinite(out).all()
        np.testing.assert_allclose(out.double().numpy(), ref[f.__name__], **tol, err_msg=f.__name__)
    if K == 1: return
    H, I = entropy(lp), bald(lp)
    assert (I >= 0).all() and (I <= H).all()
    assert (H <= math.log(C) + 1e-6).all()


@pytest.mark.parametrize('f', [bald, variation_ratios, mean_std])
def test_k1_scores_of_disagreement_are_refused(f):
    "With one posterior sample these are 0 for every item: refused, naming samplers that give K > 1 (item 4)"
    lp = make_log_probs(0, 5, 1, 4)
    with pytest.raises(ValueError, match=r"got K=1 .*MCDropout\(n_samples=20\).*DeepEnsemble"): f(lp)
    seg = make_log_probs(0, 5 * 4, 1, 4).view(5, 2, 2, 1, 4).permute(0, 3, 4, 1, 2)
    with pytest.raises(ValueError, match="got K=1"): f(seg, dense=True)
    assert needs_samples(f)


@pytest.mark.parametrize('acq', ['bald', 'powerbald', 'softmaxvariation_ratios', 'batchbald', 'mean_std'])
def test_k1_strategies_that_need_samples_are_refused_not_first_n(acq):
    "BALD/BatchBALD/PowerBALD on a deterministic pass used to pick items 0..n-1 (all scores tie at 0)"
    lp = make_log_probs(0, 12, 1, 3)
    strategy = as_acquisition(acq)
    assert strategy.needs_samples
    with pytest.raises(ValueError, match="got K=1"): strategy(lp, 4, seed=0)


def test_k1_seg_disagreement_refused_and_expected_iou_defined():
    lp = make_seg_log_probs(0, 2, 1, 2, 3, 3, scale=3.)
    with pytest.raises(ValueError, match="mask_disagreement .*got K=1"): mask_disagreement(lp)
    assert expected_iou_loss(lp).shape == (2,) and not needs_samples(expected_iou_loss)


@pytest.mark.parametrize('f', [entropy, margin, least_confidence])
def test_k1_scores_that_are_defined_do_not_warn(f):
    lp = make_log_probs(0, 5, 1, 4)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        np.testing.assert_allclose(f(lp).numpy(), np_reference(lp)[f.__name__], atol=1e-12)


def test_certain_predictions_with_exact_zeros():
    lp = torch.log(torch.tensor([[[1., 0., 0.], [1., 0., 0.]], [[1., 0., 0.], [0., 0., 1.]]]))
    torch.testing.assert_close(entropy(lp), torch.tensor([0., math.log(2)]))
    torch.testing.assert_close(bald(lp), torch.tensor([0., math.log(2)]))
    torch.testing.assert_close(margin(lp), torch.tensor([0., 1.]))
    torch.testing.assert_close(variation_ratios(lp), torch.tensor([0., .5]))


@given(st.integers(0, 2**31), st.integers(1, 4), st.integers(1, 4), st.integers(2, 5), st.integers(1, 4), st.integers(1, 3))
def test_dense_scores_are_per_pixel(seed, N, K, C, H, W):
    lp = make_log_probs(seed, N * H * W, K, C).view(N, H, W, K, C).permute(0, 3, 4, 1, 2)
    for f in SCORES:
        if K == 1 and needs_samples(f): continue
        out = f(lp, dense=True)
        assert out.shape == (N, H, W)
        expected = f(lp.permute(0, 3, 4, 1, 2).reshape(-1, K, C)).view(N, H, W)
        torch.testing.assert_close(out, expected, atol=1e-12, rtol=1e-12)


def test_reduce_dense():
    s = torch.arange(24.).view(2, 3, 4)
    torch.testing.assert_close(reduce_dense(s, 'mean'), torch.tensor([5.5, 17.5]))
    torch.testing.assert_close(reduce_dense(s, 'max'), torch.tensor([11., 23.]))
    torch.testing.assert_close(reduce_dense(s, 'topq', q=0.25), torch.tensor([10., 22.]))  # top 3 of 12


def test_scores_are_chunked_without_changing_values():
    lp = make_log_probs(1, 3000, 20, 10, torch.float32)  # 3000 items of 200 values: several chunks
    ref = np_reference(lp)
    np.testing.assert_allclose(bald(lp).double().numpy(), ref['bald'], atol=2e-6)


# ---------------------------------------------------------------- image-level segmentation scores
def make_seg_log_probs(seed, N, K, C, H, W, scale, zeros=0.0, dtype=torch.float64):
    "Random segmentation log-probs `[N, K, C, H, W]`, a fraction `zeros` of probabilities exactly 0"
    lp = make_log_probs(seed, N * H * W, K, C, dtype=torch.float64, scale=scale, zeros=zeros)  # [N*H*W, K, C]
    return lp.reshape(N, H, W, K, C).permute(0, 3, 4, 1, 2).contiguous().to(dtype)


def np_iou_scores(lp):
    "`expected_iou_loss` and `mask_disagreement` with numpy loops over images, samples and classes (float64)"
    p = lp.double().exp().numpy().reshape(lp.shape[0], lp.shape[1], lp.shape[2], -1)  # [N, K, C, P]
    N, K, C, P = p.shape
    eiou, agree = np.zeros((N, K)), np.zeros((N, K))
    for i in range(N):
        M = p[i].mean(0).argmax(0)  # predictive argmax mask [P]
        for k in range(K):
            Mk = p[i, k].argmax(0)
            soft, hard = [], []
            for c in range(1, C):
                m, pc = (M == c).astype(float), p[i, k, c]
                if m.sum() > 0: soft.append((pc * m).sum() / (pc.sum() + m.sum() - (pc * m).sum()))
                union = ((M == c) | (Mk == c)).sum()
                if union > 0: hard.append(((M == c) & (Mk == c)).sum() / union)
            # an empty predicted mask: the label is empty with probability 1 - max over pixels of P(any foreground)
            p_label_empty = 1 - max(1 - p[i, k, 0, j] for j in range(P))
            empty = not (M > 0).any()
            eiou[i, k] = p_label_empty if empty else np.mean(soft)
            agree[i, k] = p_label_empty if empty else np.mean(hard)
    return 1 - eiou.mean(1), 1 - agree.mean(1)


@given(st.integers(0, 2**31), st.integers(1, 4), st.integers(2, 4), st.integers(2, 4), st.integers(1, 4), st.integers(1, 5),
       st.floats(0.1, 60), st.sampled_from([0., .3]), dtypes)
def test_image_level_seg_scores_in_unit_range_and_match_reference(seed, N, K, C, H, W, scale, zeros, dtype):
    lp = make_seg_log_probs(seed, N, K, C, H, W, scale, zeros, dtype)
    scores = {'expected_iou_loss': expected_iou_loss(lp), 'mask_disagreement': mask_disagreement(lp)}
    for name, s in scores.items():
        assert s.shape == (N,) and s.dtype == dtype, name
        assert torch.isfinite(s).all(), (name, s)
        assert ((s >= 0) & (s <= 1)).all(), (name, s)
    if dtype == torch.float64:
        ref_eiou, ref_agree = np_iou_scores(lp)
        np.testing.assert_allclose(scores['expected_iou_loss'].numpy(), ref_eiou, atol=1e-9)
        np.testing.assert_allclose(scores['mask_disagreement'].numpy(), ref_agree, atol=1e-12)


def test_image_level_seg_scores_closed_forms():
    # a certain, correct-looking prediction expects no loss; identical samples do not disagree
    certain = torch.log(torch.tensor([[1., 0.], [0., 1.], [1., 0.]])).T.reshape(1, 1, 2, 1, 3)
    assert expected_iou_loss(certain).tolist() == [0.]
    lp = make_seg_log_probs(0, 3, 1, 3, 4, 4, scale=3.)
    torch.testing.assert_close(mask_disagreement(lp.expand(3, 5, 3, 4, 4)), torch.zeros(3, dtype=torch.float64))
    torch.testing.assert_close(expected_iou_loss(lp.expand(3, 5, 3, 4, 4)), expected_iou_loss(lp))
    # empty predicted mask, every pixel 99 % background: nested, the loss is the best pixel's foreground probability,
    # 0.01 whatever the image size (the product of background probabilities gave 1 - 0.99^100 = 0.63 on 10 x 10 and
    # 0.99997 on 32 x 32: correct empty masks were the most "uncertain" of a pool); expected_iou_loss's default, a
    # correlation area of 224 pixels, is the nested rule up to 224 pixels and 1 - 0.99^(1024 / 224) on 32 x 32
    for size in (10, 32):
        p = torch.full((1, 3, 1, size, size), 0.01, dtype=torch.float64)
        lp_empty = torch.cat([(1 - p).log(), p.log()], 2)
        torch.testing.assert_close(expected_iou_loss(lp_empty, empty='nested'), torch.tensor([0.01], dtype=torch.float64))
        torch.testing.assert_close(expected_iou_loss(lp_empty), torch.tensor([0.01 if size == 10 else 1 - 0.99 ** (1024 / 224)], dtype=torch.float64))
        torch.testing.assert_close(mask_disagreement(lp_empty), torch.tensor([0.01], dtype=torch.float64))
    # a confident, correct empty mask scores near 0, and a narrow miss (an object the samples put at 40 %, so the
    # predicted mask is empty) above both it and an object predicted at 90 % (whose sample masks agree: 0 disagreement)
    def image(p_obj, size=16):
        p = torch.full((size * size,), 0.01, dtype=torch.float64)
        p[:20] = p_obj
        p_K = torch.stack([p, p.clamp(max=p_obj * 0.9 + 0.01)])  # two samples
        return torch.stack([(1 - p_K).log(), p_K.log()], 1).view(2, 2, size, size)
    lp3 = torch.stack([image(0.01), image(0.9), image(0.4)])
    for f in (expected_iou_loss, mask_disagreement):
        s = f(lp3)
        assert s[0] < 0.02 and s[2] > max(s[0], s[1]) + 0.1, (f.__name__, s)
    assert expected_iou_loss(lp3)[0] < expected_iou_loss(lp3)[1]
    # a foreground probability of exactly 0 everywhere (log-prob -inf) is no NaN
    lp_zero = torch.cat([torch.zeros(1, 1, 1, 2, 2), torch.full((1, 1, 1, 2, 2), -math.inf)], 2)
    assert expected_iou_loss(lp_zero).tolist() == [0.]


def test_image_level_seg_scores_need_segmentation_outputs():
    with pytest.raises(ValueError, match=r'\[N, K, C, \*spatial\]'): expected_iou_loss(make_log_probs(0, 4, 2, 3))
    with pytest.raises(ValueError, match='C >= 2'): mask_disagreement(torch.zeros(2, 2, 1, 3))


# ---------------------------------------------------------------- validation
BAD_INPUTS = [
    (torch.zeros(5, 3), "shape"),
    (torch.full((4, 2, 3), 1 / 3), "log-probabilities"),   # probabilities, not log-probs
    (torch.randn(4, 2, 3), "log-probabilities"),            # raw logits
    (torch.full((4, 2, 3), math.nan), "NaN"),
    (torch.full((4, 2, 3), math.inf), "NaN or \\+inf"),
]


@pytest.mark.parametrize('f', SCORES)
@pytest.mark.parametrize('bad,msg', BAD_INPUTS)
def test_scores_reject_bad_inputs(f, bad, msg):
    with pytest.raises(ValueError, match=msg): f(bad)


@pytest.mark.parametrize('bad,msg', BAD_INPUTS)
def test_batchbald_rejects_bad_inputs(bad, msg):
    with pytest.raises(ValueError, match=msg): batchbald(bad, 1)


@pytest.mark.parametrize('select', [
    lambda lp, n: batchbald(lp, n), lambda lp, n: top_k(bald(lp), n), lambda lp, n: stochastic_batch(bald(lp), n, seed=0),
    lambda lp, n: random_batch(len(lp), n, seed=0), lambda lp, n: StochasticAcquisition(entropy, 'softrank')(lp, n, seed=0)])
def test_selection_rejects_bad_batch_sizes(select):
    lp = make_log_probs(0, 6, 3, 3)
    with pytest.raises(ValueError, match="only N=6"): select(lp, 7)
    with pytest.raises(ValueError, match="n >= 1"): select(lp, 0)
    with pytest.raises(ValueError, match="n >= 1"): select(lp, -2)


# ---------------------------------------------------------------- selection
@given(st.integers(0, 2**31), st.integers(1, 40), st.data())
def test_selections_pick_distinct_items(seed, N, data):
    n = data.draw(st.integers(1, N))
    s = torch.rand(N, generator=torch_generator(seed), dtype=torch.float64)
    for cb in [top_k(s, n), random(N, n, seed=seed), stochastic_batch(s, n, 'power', 2., seed),
               stochastic_batch(s, n, 'softmax', 5., seed), stochastic_batch(s, n, 'softrank', 1., seed)]:
        assert len(cb) == n and len(set(cb.idxs.tolist())) == n
        assert cb.idxs.min() >= 0 and cb.idxs.max() < N


@pytest.mark.parametrize('mode,beta,p', [
    ('power', 2., [1, 4, 9, 16]), ('softmax', 1., [math.e, math.e**2, math.e**3, math.e**4]),
    ('softrank', 1., [1 / 4, 1 / 3, 1 / 2, 1]), ('power', 0., [1, 1, 1, 1])])
def test_stochastic_first_pick_follows_its_distribution(mode, beta, p):
    s = torch.tensor([1., 2., 3., 4.])
    p = torch.tensor(p, dtype=torch.float64) / sum(p)
    trials = 4000
    first = torch.tensor([stochastic_batch(s, 1, mode, beta, seed=i).idxs[0].item() for i in range(trials)])
    freq = torch.bincount(first, minlength=4).double() / trials
    # 4 standard errors of a binomial frequency
    assert ((freq - p).abs() <= 4 * (p * (1 - p) / trials).sqrt() + 1e-3).all(), (freq, p)


def test_stochastic_second_pick_is_without_replacement():
    s = torch.tensor([1., 1., 2.])
    trials = 3000
    pairs = [tuple(stochastic_batch(s, 2, 'power', 1., seed=i).idxs.tolist()) for i in range(trials)]
    # P(first = 2) = 1/2, then 0 or 1 with 1/2 each: P((2, 0)) = 1/4; P((0, 2)) = 1/4 * 2/3 = 1/6
    for pair, p in [((2, 0), 1 / 4), ((0, 2), 1 / 6), ((0, 1), 1 / 4 * 1 / 3)]:
        freq = pairs.count(pair) / trials
        assert abs(freq - p) < 4 * math.sqrt(p * (1 - p) / trials), (pair, freq, p)


@given(st.integers(0, 2**31), st.integers(2, 30), st.integers(2, 6), st.integers(2, 5), dtypes)
def test_batchbald_n1_is_bald_argmax(seed, N, K, C, dtype):
    lp = make_log_probs(seed, N, K, C, dtype)
    cb = batchbald(lp, 1)
    b = bald(lp)
    assert b[cb.idxs[0]] == b.max()
    torch.testing.assert_close(cb.scores[0], b.max())


@given(st.integers(0, 2**31), st.integers(4, 25), st.integers(1, 6), st.integers(2, 4), st.integers(2, 4),
       st.sampled_from([0., .3]), st.booleans())
def test_batchbald_exact_scores_are_joint_mutual_information(seed, N, K, C, n, zeros, lazy):
    if K == 1: K = 2  # one sample is refused
    lp = make_log_probs(seed, N, K, C, zeros=zeros)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        cb = batchbald(lp, n, num_samples=C ** (n - 1), lazy=lazy, chunk_size=64)
    assert len(set(cb.idxs.tolist())) == n
    for m in range(1, n + 1):
        assert cb.scores[m - 1].item() == pytest.approx(brute_joint_mi(lp, cb.idxs[:m].tolist()), abs=1e-10)
        assert batch_mutual_information(lp, cb.idxs[:m]) == pytest.approx(brute_joint_mi(lp, cb.idxs[:m].tolist()), abs=1e-10)
    # greedy: no other item would have given a larger joint MI at the last step
    rest = [i for i in range(N) if i not in cb.idxs.tolist()]
    best_alternative = max(brute_joint_mi(lp, cb.idxs[:-1].tolist() + [i]) for i in rest) if rest else -math.inf
    assert cb.scores[-1].item() >= best_alternative - 1e-9


@pytest.mark.parametrize('seed', range(4))
def test_lazy_and_exhaustive_greedy_agree_float32(seed):
    lp = make_log_probs(seed, 400, 10, 4, torch.float32, scale=2.)
    a = batchbald(lp, 5, num_samples=256)
    b = batchbald(lp, 5, num_samples=256, lazy=False, chunk_size=1000)
    assert a.idxs.tolist() == b.idxs.tolist()
    torch.testing.assert_close(a.scores, b.scores, atol=1e-5, rtol=1e-5)


def test_sampled_joint_entropy_agrees_with_exact():
    lp = make_log_probs(3, 4, 10, 4)
    exact = _exact_joint(lp)[2]
    est = torch.tensor([_sampled_joint(lp, 20000, torch_generator(s))[2] for s in range(5)])
    assert exact > 1
    assert (est - exact).abs().max() < 0.02 * exact
    assert abs(est.mean() - exact) < 0.01 * exact


@pytest.mark.parametrize('seed', range(3))
def test_sampled_batchbald_keeps_batch_quality(seed):
    lp = make_log_probs(5, 200, 10, 3, scale=2.)
    exact = batchbald(lp, 8, num_samples=3 ** 7)          # exact joint throughout
    sampled = batchbald(lp, 8, num_samples=500, seed=seed)  # sampled from the 7th pick on (3^6 > 500)
    mi_exact = batch_mutual_information(lp, exact.idxs)
    mi_sampled = batch_mutual_information(lp, sampled.idxs)
    assert exact.scores[-1].item() == pytest.approx(mi_exact, abs=1e-10)
    assert mi_sampled >= 0.99 * mi_exact
    # the reported score is an estimate of the batch's joint MI
    assert sampled.scores[-1].item() == pytest.approx(mi_sampled, rel=0.08)


@pytest.mark.parametrize('seed', range(3))
def test_batchbald_is_seeded_and_independent_of_pool_order(seed):
    lp = make_log_probs(seed, 300, 8, 3, scale=2.)
    kw = dict(num_samples=50, seed=seed)  # the joint is sampled from the 4th pick on
    a, b = batchbald(lp, 6, **kw), batchbald(lp, 6, **kw)
    assert a.idxs.tolist() == b.idxs.tolist()
    torch.testing.assert_close(a.scores, b.scores, atol=0, rtol=0)
    perm = torch.randperm(300, generator=torch_generator(seed + 100))
    c = batchbald(lp[perm], 6, **kw)
    assert perm[c.idxs].tolist() == a.idxs.tolist()
    torch.testing.assert_close(c.scores, a.scores, atol=1e-12, rtol=1e-12)


def test_batchbald_avoids_duplicates_that_bald_takes():
    base = make_log_probs(7, 30, 10, 4, scale=2.)
    best = bald(base).argmax().item()
    lp = torch.cat([base[best:best + 1].expand(5, -1, -1), base])  # 5 more copies of the best item
    copies = {0, 1, 2, 3, 4, 5 + best}
    assert set(top_k(bald(lp), 5).idxs.tolist()) <= copies
    picks = batchbald(lp, 5).idxs.tolist()
    assert sum(i in copies for i in picks) < 5
    assert batch_mutual_information(lp, picks) > batch_mutual_information(lp, top_k(bald(lp), 5).idxs)


def test_batchbald_culling_and_dense():
    lp = make_log_probs(2, 100, 6, 3)
    top = set(top_k(bald(lp), 8).idxs.tolist())
    assert set(batchbald(lp, 4, max_candidates=8).idxs.tolist()) <= top
    seg = make_log_probs(4, 10 * 9, 6, 3).view(10, 3, 3, 6, 3).permute(0, 3, 4, 1, 2)
    cb = batchbald(seg, 3, dense=True, num_pixels=9)
    per_pixel_mean = bald(seg, dense=True).flatten(1).mean(1)
    assert cb.idxs[0] == per_pixel_mean.argmax()
    assert len(set(cb.idxs.tolist())) == 3


def test_batchbald_k1_is_refused():
    with pytest.raises(ValueError, match='BatchBALD .*got K=1'):
        batchbald(make_log_probs(0, 5, 1, 3), 2)


def test_batchbald_warns_when_the_batch_saturates_log_k():
    "K samples tell apart at most log K nats: past 0.8 log K the later picks are noise (item 11)"
    votes = torch.tensor([[0, 0, 1, 1], [0, 1, 0, 1], [0, 0, 1, 1], [1, 1, 0, 0]])  # K=4 certain votes
    lp = torch.nn.functional.one_hot(votes, 2).double().log()
    with pytest.warns(UserWarning, match=r"log K = 1\.39 at pick 2.*K=4.*n_samples"):
        cb = batchbald(lp, 3)
    assert cb.scores[1].item() == pytest.approx(math.log(4))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        batchbald(make_log_probs(0, 30, 100, 3, scale=1.), 3)   # far from log 100


# ---------------------------------------------------------------- bad inputs to selection (item 6)
@pytest.mark.parametrize('bad', [math.inf, -math.inf, math.nan])
@pytest.mark.parametrize('select', [
    lambda s: top_k(s, 2), lambda s: stochastic_batch(s, 2, 'power', seed=0),
    lambda s: stochastic_batch(s, 2, 'softmax', seed=0), lambda s: stochastic_batch(s, 2, 'softrank', seed=0)])
def test_selection_refuses_non_finite_scores(bad, select):
    s = torch.tensor([0.2, 0.5, bad, 0.1])
    with pytest.raises(ValueError, match=f"expected finite scores_N, got {bad} at item 2"): select(s)


@pytest.mark.parametrize('bad', [math.inf, -math.inf, math.nan])
@pytest.mark.parametrize('reduction', ['mean', 'max', 'topq', lambda s: s.flatten(1).sum(1)])
def test_reduce_dense_refuses_non_finite_pixels(bad, reduction):
    s = torch.rand(3, 4, 4, generator=torch_generator(0))
    s[2, 1, 3] = bad
    with pytest.raises(ValueError, match=f"got {bad} at item 2"): reduce_dense(s, reduction)


@pytest.mark.parametrize('np_int', [np.int64, np.int32, np.uint8])
def test_numpy_integer_counts_work_everywhere(np_int):
    lp = make_log_probs(0, 20, 4, 3)
    s = bald(lp)
    for select in [lambda n: top_k(s, n), lambda n: random_batch(np_int(20), n, seed=0),
                   lambda n: stochastic_batch(s, n, seed=0), lambda n: batchbald(lp, n),
                   lambda n: TopScores(entropy)(lp, n), lambda n: as_acquisition('powerbald')(lp, n, seed=0),
                   lambda n: BatchBALDAcquisition(num_samples=np_int(100))(lp, n), lambda n: RandomAcquisition()(lp, n, seed=0)]:
        assert len(select(np_int(3))) == 3
    with pytest.raises(TypeError, match="expected n as an int, got 3.0"): top_k(s, 3.0)
    with pytest.raises(TypeError, match="expected n as an int, got True"): top_k(s, True)


# ---------------------------------------------------------------- batchbald_redux 2.0.5 and baal fixtures
@pytest.mark.parametrize('case', FIXTURES['cases'], ids=lambda c: c['name'])
def test_matches_batchbald_redux(case):
    dtype = getattr(torch, case['dtype'])
    lp = torch.tensor(case['log_probs'], dtype=dtype)
    cb = batchbald(lp, case['n'], num_samples=case['num_samples'])
    tol = 1e-12 if dtype == torch.float64 else 2e-6
    np.testing.assert_allclose(cb.scores.double().numpy(), case['scores'], atol=tol, rtol=0)
    if case['name'] == 'redux_mixture_example':
        # its four items are class permutations of each other: every step is a tie, broken differently by
        # batchbald_redux; the batches are equivalent (same joint MI at every step, checked above)
        for m in range(1, case['n'] + 1):
            assert batch_mutual_information(lp, cb.idxs[:m]) == pytest.approx(
                batch_mutual_information(lp, case['picks'][:m]), abs=1e-12)
    else:
        assert cb.idxs.tolist() == case['picks']
    np.testing.assert_allclose(bald(lp).double().numpy(), case['baal_bald'], atol=1e-6)


# ---------------------------------------------------------------- strategies
def test_strategies():
    lp = make_log_probs(0, 50, 5, 4)
    assert as_acquisition(entropy)(lp, 3).idxs.tolist() == top_k(entropy(lp), 3).idxs.tolist()
    assert as_acquisition('bald')(lp, 3).idxs.tolist() == top_k(bald(lp), 3).idxs.tolist()
    assert as_acquisition('batchbald')(lp, 3, seed=0).idxs.tolist() == batchbald(lp, 3, seed=0).idxs.tolist()
    assert as_acquisition('powerbald')(lp, 3, seed=1).idxs.tolist() == stochastic_batch(bald(lp), 3, seed=1).idxs.tolist()
    r = as_acquisition('random')
    assert not r.needs_preds and r(50, 3, seed=2).idxs.tolist() == random_batch(50, 3, seed=2).idxs.tolist()
    assert BatchBALDAcquisition(num_samples=10)(lp, 4, seed=0).idxs.tolist() == batchbald(lp, 4, num_samples=10, seed=0).idxs.tolist()
    seg = lp.view(10, 5, 5, 4).permute(0, 2, 3, 1)[..., None]  # [10, K=5, C=4, 5, 1]
    acq = TopScores(margin, reduce='topq', q=0.4)
    assert acq.dense
    assert acq(seg, 2).idxs.tolist() == top_k(reduce_dense(margin(seg, dense=True), 'topq', q=0.4), 2).idxs.tolist()
    with pytest.raises(ValueError, match="expected 'random'"): as_acquisition('nonesuch')


@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
def test_bounding_keeps_exact_picks(dtype):
    "With many exact configurations (4^5, 4^6 >= 1024) the bound-pruned scan picks what the plain lazy scan picks"
    lp = make_log_probs(11, 300, 8, 4, dtype, scale=2.)
    a = batchbald(lp, 7, num_samples=4 ** 6)
    b = batchbald(lp, 7, num_samples=4 ** 6, screen=None)
    assert a.idxs.tolist() == b.idxs.tolist()
    torch.testing.assert_close(a.scores, b.scores, atol=1e-6, rtol=0)


def test_scores_accept_outputs_that_require_grad():
    "Scores of model outputs straight from a forward pass (autograd on) are the same as of detached ones"
    from fastai_active.acquisition.scores import entropy, bald, margin
    logits = torch.randn(5, 3, 4, requires_grad=True)
    lp = logits.log_softmax(-1)
    for score in (entropy, bald, margin):
        assert torch.equal(score(lp), score(lp.detach()))
