"""Object detection in the loop, the user's path (issue 27): a folder of images with a COCO boxes file read by a fastai
`DataBlock` (`ImageBlock`, `BBoxBlock`, `BBoxLblBlock`), the small FCOS of `detector`, and `ActiveLearner` with each
kind of detection strategy: the labels grow by the batch every round, the picks are the strategy's top scores, the
boxes handed to people are the model's boxes in the image's own pixels, what cannot work is refused before anything is
written, and a loop resumed from its ledger file acquires what an uninterrupted one does.

Tiny on purpose (40 images of 96-128 px squished to 64, one epoch of 32 items a round): each test takes seconds."""
import warnings
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from fastai.data.block import CategoryBlock, DataBlock, TransformBlock
from fastai.data.transforms import ColReader
from fastai.vision.all import (BBoxBlock, BBoxLblBlock, ImageBlock, RandomCrop, RandomResizedCrop, RandomResizedCropGPU, Resize,
                               aug_transforms, get_image_files)

from fastai_active.acquisition.selection import top_k
from fastai_active.data.boxes import coco_get_y
from fastai_active.data.split import ActiveSplit, Pool
from fastai_active.datasets import DETECTION_SHAPES, detection_folder
from fastai_active.core import derive_seed
from fastai_active.acquisition.strategies import as_acquisition
from fastai_active.detector import detection_learner, find_detector
from fastai_active.loop.learner import ActiveLearner, SimulatedOracle
from fastai_active.uncertainty.detection import DetectionSampler
from fastai_active.uncertainty.mc_dropout import MCDropout

from _learners import ignore_id_learner, two_features_and_id

N_INITIAL, N = 8, 4


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    "40 images of 96 to 128 px a side (most of them not square) with 0-6 shapes, and their COCO boxes file"
    return detection_folder(tmp_path_factory.mktemp('det')/'shapes', 40, seed=0, min_size=96, max_size=128)


def make_split(folder, path=None, item_tfms=None):
    "The user's DataBlock over the folder, under `ActiveSplit` (a `BoxSplit`), with balanced initial labels"
    dblock = DataBlock(blocks=(ImageBlock, BBoxBlock, BBoxLblBlock), get_items=get_image_files, n_inp=1,
                       get_y=coco_get_y(folder/'annotations.json'), item_tfms=item_tfms or Resize(64, method='squish'))
    split = ActiveSplit(dblock, folder/'images', path=path, vocab=DETECTION_SHAPES, min_epoch_items=32)
    if split.ledger.n_labelled == 0: split.label_random(N_INITIAL, balanced=True, seed=0)
    return split


def make_al(split, acquisition='box_entropy_sum', sampler=None, epochs=1, **kwargs):
    return ActiveLearner(split, lambda dls: detection_learner(dls), acquisition=acquisition, sampler=sampler,
                         oracle=SimulatedOracle.from_split(split), epochs=epochs, lr=2e-3, bs=16,
                         dl_kwargs=dict(num_workers=0), show_progress=False, **kwargs)


STRATEGIES = {  # name -> (sampler, K of the posterior samples it gives)
    'box_entropy_sum': (None, 1),                                # the default: one deterministic pass
    'box_bald_sum': (DetectionSampler(n_samples=3), 3),          # MC dropout on the head, boxes matched across samples
    'pixel_local_bald': (DetectionSampler(n_samples=3), 3),      # the same samples, as dense class maps
    'flip': (DetectionSampler(flip=True), 2),                    # the image and its mirror
}


@pytest.mark.parametrize('name', list(STRATEGIES))
def test_a_round_labels_the_top_scored_images(folder, name):
    sampler, K = STRATEGIES[name]
    split = make_split(folder)
    al = make_al(split, name, sampler)
    h = al.loop(rounds=1, n_per_round=N)
    assert isinstance(al.sampler, DetectionSampler) and al.sampler.K == K
    assert al.sampler.maps == (name == 'pixel_local_bald')
    assert h['round'].tolist() == [0, 1] and h.n_labelled.tolist() == [N_INITIAL, N_INITIAL + N]
    assert 'map50' in h and h.map50.between(0, 1).all()
    labels = split.ledger.to_df()
    assert (labels.groupby('round').size() == pd.Series({0: N_INITIAL, 1: N})).all()
    assert (labels.loc[labels['round'] == 1, 'source'] == 'oracle').all()

    # the next round's picks: the strategy's scores of the pool, highest first
    log_probs = al.score()
    assert log_probs.shape[:2] == (len(al.pool), K)
    scores = al.acquisition.scores(log_probs)
    best = top_k(scores, N)
    picked = al.acquire(N)
    assert picked.pool_idx.tolist() == best.idxs.tolist()
    assert picked.ds_idx.tolist() == al.pool.to_ds(best.idxs).tolist()
    np.testing.assert_allclose(picked.score, scores[best.idxs].numpy(), rtol=1e-6)
    assert sorted(al.ledger.pending().ds_idx) == sorted(picked.ds_idx)
    # each row carries the model's boxes for a person to correct
    assert picked.prediction.tolist() == al.predicted_boxes(picked.ds_idx.tolist())


