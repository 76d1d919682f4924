"""Per-image detection error (`box_counts`, `image_error`, `image_ap`) and its Spearman with an image score
(`detection_uncertainty_vs_error`): closed forms, refusals of bad inputs, and properties under hypothesis."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from fastai_active.all import *
from fastai_active.detector import dets_to_dicts

SIZE = (100, 100)


def T(boxes, labels):
    return {'boxes': torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), 'labels': torch.tensor(labels, dtype=torch.long)}

def P(boxes, scores, labels):
    return dict(T(boxes, labels), scores=torch.tensor(scores, dtype=torch.float32))

EMPTY_T, EMPTY_P = T([], []), P([], [], [])
THREE = T([[0, 0, 10, 10], [20, 20, 40, 40], [50, 50, 60, 60]], [0, 0, 1])


# closed forms

def test_perfect_prediction_has_error_0_and_ap_1():
    perfect = P(THREE['boxes'].tolist(), [.9, .8, .7], [0, 0, 1])
    assert image_error([perfect], [THREE]).tolist() == [0.]
    assert image_ap([perfect], [THREE]).tolist() == pytest.approx([1.])
    assert box_counts([perfect], [THREE]).tolist() == [[3, 0, 0]]

def test_a_miss_has_ap_0_and_error_1():
    miss = P([[70, 70, 80, 80]], [.9], [0])
    wrong_class = P(THREE['boxes'].tolist(), [.9, .8, .7], [1, 1, 0])
    assert image_ap([miss, wrong_class, EMPTY_P], [THREE] * 3).tolist() == [0., 0., 0.]
    assert image_error([miss, wrong_class, EMPTY_P], [THREE] * 3).tolist() == [1., 1., 1.]

def test_two_of_three_matched():
    # hits on boxes 0 and 1 (IoU 1 and 0.6), a detection of the wrong class on box 2: TP 2, FP 1, FN 1
    pred = P([[0, 0, 10, 10], [50, 50, 60, 60], [25, 20, 45, 40]], [.9, .8, .7], [0, 0, 0])
    assert box_counts([pred], [THREE]).tolist() == [[2, 1, 1]]
    f1 = 2 * 2 / (2 * 2 + 1 + 1)
    assert image_error([pred], [THREE]).item() == pytest.approx(1 - f1)
    # at IoU 0.7 the shifted box misses: TP 1, FP 2, FN 2
    assert image_error([pred], [THREE], iou=0.7).item() == pytest.approx(1 - 2 / (2 + 2 + 2))
    # above the third's confidence it no longer counts: TP 1, FP 1, FN 2
    assert box_counts([pred], [THREE], conf=0.75).tolist() == [[1, 1, 2]]
    # AP: class 0 hit, false, hit -> (51 + 50 * 2/3) / 101 on COCO's 101 recall points; class 1 AP 0
    assert image_ap([pred], [THREE]).item() == pytest.approx((51 + 50 * 2 / 3) / 101 / 2, abs=1e-6)

def test_empty_images():
    false = P([[0, 0, 5, 5]], [.06], [0])
    assert image_error([EMPTY_P, false], [EMPTY_T, EMPTY_T], conf=0.05).tolist() == [0., 1.]
    assert image_ap([EMPTY_P, false], [EMPTY_T, EMPTY_T]).tolist() == [1., 0.]
    assert math.isnan(image_ap([EMPTY_P], [EMPTY_T], empty=float('nan')).item())
    # below the threshold a false detection is no error for 1 - F1 (but AP, with no threshold, counts it)
    assert image_error([false], [EMPTY_T], conf=0.5).tolist() == [0.]

def test_score_equal_to_error_gives_spearman_1():
    hit, shifted = [.1, .1, .3, .3, .9, 1., 0.], [.15, .1, .35, .3, .8, 1., 0.]
    stray, wrong = [.6, .6, .8, .8, .7, 1., 0.], [.1, .1, .3, .3, .9, 0., 1.]
    def image(*rows):
        out = torch.zeros(3, 7, dtype=torch.float64)
        for i, r in enumerate(rows): out[i] = torch.tensor(r, dtype=torch.float64)
        return out
    preds = torch.stack([image(hit), image(shifted), image(shifted, stray), image(), image(hit, shifted), image(wrong)])
    targets = [T([[10, 10, 30, 30]], [0])] * 6
    error = torch.tensor([0, 0, 1 / 3, 1, 1 / 3, 1], dtype=torch.float64)
    res = detection_uncertainty_vs_error(preds[:, None], targets, SIZE, score=error)
    assert res.table.error.tolist() == pytest.approx(error.tolist())
    assert (res.spearman.r, res.spearman.lo, res.spearman.hi) == (1., 1., 1.)
    assert res.spearman.n == 6 and not res.notes
    # the reverse order gives -1; the table has a row per image in order
    assert detection_uncertainty_vs_error(preds[:, None], targets, SIZE, score=-error).spearman.r == -1.
    assert list(res.table.columns) == ['score', 'error', 'ap', 'tp', 'fp', 'fn', 'n_true']
    assert res.correlations().error.tolist() == ['1 - F1', '1 - AP']
    tri = res.triage(annotate=0.8, pseudo=0.2)
    assert set(tri.group[tri.error == 1]) == {'annotate'} and set(tri.group[tri.error == 0]) == {'pseudo-label'}
    # with distances, the out-of-distribution group of interpret.triage
    tri = res.triage(distances=torch.tensor([0., 0., 9., 0., 0., 0.]), ood=0.9)
    assert tri.group.iloc[2] == 'out-of-distribution' and 'distance' in tri.columns


# bad inputs

def test_mismatched_lengths():
    with pytest.raises(ValueError, match="one prediction per image, got 1 predictions for 2 images"):
        image_error([EMPTY_P], [EMPTY_T, EMPTY_T])
    with pytest.raises(ValueError, match="one prediction per image"): image_ap([EMPTY_P] * 3, [EMPTY_T])
    dets = torch.zeros(4, 1, 2, 7)
    with pytest.raises(ValueError, match="3 targets for 4 images"):
        detection_uncertainty_vs_error(dets, [EMPTY_T] * 3, SIZE, score=torch.arange(4.))
    with pytest.raises(ValueError, match="one score score per image, 4, got 3"):
        detection_uncertainty_vs_error(dets, [EMPTY_T] * 4, SIZE, score=torch.arange(3.))
    with pytest.raises(ValueError, match="preds for the 4 images"):
        detection_uncertainty_vs_error(dets, [EMPTY_T] * 4, SIZE, score=torch.arange(4.), preds=torch.zeros(3, 2, 7))

def test_box_layout_violations_of_dicts():
    with pytest.raises(ValueError, match="x1 <= x2 and y1 <= y2"):
        image_error([P([[10, 0, 0, 10]], [.9], [0])], [THREE])
    with pytest.raises(ValueError, match="x1 <= x2 and y1 <= y2"):
        image_error([EMPTY_P], [T([[0, 10, 10, 0]], [0])])
    with pytest.raises(ValueError, match=r"of shape \[n, 4\]"):
        image_error([EMPTY_P], [{'boxes': torch.zeros(2, 5), 'labels': torch.zeros(2)}])
    with pytest.raises(ValueError, match=r"confidences in \[0, 1\]"): image_error([P([[0, 0, 1, 1]], [3.], [0])], [THREE])
    with pytest.raises(ValueError, match="one label per box"): image_error([EMPTY_P], [{'boxes': torch.zeros(2, 4), 'labels': [0]}])
    with pytest.raises(ValueError, match="class indices"): image_error([EMPTY_P], [T([[0, 0, 1, 1]], [-1])])
    with pytest.raises(ValueError, match="finite boxes"): image_error([P([[0, 0, float('nan'), 1]], [.5], [0])], [EMPTY_T])
    with pytest.raises(TypeError, match="as a list of dicts"): image_error(EMPTY_P, [EMPTY_T])
    with pytest.raises(TypeError, match=r"keys \['boxes', 'scores', 'labels'\]"): image_error([EMPTY_T], [EMPTY_T])
    with pytest.raises(ValueError, match=r"iou in \(0, 1\]"): image_error([EMPTY_P], [EMPTY_T], iou=0)
    with pytest.raises(ValueError, match=r"conf in \[0, 1\]"): image_error([EMPTY_P], [EMPTY_T], conf=-.1)

def test_box_layout_violations_of_detections_use_check_dets():
    dets = torch.zeros(4, 1, 2, 7)
    dets[:, 0, 0] = torch.tensor([.1, .1, .3, .3, .9, 1., 0.])
    targets, score = [T([[10, 10, 30, 30]], [0])] * 4, torch.arange(4.)
    xywh = dets.clone(); xywh[1, 0, 0, 2] = .05                  # x2 < x1: [x, y, w, h] given for [x1, y1, x2, y2]
    with pytest.raises(ValueError, match=r"x1 <= x2 and y1 <= y2.*item 1, sample 0, slot 0"):
        detection_uncertainty_vs_error(xywh, targets, SIZE, score=score)
    pixels = dets.clone(); pixels[2, 0, 0, :4] = torch.tensor([10., 10, 30, 30])
    with pytest.raises(ValueError, match=r"relative to the image, in \[0, 1\]"):
        detection_uncertainty_vs_error(pixels, targets, SIZE, score=score)
    with pytest.raises(ValueError, match=r"shape \[N, K, M, F\]"):
        detection_uncertainty_vs_error(dets[:, 0], targets, SIZE, score=score)
    bad_preds = dets[:, 0].clone(); bad_preds[0, 0, 4] = 3.
    with pytest.raises(ValueError, match=r"confidences preds\[..., 4\] in \[0, 1\]"):
        detection_uncertainty_vs_error(dets, targets, SIZE, score=score, preds=bad_preds)
    with pytest.raises(ValueError, match="K=1"): detection_uncertainty_vs_error(dets, targets, SIZE, score='box_bald_sum')
    with pytest.raises(ValueError, match="outputs are detections"): detection_uncertainty_vs_error(dets, targets, SIZE, score='bald')
    with pytest.raises(ValueError, match="not a score of the boxes"):
        detection_uncertainty_vs_error(dets, targets, SIZE, score='pixel_local_bald')
    with pytest.raises(ValueError, match="finite"):
        detection_uncertainty_vs_error(dets, targets, SIZE, score=torch.tensor([0., 1., float('nan'), 2.]))

def test_bad_interval_settings_are_refused_not_noted():
    dets, targets = torch.zeros(4, 1, 2, 7), [EMPTY_T] * 4
    with pytest.raises(ValueError, match=r"confidence level in \(0, 1\)"):
        detection_uncertainty_vs_error(dets, targets, SIZE, score=torch.arange(4.), ci=95)
    with pytest.raises(ValueError, match="n_resamples"):
        detection_uncertainty_vs_error(dets, targets, SIZE, score=torch.arange(4.), n_resamples=10)

def test_constant_error_gives_nan_with_a_note():
    dets = torch.zeros(5, 1, 1, 6)
    res = detection_uncertainty_vs_error(dets, [EMPTY_T] * 5, SIZE, score=torch.arange(5.))
    assert math.isnan(res.spearman.r) and math.isnan(res.spearman_ap.r) and len(res.notes) == 2
    assert 'not constant' in res.notes[0] and 'note:' in repr(res)


# properties

@st.composite
def image_sets(draw):
    "Random test sets: up to 4 true and 4 predicted boxes per image, on a coarse grid so that IoUs tie and reach 0.5"
    n = draw(st.integers(1, 6))
    preds, targets = [], []
    def boxes(k):
        out = []
        for _ in range(k):
            x, y = draw(st.integers(0, 6)), draw(st.integers(0, 6))
            w, h = draw(st.integers(1, 4)), draw(st.integers(1, 4))
            out.append([10. * x, 10. * y, 10. * (x + w), 10. * (y + h)])
        return out
    for _ in range(n):
        kt, kp = draw(st.integers(0, 4)), draw(st.integers(0, 4))
        targets.append(T(boxes(kt), draw(st.lists(st.integers(0, 1), min_size=kt, max_size=kt))))
        preds.append(P(boxes(kp), draw(st.lists(st.sampled_from([.1, .3, .5, .7, .9]), min_size=kp, max_size=kp)),
                       draw(st.lists(st.integers(0, 1), min_size=kp, max_size=kp))))
    return preds, targets

@settings(max_examples=40, deadline=None)
@given(image_sets(), st.sampled_from([.3, .5, .7]), st.sampled_from([0., .4, .8]), st.randoms(use_true_random=False))
def test_error_in_unit_interval_and_permutation_equivariant(sets, iou, conf, rnd):
    preds, targets = sets
    err = image_error(preds, targets, iou, conf)
    counts = box_counts(preds, targets, iou, conf)
    assert ((err >= 0) & (err <= 1)).all()
    tp, fp, fn = counts.unbind(1)
    n_true = torch.tensor([len(t['labels']) for t in targets])
    n_pred = torch.tensor([int((p['scores'] >= conf).sum()) for p in preds])
    assert (tp + fn == n_true).all() and (tp + fp == n_pred).all()
    assert ((err == 0) == ((fp == 0) & (fn == 0))).all()               # no error exactly when nothing is wrong
    perm = list(range(len(preds))); rnd.shuffle(perm)
    assert torch.equal(image_error([preds[i] for i in perm], [targets[i] for i in perm], iou, conf), err[perm])
    assert torch.equal(box_counts([preds[i] for i in perm], [targets[i] for i in perm], iou, conf), counts[perm])

@settings(max_examples=10, deadline=None)
@given(image_sets(), st.randoms(use_true_random=False))
def test_ap_in_unit_interval_and_permutation_equivariant(sets, rnd):
    preds, targets = sets
    ap = image_ap(preds, targets)
    assert ((ap >= 0) & (ap <= 1)).all()
    perm = list(range(len(preds))); rnd.shuffle(perm)
    assert torch.equal(image_ap([preds[i] for i in perm], [targets[i] for i in perm]), ap[perm])
    # an image whose detections are its true boxes, most confident first, has AP 1 and error 0
    perfect = [P(t['boxes'].tolist(), [.9] * len(t['labels']), t['labels'].tolist()) for t in targets]
    assert image_ap(perfect, targets).tolist() == pytest.approx([1.] * len(targets))
    assert image_error(perfect, targets).tolist() == [0.] * len(targets)

@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**16), st.randoms(use_true_random=False))
def test_analysis_table_permutes_with_the_images(seed, rnd):
    g = torch.Generator().manual_seed(seed)
    N, M, C = 8, 3, 2
    xy = torch.rand(N, 1, M, 2, generator=g) * .6
    wh = .1 + torch.rand(N, 1, M, 2, generator=g) * .3
    conf = torch.rand(N, 1, M, 1, generator=g) * (torch.rand(N, 1, M, 1, generator=g) > .3)
    probs = torch.rand(N, 1, M, C, generator=g).softmax(-1)
    dets = torch.cat([xy, xy + wh, conf, probs], -1)
    targets = [T([[10., 10, 40, 40]] * (n % 3), [n % 2] * (n % 3)) for n in range(N)]
    res = detection_uncertainty_vs_error(dets, targets, SIZE, score='box_entropy_sum', n_resamples=200)
    perm = list(range(N)); rnd.shuffle(perm)
    again = detection_uncertainty_vs_error(dets[perm], [targets[i] for i in perm], SIZE, score='box_entropy_sum', n_resamples=200)
    np.testing.assert_allclose(again.table.to_numpy(), res.table.iloc[perm].to_numpy())
    assert ((res.table.error >= 0) & (res.table.error <= 1)).all()
    # the bootstrap resamples the pairs in a canonical order, so the correlation, its interval, or its absence (NaN)
    # are the same in any order of the images
    np.testing.assert_allclose([res.spearman.r, res.spearman.lo, res.spearman.hi],
                               [again.spearman.r, again.spearman.lo, again.spearman.hi], rtol=1e-12, atol=1e-12)


# distances to the reference images: the out-of-distribution group of the triage

from fastai.vision.all import DataBlock, ImageBlock, BBoxBlock, BBoxLblBlock, RandomSplitter, Resize, get_image_files
from fastai_active.datasets import detection_folder
from fastai_active.data.boxes import coco_get_y
from fastai_active.detector import detection_learner, find_detector


@pytest.fixture(scope='module')
def det_learn(tmp_path_factory):
    "An untrained detector on 24 generated images (16 train, 8 valid): its embeddings are what is compared"
    folder = detection_folder(tmp_path_factory.mktemp('det_ood')/'shapes', n=24, seed=0)
    dblock = DataBlock(blocks=(ImageBlock, BBoxBlock, BBoxLblBlock), get_items=get_image_files, n_inp=1,
                       get_y=coco_get_y(folder/'annotations.json'), splitter=RandomSplitter(1/3, seed=0),
                       item_tfms=Resize(128, method='squish'))
    dls = dblock.dataloaders(folder/'images', bs=5, num_workers=0)
    torch.manual_seed(0)
    return detection_learner(dls)

def _hand_embeddings(learn, dl):
    "The body's deepest map averaged over positions, run by hand on `dl`'s batches in order"
    det = find_detector(learn.model)
    b = det.fcos.backbone
    learn.model.eval()
    with torch.no_grad():
        return torch.cat([b.s32(b.s16(b.stem((x - det.mean) / det.std))).mean((2, 3)).float().cpu().as_subclass(torch.Tensor)
                          for x, *_ in dl])

def _hand_mahalanobis(embs, ref, shrinkage=0.1):
    "Distance to the Gaussian of `ref`: covariance (1 - a) S + a tr(S) / D I, S the biased sample covariance"
    ref, embs = ref.double(), embs.double()
    mu = ref.mean(0)
    cov = (ref - mu).T @ (ref - mu) / len(ref)
    cov = (1 - shrinkage) * cov + shrinkage * cov.trace() / cov.shape[0] * torch.eye(cov.shape[0], dtype=torch.float64)
    diff = embs - mu
    return ((diff @ torch.linalg.inv(cov)) * diff).sum(1).sqrt()

def test_distances_equal_a_hand_computation(det_learn):
    learn, dls = det_learn, det_learn.dls
    train_dl = dls.train.new(shuffle=False, drop_last=False)
    res = learn.detection_uncertainty_vs_error(dls.valid, ref_dl=dls.train, id_dl=train_dl, n_resamples=100)
    test_embs, ref_embs = _hand_embeddings(learn, dls.valid), _hand_embeddings(learn, train_dl)
    assert test_embs.shape == (len(dls.valid_ds), 96) and ref_embs.shape == (len(dls.train_ds), 96)
    np.testing.assert_allclose(res.distances.numpy(), _hand_mahalanobis(test_embs, ref_embs).numpy(), rtol=1e-4)
    np.testing.assert_allclose(res.ref_distances.numpy(), _hand_mahalanobis(ref_embs, ref_embs).numpy(), rtol=1e-4)
    # the same embeddings through feature_distances, and knn on them
    d, ref_d = feature_distances(test_embs, ref_embs, ref_embs)
    np.testing.assert_allclose(res.distances.numpy(), d.double().numpy(), rtol=1e-4)
    knn = learn.detection_uncertainty_vs_error(dls.valid, ref_dl=dls.train, ood='knn', k=2, metric='euclidean', n_resamples=100)
    np.testing.assert_allclose(knn.distances.numpy(), torch.cdist(test_embs, ref_embs).topk(2, largest=False).values[:, 1].numpy(),
                               rtol=1e-4, atol=1e-6)
    assert knn.ref_distances is None
    # the scores, errors and table are those of the analysis without distances
    plain = learn.detection_uncertainty_vs_error(dls.valid, n_resamples=100)
    assert plain.distances is None
    np.testing.assert_allclose(res.table.to_numpy(), plain.table.to_numpy())

def test_triage_puts_the_far_images_out_of_distribution(det_learn):
    learn, dls = det_learn, det_learn.dls
    res = learn.detection_uncertainty_vs_error(dls.valid, ref_dl=dls.train, id_dl=dls.valid, n_resamples=100)
    tri = res.triage(annotate=None, pseudo=None)   # by default the analysis' distances and in-distribution threshold
    t = np.quantile(res.ref_distances.numpy(), 0.95)
    assert tri.attrs['thresholds']['ood'] == pytest.approx(t)
    far = res.distances.numpy() >= t
    assert far.any() and tri.far.tolist() == far.tolist()
    assert tri.group.tolist() == ['out-of-distribution' if f else 'ignore' for f in far]
    # given distances: high where chosen, the images there and only there out of distribution
    hand = torch.zeros(len(res.table), dtype=torch.float64); hand[[1, 4]] = 10.
    res2 = detection_uncertainty_vs_error(torch.zeros(len(hand), 1, 2, 7), [EMPTY_T] * len(hand), SIZE,
                                          score=torch.arange(len(hand), dtype=torch.float64), distances=hand,
                                          ref_distances=torch.linspace(0, 1, 20))
    tri2 = res2.triage(annotate=None, pseudo=None)
    assert tri2.index[tri2.group == 'out-of-distribution'].tolist() == [1, 4]
    # distances passed to triage replace the analysis' own (and its threshold)
    own = res2.triage(annotate=None, pseudo=None, distances=torch.arange(len(hand), dtype=torch.float64), ood=0.9)
    assert own.index[own.far].tolist() == [len(hand) - 1]

def test_bad_distance_inputs_are_refused(det_learn):
    learn, dls = det_learn, det_learn.dls
    empty_dl = torch.utils.data.DataLoader([])
    with pytest.raises(ValueError, match=r"expected ref_dl to give batches of images, got a DataLoader of no batch \(0 items\)"):
        learn.detection_uncertainty_vs_error(dls.valid, ref_dl=empty_dl)
    with pytest.raises(ValueError, match="expected id_dl to give batches"):
        learn.detection_uncertainty_vs_error(dls.valid, ref_dl=dls.train, id_dl=empty_dl)
    with pytest.raises(ValueError, match="pass `ref_dl` too"): learn.detection_uncertainty_vs_error(dls.valid, id_dl=dls.valid)
    with pytest.raises(ValueError, match="either ref_dl .* or distances, got both"):
        learn.detection_uncertainty_vs_error(dls.valid, ref_dl=dls.train, distances=torch.zeros(len(dls.valid_ds)))
    with pytest.raises(ValueError, match="ood='mahalanobis' or 'knn', got 'cosine'"):
        learn.detection_uncertainty_vs_error(dls.valid, ref_dl=dls.train, ood='cosine')
    embs = torch.randn(6, 8)
    with pytest.raises(ValueError, match=r"one width D, got embs_N_D \(6, 8\), ref_embs_M_D \(10, 5\)"):
        feature_distances(embs, torch.randn(10, 5))
    with pytest.raises(ValueError, match=r"id_embs_L_D \(4, 3\)"): feature_distances(embs, torch.randn(10, 8), torch.randn(4, 3))
    with pytest.raises(ValueError, match="at least 2 reference items to measure distances to, got 1"):
        feature_distances(embs, torch.randn(1, 8))
    with pytest.raises(ValueError, match=r"expected embs_N_D of shape \[N, D\], got \(8,\)"): feature_distances(embs[0], torch.randn(10, 8))
    dets = torch.zeros(6, 1, 2, 7)
    with pytest.raises(ValueError, match="expected one distance per image, 6, got 5"):
        detection_uncertainty_vs_error(dets, [EMPTY_T] * 6, SIZE, score=torch.arange(6.), distances=torch.zeros(5))
    with pytest.raises(ValueError, match="pass distances too"):
        detection_uncertainty_vs_error(dets, [EMPTY_T] * 6, SIZE, score=torch.arange(6.), ref_distances=torch.zeros(5))
    with pytest.raises(ValueError, match="finite distances"):
        detection_uncertainty_vs_error(dets, [EMPTY_T] * 6, SIZE, score=torch.arange(6.), distances=torch.full((6,), float('nan')))
