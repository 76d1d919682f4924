"Active learning for binary segmentation through a fastai MaskBlock: mask files as labels, dense log-probs."
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from fastai.data.block import DataBlock
from fastai.data.transforms import get_image_files
from fastai.vision.data import ImageBlock, MaskBlock
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat
from fastai.metrics import Dice

from fastai_active.acquisition.scores import entropy
from fastai_active.acquisition.selection import Acquisition, top_k
from fastai_active.data.split import ActiveSplit
from fastai_active.datasets import shapes_folder, mask_of
from fastai_active.loop.learner import ActiveLearner, SimulatedOracle
from fastai_active.models import SmallUNet


class MeanPixelEntropy(Acquisition):
    "Top-k of the mean per-pixel predictive entropy of each image"
    dense = True
    def __call__(self, log_probs, n, seed=None): return top_k(entropy(log_probs, dense=True).flatten(1).mean(1), n)


def make_learner(dls):
    return Learner(dls, SmallUNet(n_classes=2, width=8), loss_func=CrossEntropyLossFlat(axis=1), metrics=Dice())


def shapes_split(tmp_path, n, n_valid, n_initial):
    "An ActiveSplit of generated shapes through a MaskBlock, its ledger on disk, `n_initial` random labels"
    path = shapes_folder(tmp_path/'shapes', n=n, size=24, seed=0)
    valid = shapes_folder(tmp_path/'valid', n=n_valid, size=24, seed=1)
    dblock = DataBlock(blocks=(ImageBlock, MaskBlock(codes=['background', 'shape'])), get_items=get_image_files, get_y=mask_of)
    split = ActiveSplit(dblock, path/'images', path=tmp_path/'labels.db', valid_items=get_image_files(valid/'images'),
                        min_epoch_items=32)
    split.label_random(n_initial, seed=0)
    return split


def test_segmentation_loop_with_mask_files(tmp_path):
    split = shapes_split(tmp_path, n=60, n_valid=12, n_initial=6)
    labels = split.ledger.labels()
    assert all(Path(v) == mask_of(split.item(i)) for i, v in labels.items())  # a mask file is the label
    al = ActiveLearner(split, make_learner, acquisition=MeanPixelEntropy(), oracle=SimulatedOracle.from_split(split),
                       epochs=2, lr=1e-2, bs=8, dl_kwargs=dict(num_workers=0), seed=0, show_progress=False)
    h = al.loop(rounds=1, n_per_round=4)
    assert h.n_labelled.tolist() == [6, 10]
    assert 0 <= h.dice.iloc[-1] <= 1
    # the loop scored the pool of the first round densely: [N, K=1, C=2, H, W]
    assert al.log_probs.shape == (54, 1, 2, 24, 24)
    # the acquired items are those with the highest mean pixel entropy, in dataset indices
    scores = entropy(al.log_probs, dense=True).flatten(1).mean(1)
    acquired = al.ledger.to_df().query('round == 1').ds_idx.tolist()
    assert sorted(acquired) == sorted(al.pool.to_ds(scores.topk(4).indices).tolist())
    # training masks are read from the files the ledger points at
    dls = split.dataloaders(num_workers=0)
    x, y = dls.train_ds[0]
    i = split.train_valid_idxs()[0][0].item()
    assert np.array_equal(np.array(y), np.array(Image.open(mask_of(split.item(i)))))


def test_segmentation_pseudo_labels_are_mask_files(tmp_path):
    from fastai_active.loop.learner import PseudoLabeller
    split = shapes_split(tmp_path, n=40, n_valid=8, n_initial=8)
    al = ActiveLearner(split, make_learner, acquisition=MeanPixelEntropy(), oracle=SimulatedOracle.from_split(split),
                       pseudo=PseudoLabeller(0.6), epochs=2, lr=1e-2, bs=8, dl_kwargs=dict(num_workers=0), seed=0,
                       show_progress=False)
    al.loop(rounds=2, n_per_round=4)
    pseudo = al.ledger.labels(pseudo=True)
    assert pseudo, "a 0.6 threshold on a two-class model pseudo-labels some images"
    folder = tmp_path/'labels.db.pseudo'
    assert {Path(p).parent for p in pseudo.values()} == {folder}
    assert sorted(folder.glob('*.png')) == sorted(Path(p) for p in pseudo.values())  # stale masks are removed
    # the stored mask is the model's argmax prediction for that image, as scored
    i, p = next(iter(pseudo.items()))
    pred = al.log_probs[al.pool.to_pool([i])[0], 0].argmax(0).numpy()
    assert np.array_equal(np.array(Image.open(p)), pred)
    # training reads the pseudo masks like human ones
    dls = split.dataloaders(with_pseudo=True, num_workers=0)
    assert len(dls.train_ds) >= len(pseudo)


def test_pseudo_mask_accuracy_is_pixel_agreement(tmp_path):
    from fastai_active.loop.learner import _agreement
    a, b = np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8)
    b[0, :2] = 1
    Image.fromarray(a).save(tmp_path/'a.png')
    Image.fromarray(b).save(tmp_path/'b.png')
    assert _agreement(str(tmp_path/'a.png'), tmp_path/'b.png') == 14 / 16
    assert _agreement('3', '3') == 1.0 and _agreement('3', '4') == 0.0
