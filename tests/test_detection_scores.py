"""Detection scores (`acquisition.boxes`): closed-form values, properties under hypothesis (sample order, padding,
flips), the dense maps' pixel-level scores, and the refusals of bad detections."""
import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from fastai_active.all import *
from fastai_active.data.targets import check_dets

PAD = [0.] * 7
BOX_SCORES = (box_entropy, box_margin, box_least_confidence, box_bald, localisation_disagreement)


def det(x1, y1, x2, y2, conf, *probs): return [x1, y1, x2, y2, conf, *probs]

def H(*p): return -sum(q * math.log(q) for q in p if q > 0)


def random_dets(seed, N=3, K=3, M=5, C=3, n_objects=4, drop=.3, dtype=torch.float64):
    """Detections of K samples that see jittered copies of the same objects, some missed, sorted by confidence."""
    g = torch.Generator().manual_seed(seed)
    u = lambda *s: torch.rand(*s, generator=g, dtype=dtype)
    out = torch.zeros(N, K, M, 5 + C, dtype=dtype)
    for n in range(N):
        xy = u(n_objects, 2) * .7
        wh = .08 + u(n_objects, 2) * .2
        for k in range(K):
            seen = (u(n_objects) > drop).nonzero().flatten()[:M]
            jitter = (u(len(seen), 4) - .5) * .03
            boxes = torch.cat([xy[seen], xy[seen] + wh[seen]], 1) + jitter
            boxes = boxes.clamp(0, 1)
            conf = .05 + .95 * u(len(seen))
            probs = torch.randn(len(seen), C, generator=g, dtype=dtype).mul(2).softmax(1)
            rows = torch.cat([boxes, conf[:, None], probs], 1)
            out[n, k, :len(seen)] = rows[conf.argsort(descending=True)]
    return out


# closed forms

def test_single_box_scores_by_hand():
    dets = torch.tensor([[[det(.1, .2, .5, .6, .9, .7, .3), PAD]]])
    p = (.63, .27, .1)
    assert box_entropy(dets).item() == pytest.approx(H(*p), abs=1e-6)
    assert box_margin(dets).item() == pytest.approx(1 - (.63 - .27), abs=1e-6)
    assert box_least_confidence(dets).item() == pytest.approx(1 - .63, abs=1e-6)
    for reduction in ('sum', 'mean', 'max'): assert box_entropy(dets, reduction).item() == pytest.approx(H(*p), abs=1e-6)

def test_reductions_over_boxes_and_empty_images():
    dets = torch.tensor([[[det(.1, .2, .5, .6, .9, .7, .3), det(.6, .6, .8, .9, .5, 1., 0.)]],
                         [[PAD, PAD]]])
    h1, h2 = H(.63, .27, .1), H(.5, .5)
    torch.testing.assert_close(box_entropy(dets, 'sum'), torch.tensor([h1 + h2, 0.]))
    torch.testing.assert_close(box_entropy(dets, 'mean'), torch.tensor([(h1 + h2) / 2, 0.]))
    torch.testing.assert_close(box_entropy(dets, 'max'), torch.tensor([max(h1, h2), 0.]))
    for score in BOX_SCORES + (flip_inconsistency,):
        for reduction in ('sum', 'mean', 'max'):
            for empty in (torch.zeros(2, 2, 3, 6), torch.zeros(2, 2, 0, 6)):   # padding only, or no slot at all
                assert score(empty, reduction).tolist() == [0., 0.]

def test_samples_that_agree_score_zero():
    same = det(.1, .2, .5, .6, .8, .6, .4)
    dets = torch.tensor([[[same], [same], [same]]])
    assert box_bald(dets).item() == pytest.approx(0, abs=1e-6)
    assert localisation_disagreement(dets).item() == pytest.approx(0, abs=1e-6)
    assert flip_inconsistency(dets[:, :2]).item() == pytest.approx(0, abs=1e-6)
    # and their entropy is that of the one distribution
    assert box_entropy(dets).item() == pytest.approx(H(.48, .32, .2), abs=1e-6)

def test_a_sample_missing_a_box():
    seen = det(.1, .2, .5, .6, .8, .5, .5)                  # (.4, .4, .2) over (class 0, class 1, no object)
    dets = torch.tensor([[[seen], [seen], [PAD]]])          # the third sample sees nothing there: (0, 0, 1)
    mean = (.8 / 3, .8 / 3, (.2 + .2 + 1) / 3)
    want = H(*mean) - (2 * H(.4, .4, .2) + 0) / 3
    assert box_bald(dets).item() == pytest.approx(want, abs=1e-6)
    assert box_entropy(dets).item() == pytest.approx(H(*mean), abs=1e-6)
    assert localisation_disagreement(dets).item() == pytest.approx(1 - 2 / 3, abs=1e-6)
    sure = torch.tensor([[[det(.1, .2, .5, .6, 1., 1., 0.)], [PAD]]])
    assert box_bald(sure).item() == pytest.approx(math.log(2), abs=1e-6)
    assert flip_inconsistency(sure).item() == pytest.approx(1., abs=1e-6)           # its confidence