def test_predicted_boxes_are_the_detections_in_the_image_s_own_pixels(folder):
    split = make_split(folder)
    al = make_al(split, epochs=3).fit()
    sizes = {int(i): Image.open(f).size for i, f in zip(split.pool().ds_idxs, split.items_at(split.pool().ds_idxs))}
    ds_idxs = [i for i, (w, h) in sizes.items() if w != h][:6]
    assert len(ds_idxs) == 6
    dets = al.learn.get_dets(al.dls.test_dl(split.items_at(torch.tensor(ds_idxs))))
    conf = dets[..., 4][dets[..., 4] > 0]
    assert len(conf) > 1, "the detector gives no box to compare"
    min_conf = float(conf.median())  # some boxes kept, some left out
    got = al.predicted_boxes(ds_idxs, min_conf=min_conf)
    n_kept = 0
    for i, d, (boxes, classes, confs) in zip(ds_idxs, dets, got):
        w, h = sizes[i]
        d = d[d[:, 4] >= min_conf]
        np.testing.assert_allclose(np.array(boxes).reshape(-1, 4), (d[:, :4] * torch.tensor([w, h, w, h])).numpy(), rtol=1e-6)
        assert classes == [DETECTION_SHAPES[c] for c in d[:, 5:].argmax(-1).tolist()]
        np.testing.assert_allclose(confs, d[:, 4].numpy())
        assert all(0 <= b[0] < b[2] <= w and 0 <= b[1] < b[3] <= h for b in boxes)
        n_kept += len(boxes)
    assert 0 < n_kept < len(conf)
    assert al.predicted_boxes(ds_idxs, min_conf=0.0) != got


def fastai_valid_boxes(image, boxes, resize):
    "fastai's own validation pipeline (the forward direction): boxes in the image's pixels -> [0, 1] of the model's input"
    dblock = DataBlock(blocks=(ImageBlock, BBoxBlock, BBoxLblBlock), n_inp=1, get_items=lambda _: [0], get_x=lambda _: image,
                       get_y=[lambda _: boxes, lambda _: ['circle'] * len(boxes)], splitter=lambda o: ([0], [0]), item_tfms=resize)
    _, got, _ = dblock.dataloaders(None, bs=1, num_workers=0).valid.one_batch()
    return (got[0].as_subclass(torch.Tensor) + 1) / 2


def test_predicted_boxes_under_a_crop_resize_go_back_where_fastai_s_crop_took_them(folder):
    "fastai's default `Resize` crops the centre: a predicted box, pushed forward again by fastai, is the detector's box"
    split = make_split(folder, item_tfms=Resize(64))   # method 'crop', fastai's default
    al = make_al(split, epochs=1).fit()
    pool = split.pool().ds_idxs
    files = split.items_at(pool)
    aspect = [max(Image.open(f).size) / min(Image.open(f).size) for f in files]
    ds_idxs = [int(pool[j]) for j in np.argsort(aspect)[::-1][:4]]   # the least square images: the crop cuts most there
    assert min(aspect[j] for j in np.argsort(aspect)[::-1][:4]) > 1.15
    dets = al.learn.get_dets(al.dls.test_dl(split.items_at(torch.tensor(ds_idxs))))
    got = al.predicted_boxes(ds_idxs, min_conf=0.0)
    n = 0
    for i, d, (boxes, classes, confs) in zip(ds_idxs, dets, got):
        f = split.items_at(torch.tensor([i]))[0]
        w, h = Image.open(f).size
        d = d[d[:, 4] >= 0.0]
        d = d[(d[:, 2] > d[:, 0]) & (d[:, 3] > d[:, 1])]   # the empty slots (all zeros) have no area: left out
        assert len(boxes) == len(d) == len(confs)
        assert all(0 <= b[0] < b[2] <= w and 0 <= b[1] < b[3] <= h for b in boxes)
        # a squish would have stretched the boxes over the whole image: the crop's window is a square of the short side
        assert max(b[3] - b[1] for b in boxes) <= min(w, h) + 1e-3 and max(b[2] - b[0] for b in boxes) <= min(w, h) + 1e-3
        np.testing.assert_allclose(fastai_valid_boxes(f, boxes, Resize(64)).numpy(), d[:, :4].numpy(), atol=1e-4)
        n += len(boxes)
    assert n > 0


@pytest.mark.parametrize('item_tfms, what', [(RandomResizedCrop(64), 'RandomResizedCrop in item_tfms'),
                                             ([Resize(80), RandomCrop(64)], 'RandomCrop in item_tfms')])