def test_localisation_and_flip_of_shifted_boxes():
    dets = torch.tensor([[[det(0., 0., .4, .4, .9, 1., 0.)], [det(.1, 0., .5, .4, .9, 1., 0.)]]])
    assert localisation_disagreement(dets).item() == pytest.approx(1 - .35 / .45, abs=1e-6)
    assert flip_inconsistency(dets).item() == pytest.approx(1 - .3 / .5, abs=1e-6)
    other_class = torch.tensor([[[det(0., 0., .4, .4, 1., 1., 0.)], [det(0., 0., .4, .4, 1., 0., 1.)]]])
    assert flip_inconsistency(other_class).item() == pytest.approx(math.log(2), abs=1e-6)   # JS of two sure, different classes

def test_match_boxes_clusters():
    dets = random_dets(0, N=4, K=4, M=6)
    members = match_boxes(dets)
    real = dets[..., 4] > 0
    for n in range(len(dets)):
        seen = sorted((k, int(m)) for j in range(members.shape[1]) for k, m in enumerate(members[n, j]) if m >= 0)
        assert seen == sorted((k, m) for k, m in real[n].nonzero().tolist())   # every real box in exactly one cluster
    assert box_iou(dets[0, 0, :1, :4], dets[0, 0, :1, :4]).item() == 1.
    lone = torch.tensor([[[det(.1, .1, .3, .3, .9, 1., 0.)], [det(.5, .5, .7, .7, .9, 1., 0.)]]])   # no overlap
    assert match_boxes(lone).tolist() == [[[0, -1], [-1, 0]]]


# properties

@settings(max_examples=30)  # each example runs every score several times: a few seconds per 30
@given(st.integers(0, 2**16), st.integers(1, 4), st.integers(1, 6))
def test_bald_between_zero_and_entropy_of_the_mean(seed, K, M):
    dets = random_dets(seed, K=K, M=M)
    ent, bald_ = box_entropy(dets, None), box_bald(dets, None) if K > 1 else torch.zeros(1)
    if K == 1: return
    assert (bald_ >= 0).all() and (bald_ <= ent + 1e-9).all()

@settings(max_examples=30)  # each example runs every score several times: a few seconds per 30
@given(st.integers(0, 2**16), st.integers(2, 4), st.sampled_from(['sum', 'mean', 'max']))
def test_sample_order_padding_and_slot_order_change_nothing(seed, K, reduction):
    dets = random_dets(seed, K=K)
    perm = torch.randperm(K, generator=torch.Generator().manual_seed(seed))
    padded = torch.cat([dets, torch.zeros(*dets.shape[:2], 3, dets.shape[3], dtype=dets.dtype)], 2)
    shuffled = dets[:, :, torch.randperm(dets.shape[2], generator=torch.Generator().manual_seed(seed + 1))]
    for score in BOX_SCORES:
        want = score(dets, reduction)
        assert want.shape == (len(dets),) and (want >= 0).all() and want.dtype == torch.float64
        for other in (dets[:, perm], padded, shuffled):
            torch.testing.assert_close(score(other, reduction), want)

@settings(max_examples=30)  # each example runs every score several times: a few seconds per 30
@given(st.integers(0, 2**16), st.sampled_from(['sum', 'mean', 'max']))
def test_flip_is_symmetric_and_mirror_invariant(seed, reduction):
    dets = random_dets(seed, K=2)
    want = flip_inconsistency(dets, reduction)
    assert (want >= 0).all()
    torch.testing.assert_close(flip_inconsistency(dets[:, [1, 0]], reduction), want)
    mirrored = dets.clone()
    real = dets[..., 4] > 0
    mirrored[..., 0], mirrored[..., 2] = torch.where(real, 1 - dets[..., 2], 0.), torch.where(real, 1 - dets[..., 0], 0.)
    torch.testing.assert_close(flip_inconsistency(mirrored, reduction), want)

@settings(max_examples=30)  # each example runs every score several times: a few seconds per 30
@given(st.integers(0, 2**16))
def test_images_are_scored_independently(seed):
    dets = random_dets(seed, N=3, K=3)
    for score in BOX_SCORES + (flip_inconsistency,):
        d = dets[:, :2] if score is flip_inconsistency else dets
        torch.testing.assert_close(score(d), torch.cat([score(d[i:i+1]) for i in range(len(d))]))

def test_dtype_and_device_kept():
    dets = random_dets(1)
    for dtype in (torch.float32, torch.float64, torch.float16):
        for score in BOX_SCORES:
            assert score(dets.to(dtype)).dtype == dtype
    assert local_bald(torch.stack([torch.full((1, 1, 1, 4, 4), .3, dtype=torch.float64).log(),
                                   torch.full((1, 1, 1, 4, 4), .7, dtype=torch.float64).log()], 2)).dtype == torch.float64
    for score in BOX_SCORES + (flip_inconsistency, local_bald): assert score.target == 'detection'

@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a GPU')
def test_on_the_gpu():
    dets = random_dets(2)
    for score in BOX_SCORES:
        out = score(dets.cuda())
        assert out.device.type == 'cuda'
        torch.testing.assert_close(out.cpu(), score(dets))


# dense maps: the pixel-level scores

def maps_of(p_N_K_L): return torch.stack([(1 - p_N_K_L).log(), p_N_K_L.log()], 2)

def test_dense_maps_scores_are_the_pixel_scores_aggregated():
    g = torch.Generator().manual_seed(0)
    p = torch.rand(3, 4, 12, generator=g, dtype=torch.float64) * .98 + .01    # N=3 images, K=4, L=12 locations x classes
    maps = maps_of(p)
    check_outputs(maps, 'detection')
    pm = p.mean(1)
    h = lambda q: -(q * q.log() + (1 - q) * (1 - q).log())
    pixel_entropy = h(pm)
    pixel_bald = h(pm) - h(p).mean(1)
    torch.testing.assert_close(reduce_dense(entropy(maps, dense=True), 'mean'), pixel_entropy.mean(1))
    torch.testing.assert_close(reduce_dense(bald(maps, dense=True), 'max'), pixel_bald.amax(1))
    torch.testing.assert_close(as_acquisition('pixel_entropy_mean').scores(maps), pixel_entropy.mean(1))
    torch.testing.assert_close(as_acquisition('pixel_bald_max').scores(maps), pixel_bald.amax(1))
    torch.testing.assert_close(as_acquisition('pixel_bald_sum').scores(maps), pixel_bald.sum(1))
    torch.testing.assert_close(as_acquisition('pixel_entropy_topq').scores(maps), pixel_entropy.topk(2, 1).values.mean(1))

def test_local_bald_against_a_loop():
    g = torch.Generator().manual_seed(3)
    N, K, C, Hh, W, window, pool = 2, 2, 2, 5, 6, 3, 2
    p = torch.rand(N, K, C, Hh, W, generator=g, dtype=torch.float64) * .98 + .01
    h = lambda q: -(q * q.log() + (1 - q) * (1 - q).log())
    per_pixel = torch.zeros(N, Hh, W, dtype=torch.float64)
    for n in range(N):
        for i in range(Hh):
            for j in range(W):
                hood = p[n, :, :, max(0, i - 1):i + 2, max(0, j - 1):j + 2]       # [K, C, h, w]: the neighbourhood
                q = hood.permute(1, 0, 2, 3).reshape(C, -1)
                per_pixel[n, i, j] = (h(q.mean(1)) - h(q).mean(1)).sum()
    maps = torch.stack([(1 - p).log(), p.log()], 2)
    torch.testing.assert_close(local_bald(maps, window=window, pool=None), per_pixel)
    blocks = torch.stack([torch.stack([per_pixel[:, i:i + pool, j:j + pool].amax((1, 2)) for j in range(0, W, pool)], 1)
                          for i in range(0, Hh, pool)], 1)
    torch.testing.assert_close(local_bald(maps, window=window, pool=pool), blocks.flatten(1).mean(1))
    flat = maps.permute(0, 1, 2, 4, 5, 3).flatten(3)          # location-major, classes innermost, as DetectionSampler gives
    torch.testing.assert_close(local_bald(flat, levels=[(Hh, W)], pool=pool), local_bald(maps, pool=pool))
    coarse = torch.stack([(1 - p[..., ::2, ::2]).log(), p[..., ::2, ::2].log()], 2)     # a second level [3, 3]
    both = torch.cat([flat, coarse.permute(0, 1, 2, 4, 5, 3).flatten(3)], 3)
    up = torch.nn.functional.interpolate(local_bald(coarse, pool=None)[:, None], size=(Hh, W), mode='nearest')[:, 0]
    torch.testing.assert_close(local_bald(both, levels=[(Hh, W), (3, 3)], pool=None), per_pixel + up)
    assert (local_bald(maps) >= 0).all()


# refusals