def test_a_resize_whose_crop_cannot_be_mapped_back_is_refused_before_the_ledger_opens(folder, tmp_path, item_tfms, what):
    with pytest.raises(ValueError, match=f"expected the images' size set by one `Resize`.*got {what}"):
        make_split(folder, path=tmp_path/'boxes.db', item_tfms=item_tfms)
    assert not (tmp_path/'boxes.db').exists()
    batch = DataBlock(blocks=(ImageBlock, BBoxBlock, BBoxLblBlock), get_items=get_image_files, n_inp=1, item_tfms=Resize(64),
                      get_y=coco_get_y(folder/'annotations.json'), batch_tfms=RandomResizedCropGPU(48))
    with pytest.raises(ValueError, match="got RandomResizedCropGPU in batch_tfms"):
        ActiveSplit(batch, folder/'images', path=tmp_path/'b.db', vocab=DETECTION_SHAPES)
    # resizing the whole input at validation (aug_transforms' size) keeps relative boxes: taken
    ok = DataBlock(blocks=(ImageBlock, BBoxBlock, BBoxLblBlock), get_items=get_image_files, n_inp=1, item_tfms=Resize(64),
                   get_y=coco_get_y(folder/'annotations.json'), batch_tfms=aug_transforms(size=48))
    ActiveSplit(ok, folder/'images', path=tmp_path/'c.db', vocab=DETECTION_SHAPES)


# --- refusals: each says what to pass instead, and leaves the user's ledger as it was ---------------------------

def refused(split, make, match, exc=ValueError):
    state = split.ledger.state_dict()
    with pytest.raises(exc, match=match): make()
    assert split.ledger.state_dict() == state


def test_a_classification_sampler_on_a_detector_is_refused_before_training(folder, tmp_path):
    split = make_split(folder, tmp_path/'labels.db')
    trained = []
    al = make_al(split, sampler=MCDropout(), fit=trained.append)
    refused(split, lambda: al.loop(rounds=1, n_per_round=N),
            r"predicts boxes \(a detection target\), which MCDropout\(.*\) cannot sample: pass sampler=DetectionSampler\(")
    assert trained == [] and al.history.empty and split.ledger.pending().empty


def test_a_strategy_the_detector_cannot_serve_is_refused(folder, tmp_path):
    split = make_split(folder, tmp_path/'labels.db')
    trained = []  # refused before any training
    refused(split, lambda: make_al(split, 'batchbald', DetectionSampler(n_samples=3), fit=trained.append).loop(rounds=1, n_per_round=N),
            r"BatchBALD.*a detector's image holds a varying number of boxes.*'powerbox_bald_sum'")
    assert trained == []
    # BALD of the boxes measures disagreement between samples: one deterministic pass (K=1) would score every image 0
    refused(split, lambda: make_al(split, 'box_bald_sum'),
            r"TopScores\(box_bald_sum\) measures the disagreement between posterior samples, but .* \(K=1\)")
    refused(split, lambda: make_al(split, 'pixel_local_bald'), r"TopScores\(local_bald\) .* \(K=1\)")


def test_a_detection_sampler_on_a_classifier_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({'x0': rng.normal(size=60), 'x1': rng.normal(size=60), 'id': np.arange(60)})
    df['y'] = np.where(df.x0 > df.x1, 'a', 'b')
    dblock = DataBlock(blocks=(TransformBlock, CategoryBlock), get_x=two_features_and_id, get_y=ColReader('y'))
    split = ActiveSplit(dblock, df, path=tmp_path/'labels.db', vocab=['a', 'b'], valid_items=df.iloc[:20], min_epoch_items=32)
    split.label_random(6, balanced=True, seed=0)
    make = lambda: ActiveLearner(split, ignore_id_learner, sampler=DetectionSampler(), oracle=SimulatedOracle.from_split(split),
                                 epochs=1, dl_kwargs=dict(num_workers=0), show_progress=False).loop(rounds=1, n_per_round=N)
    refused(split, make, r"DetectionSampler\(.*\) samples a detector's boxes, but the learner is not a detector: expected a "
                         r"model holding an FCOSDetector, got IgnoreId.*for a classifier use MCDropout\(\)", exc=TypeError)


# --- resumed from the ledger file ----------------------------------------------------------------------------------

def test_a_loop_resumed_from_its_ledger_acquires_what_an_uninterrupted_one_does(folder, tmp_path):
    def run(path, rounds):
        split = make_split(folder, path)
        make_al(split).loop(rounds=rounds, n_per_round=N)  # `rounds` is the total: the run goes on where it stopped
        return split
    reference = run(tmp_path/'reference.db', 2)
    run(tmp_path/'resumed.db', 1)
    resumed = run(tmp_path/'resumed.db', 2)  # a new session: a new split and ActiveLearner on the same file
    cols = ['ds_idx', 'key', 'label', 'source', 'round']
    ref, res = reference.ledger.to_df()[cols], resumed.ledger.to_df()[cols]
    assert len(ref) == N_INITIAL + 2 * N and ref['round'].max() == 2
    pd.testing.assert_frame_equal(res.reset_index(drop=True), ref.reset_index(drop=True))
    hist = ['round', 'n_labelled', 'map50']
    pd.testing.assert_frame_equal(resumed.ledger.history()[hist], reference.ledger.history()[hist])


@pytest.mark.parametrize('name', ['diverse_box_entropy_sum', 'coreset'])
def test_diversity_on_a_detector_reads_each_image_s_deepest_features(folder, name):
    "The pool's embeddings are the body's deepest map averaged over positions, and the picks the strategy's on them"
    split = make_split(folder)
    al = make_al(split, name).fit()
    log_probs = al.score()
    emb = al.embeddings
    assert emb.shape == (len(al.pool), 96)
    # independently: the detector's body run by hand on the pool's images, as the pool's loader gives them
    det = find_detector(al.learn.model).eval()
    body = det.fcos.backbone
    xb = torch.cat([b[0].as_subclass(torch.Tensor) for b in split.pool_dl(al.dls, al.pool)])
    with torch.no_grad(): deepest = body.s32(body.s16(body.stem((xb - det.mean) / det.std))).mean((2, 3))
    np.testing.assert_allclose(emb.numpy(), deepest.numpy(), rtol=1e-4, atol=1e-5)
    kw = dict(embeddings=emb)
    if al.acquisition.needs_labelled: kw['labelled_embeddings'] = al.labelled_embeddings()
    expected = al.acquisition(log_probs, N, seed=derive_seed(al.seed, 'acquire', al.round), **kw)
    picked = al.acquire(N)
    assert picked.pool_idx.tolist() == expected.idxs.tolist()
    if name.startswith('diverse_'):   # the box score ranks the diverse candidates
        scores = as_acquisition('box_entropy_sum').scores(log_probs)
        np.testing.assert_allclose(picked.score, scores[picked.pool_idx.tolist()].numpy(), rtol=1e-6)
        assert sorted(picked.score, reverse=True) == list(picked.score)


def test_a_detector_s_pool_in_chunks_picks_what_the_in_memory_pass_picks(folder):
    "The chunked scorer against the reference in-memory pass, item by item, over chunk sizes that do and do not divide the pool"
    from fastai_active.scale.chunked import ChunkedScorer
    split = make_split(folder)
    for name, sampler in [('box_entropy_sum', DetectionSampler(min_conf=0.05)), ('powerbox_bald_sum', DetectionSampler(n_samples=3, min_conf=0.05))]:
        al = make_al(split, name, sampler).fit()
        ref = al.acquire(N)
        al.ledger.cancel_requests()
        assert ref.score.nunique() == N, "the detector's scores tie: the comparison would say little"
        for chunk_size in (1, 7, len(split.pool())):
            al.scorer = ChunkedScorer(chunk_size=chunk_size)
            got = al.acquire(N)
            al.ledger.cancel_requests()
            assert got.pool_idx.tolist() == ref.pool_idx.tolist() and got.ds_idx.tolist() == ref.ds_idx.tolist()
            np.testing.assert_allclose(got.score, ref.score, rtol=1e-5)
        al.scorer = None
    # a diversity strategy reads embeddings the chunks cannot record on a detector: refused when the target is known
    al = make_al(split, 'diverse_box_entropy_sum', scorer=ChunkedScorer(chunk_size=7))
    state = split.ledger.state_dict()
    with pytest.raises(ValueError, match="score a detector's pool in memory"): al.fit()   # before any training
    assert al.learns == [] and split.ledger.state_dict() == state
    with pytest.raises(ValueError, match="score a detector's pool in memory"): make_al(split, 'coreset').fit().scorer = ChunkedScorer()


def test_picks_a_weak_detector_scored_zero_are_said_to_follow_pool_order(folder):
    "A detector whose boxes stay under min_conf scores images 0: the picks among those are pool order, and the user is told"
    split = make_split(folder)
    al = make_al(split, 'box_entropy_sum', epochs=1).fit()   # one epoch: no box reaches the default min_conf of 0.2
    with pytest.warns(UserWarning, match=r"of the 4 images picked have a score of 0: .* min_conf=0.2 .* pool order"):
        picked = al.acquire(N)
    assert (picked.score == 0).any()
    al.ledger.cancel_requests()
    al = make_al(split, 'box_entropy_sum', DetectionSampler(min_conf=0.05), epochs=1).fit()
    with warnings.catch_warnings():
        warnings.filterwarnings('error', message='.*have a score of 0')
        assert (al.acquire(N).score > 0).all()