def test_bad_detections_are_refused():
    good = torch.tensor([[[det(.1, .2, .5, .6, .9, .7, .3), PAD]]])
    def bad(col, value):
        d = good.clone(); d[0, 0, 0, col] = value; return d
    cases = [(good[0], "of shape [N, K, M, F]"), (good[..., :5], "F = 5 + C >= 6"), (good.long(), "floating point"),
             (bad(0, float('nan')), "got NaN or inf (first at item 0, sample 0, slot 0)"),
             (bad(3, float('inf')), "NaN or inf"),
             (bad(4, 1.5), "[..., 4] in [0, 1], got 1.5"),
             (bad(4, -.1), "in [0, 1], got -0.1"),
             (bad(0, .7), "x1 <= x2 and y1 <= y2"), (bad(3, .1), "x1 <= x2 and y1 <= y2"),
             (good * torch.tensor([96., 96, 96, 96, 1, 1, 1]), "divide pixel coordinates"),
             (bad(5, .9), "to sum to 1"), (bad(6, -.3), "to sum to 1"),
             (torch.zeros(0, 1, 2, 7), "N >= 1 images")]
    for dets, msg in cases:
        for check in (check_dets, lambda d: check_outputs(d, 'detection'), box_entropy):
            with pytest.raises((ValueError, TypeError)) as e: check(dets)
            assert msg in str(e.value), (msg, str(e.value))
    with pytest.raises(TypeError, match='as a torch.Tensor'): check_dets([[1.]])

def test_scores_that_need_samples_refuse_one():
    one = random_dets(0, K=1)
    for score in (box_bald, localisation_disagreement):
        with pytest.raises(ValueError, match='K=1'): score(one)
    with pytest.raises(ValueError, match='K=2 samples'): flip_inconsistency(random_dets(0, K=3))
    with pytest.raises(ValueError, match='expected reduce one of'): box_entropy(one, 'median')
    with pytest.raises(ValueError, match='iou_threshold'): match_boxes(one, iou_threshold=0)
    with pytest.raises(ValueError, match="needs the maps' grid"): local_bald(maps_of(torch.full((1, 1, 8), .5)))
    with pytest.raises(ValueError, match='log-probabilities'): check_outputs(maps_of(torch.full((1, 1, 8), .5)) - 1, 'detection')

def test_strategies_and_targets():
    dets = random_dets(4, N=6, K=3)
    for name in ('box_entropy_sum', 'box_entropy_mean', 'box_entropy_max', 'box_margin_sum', 'box_least_confidence_sum',
                 'box_bald_sum', 'localisation', 'powerbox_entropy_sum', 'softmaxbox_bald_max', 'random'):
        acq = as_acquisition(name, target='detection')
        check_target_strategy(acq, 'detection')
        assert len(acq(dets, 2, seed=0)) == 2
    check_target_strategy(as_acquisition('flip'), 'detection')
    for name in ('batchbald', 'badge', 'probcover', 'entropy', 'powerbald', 'variance', 'expected_iou_loss'):
        with pytest.raises(ValueError, match='box_entropy_sum|powerbox_bald_sum'):
            check_target_strategy(as_acquisition(name, target='detection'), 'detection')
    for target in ('classification', 'multilabel', 'regression', 'gaussian'):
        with pytest.raises(ValueError, match="scores a detector's outputs"):
            check_target_strategy(as_acquisition('box_entropy_sum'), target)
    assert 'detection' in TARGETS
    class DetectorLoss(torch.nn.Module): target = 'detection'
    from types import SimpleNamespace
    assert target_of(SimpleNamespace(loss_func=DetectorLoss())) == 'detection'


def test_scores_read_the_detectors_outputs():
    "The layouts the detector gives (decoded boxes, and its class logits as maps over its levels) are what the scores read"
    pytest.importorskip('torchvision')
    from fastai_active.detector import FCOSDetector
    torch.manual_seed(0)
    det = FCOSDetector(n_classes=3, score_thresh=0.0).train()    # dropout on: three posterior samples
    x = torch.rand(2, 3, 96, 96)
    raws = [det(x) for _ in range(3)]
    dets = torch.stack([det.decode(r, (96, 96)) for r in raws], 1)
    assert check_outputs(dets, 'detection') is dets and (dets[..., 4] > 0).any()
    for score in BOX_SCORES:
        s = score(dets)
        assert s.shape == (2,) and (s > 0).all()
    assert (flip_inconsistency(dets[:, :2]) > 0).all()
    logits = torch.stack([det.split(r)['cls_logits'].float() for r in raws], 1).flatten(2)
    maps = torch.stack([torch.nn.functional.logsigmoid(-logits), torch.nn.functional.logsigmoid(logits)], 2)
    assert check_outputs(maps, 'detection') is maps
    s = TopScores(local_bald_score(levels=det.level_sizes(96, 96))).scores(maps)
    assert s.shape == (2,) and (s >= 0).all()
