"Detection data: the generated folder's boxes checked against the drawn pixels, computed here independently of the generator"
import hashlib, json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from fastai_active.datasets import DETECTION_SHAPES, detection_folder

@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    return detection_folder(tmp_path_factory.mktemp('det')/'shapes', n=30, seed=3)

def _coco(path): return json.loads((Path(path)/'annotations.json').read_text())

def _pixel_boxes(img:np.ndarray)->list[tuple[list[int], float]]:
    "`[x, y, w, h]` and fill ratio of every connected region of saturated pixels (the background is grey)"
    img = img.astype(int)
    saturated = img.max(-1) - img.min(-1) > 80
    regions, _ = ndimage.label(saturated)
    out = []
    for sl in ndimage.find_objects(regions):
        ys, xs = sl
        box = [xs.start, ys.start, xs.stop - xs.start, ys.stop - ys.start]
        out.append((box, saturated[sl].mean()))
    return out

def test_counts_and_layout(folder):
    coco = _coco(folder)
    test_files = sorted(p.name for p in (folder/'images').glob('*.png'))
    assert test_files == sorted(im['file_name'] for im in coco['images']) and len(test_files) == 30
    assert [c['name'] for c in coco['categories']] == list(DETECTION_SHAPES)
    per_image = {im['id']: 0 for im in coco['images']}
    for a in coco['annotations']: per_image[a['image_id']] += 1
    counts = list(per_image.values())
    assert counts.count(0) == 3  # round(30 * 0.1) images with no object
    assert max(counts) <= 6 and min(c for c in counts if c) >= 1
    assert len({a['id'] for a in coco['annotations']}) == len(coco['annotations'])

def test_boxes_inside_their_image(folder):
    coco = _coco(folder)
    sizes = {im['id']: (im['width'], im['height']) for im in coco['images']}
    for im in coco['images']:
        w, h = Image.open(folder/'images'/im['file_name']).size
        assert (w, h) == sizes[im['id']] and 96 <= w <= 128 and 96 <= h <= 128
    for a in coco['annotations']:
        x, y, bw, bh = a['bbox']
        w, h = sizes[a['image_id']]
        assert x >= 0 and y >= 0 and bw > 0 and bh > 0 and x + bw <= w and y + bh <= h, a
        assert a['area'] == bw * bh

def test_boxes_match_the_drawn_objects(folder):
    "Every annotation is the bounding box of one saturated region of the image, and its class fits the region's fill"
    coco = _coco(folder)
    names = {c['id']: c['name'] for c in coco['categories']}
    fill_of = {'square': (0.99, 1.0), 'circle': (0.7, 0.86), 'triangle': (0.4, 0.62)}
    n_checked = 0
    for im in coco['images']:
        img = np.array(Image.open(folder/'images'/im['file_name']))
        found = {tuple(box): fill for box, fill in _pixel_boxes(img)}
        anns = [a for a in coco['annotations'] if a['image_id'] == im['id']]
        assert sorted(found) == sorted(tuple(a['bbox']) for a in anns), im['file_name']
        for a in anns:
            lo, hi = fill_of[names[a['category_id']]]
            assert lo <= found[tuple(a['bbox'])] <= hi, (im['file_name'], a)
            n_checked += 1
    assert n_checked > 50

def test_same_seed_same_files(folder, tmp_path):
    def digest(path): return {p.relative_to(path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                              for p in sorted(path.rglob('*')) if p.is_file()}
    again = detection_folder(tmp_path/'again', n=30, seed=3)
    assert digest(again) == digest(folder)
    other = detection_folder(tmp_path/'other', n=30, seed=4)
    assert digest(other)['annotations.json'] != digest(folder)['annotations.json']

# ---- box labels: the checker and the COCO reader / writer ----
from hypothesis import given, settings, strategies as st
from fastai_active.data.boxes import check_box_label, read_coco, write_coco

VOCAB = ['circle', 'square', 'triangle']

@st.composite
def image_labels(draw, whole_pixels=True):
    "An image size and a valid label inside it: 0 to 6 boxes `[x1, y1, x2, y2]` with classes of `VOCAB`"
    w, h = draw(st.integers(1, 300)), draw(st.integers(1, 300))
    n = draw(st.integers(0, 6))
    boxes = []
    for _ in range(n):
        if whole_pixels:
            x1, x2 = sorted(draw(st.lists(st.integers(0, w), min_size=2, max_size=2, unique=True)))
            y1, y2 = sorted(draw(st.lists(st.integers(0, h), min_size=2, max_size=2, unique=True)))
        else:
            x1, x2 = sorted(draw(st.lists(st.floats(0, w), min_size=2, max_size=2, unique=True)))
            y1, y2 = sorted(draw(st.lists(st.floats(0, h), min_size=2, max_size=2, unique=True)))
        boxes.append([float(x1), float(y1), float(x2), float(y2)])
    classes = draw(st.lists(st.sampled_from(VOCAB), min_size=n, max_size=n))
    return (w, h), (boxes, classes)

@settings(max_examples=60, deadline=None)
@given(st.lists(image_labels(), min_size=1, max_size=5))
def test_whole_pixel_labels_round_trip_exactly(tmp_path_factory, sized):
    sizes, labels = [s for s, _ in sized], [l for _, l in sized]
    files = [f'{i:03d}.png' for i in range(len(labels))]
    fname = write_coco(tmp_path_factory.mktemp('coco')/'boxes.json', files, labels, VOCAB, sizes=sizes)
    got_files, got_labels, vocab = read_coco(fname)
    assert (got_files, vocab) == (files, VOCAB)
    assert [tuple(l) for l in got_labels] == [tuple(l) for l in labels]

@settings(max_examples=60, deadline=None)
@given(st.lists(image_labels(whole_pixels=False), min_size=1, max_size=3))
def test_fractional_labels_round_trip_to_rounding(tmp_path_factory, sized):
    "Boxes in fractions of a pixel come back within rounding (x2 is recomputed as x + w)"
    sizes, labels = [s for s, _ in sized], [l for _, l in sized]
    files = [f'{i}.png' for i in range(len(labels))]
    try: fname = write_coco(tmp_path_factory.mktemp('coco')/'boxes.json', files, labels, VOCAB, sizes=sizes)
    except ValueError as e:  # a box of width below float resolution is degenerate: refused, not written
        assert 'positive width and height' in str(e); return
    for (boxes, classes), (got_boxes, got_classes) in zip(labels, read_coco(fname)[1]):
        assert got_classes == classes
        np.testing.assert_allclose(np.array(got_boxes).reshape(-1, 4), np.array(boxes).reshape(-1, 4), rtol=0, atol=1e-9)

@settings(max_examples=100, deadline=None)
@given(image_labels())
def test_checked_label_is_canonical_and_stable(sized):
    size, label = sized
    once = check_box_label(label, VOCAB, size)
    assert once == check_box_label(once, VOCAB, size) == (label[0], label[1])
    assert json.loads(json.dumps(once)) == list(once)  # what the ledger stores

@settings(max_examples=100, deadline=None)
@given(image_labels(), st.data())
def test_any_corrupted_box_is_refused(sized, data):
    "Moving one edge of a valid box outside the image, onto its other edge, or to NaN is refused, naming that box"
    (w, h), (boxes, classes) = sized
    if not boxes: return
    i = data.draw(st.integers(0, len(boxes) - 1))
    box = list(boxes[i])
    how = data.draw(st.sampled_from(['outside', 'degenerate', 'swapped', 'nan']))
    if how == 'outside': box[2] = w + data.draw(st.integers(1, 50))
    elif how == 'degenerate': box[3] = box[1]
    elif how == 'swapped': box[0], box[2] = box[2], box[0]
    else: box[data.draw(st.integers(0, 3))] = float('nan')
    bad = boxes[:i] + [box] + boxes[i + 1:]
    with pytest.raises(ValueError, match=f'box {i}'): check_box_label((bad, classes), VOCAB, (w, h))

def test_the_generated_folder_reads_back_complete(folder):
    files, labels, vocab = read_coco(folder/'annotations.json')
    coco = _coco(folder)
    assert files == [im['file_name'] for im in coco['images']] and vocab == list(DETECTION_SHAPES)
    assert sum(len(c) for _, c in labels) == len(coco['annotations'])
    assert sum(not c for _, c in labels) == 3  # the images with no object are kept, as ([], [])

# ---- box labels under ActiveSplit: BoxSplit ----
import shutil, warnings
import torch
from fastai.vision.all import DataBlock, ImageBlock, BBoxBlock, BBoxLblBlock, Resize, get_image_files, TensorBase
from fastai_active.data.split import ActiveSplit
from fastai_active.data.boxes import BoxSplit, coco_get_y, box_pad
from fastai_active.loop.learner import SimulatedOracle

NA_VOCAB = ['#na#', *DETECTION_SHAPES]

@pytest.fixture(scope='module')
def folder24(tmp_path_factory):
    return detection_folder(tmp_path_factory.mktemp('det24')/'shapes', n=24, seed=0)

def _dblock(folder, coco=None):
    return DataBlock(blocks=(ImageBlock, BBoxBlock, BBoxLblBlock), get_items=get_image_files, n_inp=1,
                     get_y=coco_get_y(coco or Path(folder)/'annotations.json'), item_tfms=Resize(128, method='squish'))

def _split(folder, **kwargs): return ActiveSplit(_dblock(folder), folder, vocab=DETECTION_SHAPES, **kwargs)

def _file_labels(path):
    "`{key: (boxes, classes)}` of the boxes file, keys as the split has them (paths relative to the folder)"
    files, labels, _ = read_coco(Path(path)/'annotations.json')
    return {f'images/{f}': label for f, label in zip(files, labels)}

def _stored(split): return {split.ledger.keys([i])[0]: tuple(l) for i, l in split.ledger.labels().items()}

def _plain(t): return TensorBase(t).as_subclass(torch.Tensor)

def test_active_split_gives_a_box_split(folder24, monkeypatch):
    split = _split(folder24)
    assert type(split) is BoxSplit and split.vocab == list(DETECTION_SHAPES) and len(split.pool()) == 24
    assert type(BoxSplit(_dblock(folder24), folder24, vocab=DETECTION_SHAPES)) is BoxSplit
    monkeypatch.delitem(ActiveSplit._claims, 'BoxSplit')  # as if `fastai_active.data.boxes` were not imported
    with pytest.raises(TypeError, match=r"split by BoxSplit, which `fastai_active\.data\.boxes` registers"): _split(folder24)

def test_labels_round_trip_through_the_ledger(folder24, tmp_path):
    truth = _file_labels(folder24)
    split = _split(folder24, path=tmp_path/'labels.db')
    split.label_random(4, balanced=True, seed=0)
    oracle = SimulatedOracle.from_split(split)
    asked = split.pool().ds_idxs[:5]
    split.ledger.request(asked)
    split.ledger.label(asked, oracle(asked), source=oracle.source)
    key = split.ledger.keys(split.pool().ds_idxs[:1])[0]
    split.label({key: truth[key]}, annotator='ana', unrequested=True)
    stored = _stored(split)
    assert len(stored) == 10 and stored == {k: truth[k] for k in stored}
    assert any(not classes for _, classes in truth.values()) and split.true_labels(split.idxs_of(list(truth))) == list(truth.values())
    df = split.ledger.to_df().set_index('key')
    assert sorted(df.source.unique()) == ['human', 'initial', 'oracle'] and df.loc[key, 'annotator'] == 'ana'
    counts = split.ledger.class_counts()
    assert counts == {c: sum(classes.count(c) for _, classes in stored.values()) for c in DETECTION_SHAPES}
    split.ledger.close()
    again = _split(folder24, path=tmp_path/'labels.db')  # from the file
    assert _stored(again) == stored

def _all_rows(dl):
    "Every (item, label, boxes, classes) of a loader, in order"
    dl = dl.new(shuffle=False, drop_last=False)
    out, rows = [], iter(dl.dataset.items)
    for _, boxes, classes in dl:
        for b, c in zip(_plain(boxes), _plain(classes)):
            row = next(rows)
            out.append((row.item, row.label, b, c))
    return out

def test_batches_decode_to_the_files_boxes(folder24):
    truth, sizes = _file_labels(folder24), {im['file_name']: (im['width'], im['height']) for im in _coco(folder24)['images']}
    split = _split(folder24)
    split.label_random(14, seed=0)
    dls = split.dataloaders(bs=4)
    images, boxes, classes = dls.one_batch()
    assert images.shape == (4, 3, 128, 128) and boxes.shape[0] == 4 and boxes.shape[2] == 4 and classes.shape == boxes.shape[:2]
    assert classes.dtype == torch.long and boxes.abs().max() <= 1
    n = 0
    for dl in (dls.train, dls.valid):
        for item, label, b, c in _all_rows(dl):
            w, h = sizes[item.name]
            want_boxes, want_classes = truth[f'images/{item.name}']
            assert tuple(label) == (want_boxes, want_classes)
            keep = c > 0  # 0: padding
            assert [NA_VOCAB[i] for i in c[keep].tolist()] == want_classes
            decoded = (b[keep] + 1) / 2 * torch.tensor([w, h, w, h])  # the closed form of fastai's PointScaler
            np.testing.assert_allclose(decoded.numpy(), np.array(want_boxes, dtype=np.float32).reshape(-1, 4), atol=1e-3)
            assert (b[~keep] == 0).all()
            n += 1
    assert n == 14
    pool = split.pool()
    xb, = split.pool_dl(dls, pool).one_batch()  # images only
    assert xb.shape[1:] == (3, 128, 128)
    split.cache = None  # without the item cache, the test loader's batches go through `box_pad` too
    xb, = split.pool_dl(split.dataloaders(bs=4), pool).one_batch()
    assert xb.shape[1:] == (3, 128, 128)

def test_vocab_is_fixed_across_rounds(folder24):
    truth = _file_labels(folder24)
    split = _split(folder24)
    few = sorted(truth, key=lambda k: (len(set(truth[k][1])), k))[:3]  # images of at most one class each
    assert set().union(*(truth[k][1] for k in few)) < set(DETECTION_SHAPES)
    split.label({k: truth[k] for k in few}, source='initial')
    first = split.dataloaders(bs=2)
    split.label_random(10, seed=1)
    second = split.dataloaders(bs=4)
    assert list(first.vocab) == list(second.vocab) == NA_VOCAB
    for dls in (first, second):
        for dl in (dls.train, dls.valid):
            for item, label, _, c in _all_rows(dl):
                assert [NA_VOCAB[i] for i in c[c > 0].tolist()] == label[1]

def test_images_with_no_object(folder24):
    truth = _file_labels(folder24)
    empty = [k for k, (_, classes) in truth.items() if not classes]
    assert len(empty) == 2
    split = _split(folder24)
    split.label({k: ([], []) for k in empty}, source='initial')
    assert list(split.ledger.labels().values()) == [[[], []], [[], []]]
    assert split.ledger.class_counts() == {c: 0 for c in DETECTION_SHAPES}
    dls = split.dataloaders()
    for dl in (dls.train, dls.valid):
        images, boxes, classes = dl.one_batch()
        assert images.shape == (1, 3, 128, 128) and boxes.shape == (1, 0, 4) and classes.shape == (1, 0)
        assert classes.dtype == torch.long
    # mixed in a batch with images that have boxes: padded with class 0
    samples = [(torch.zeros(3, 2, 2), torch.zeros(0, 4), torch.zeros(0)), (torch.zeros(3, 2, 2), torch.tensor([[-0.5, -0.5, 0.5, 0.5], [0., 0, 1, 1]]), torch.tensor([1, 2]))]
    padded = box_pad(samples)
    assert padded[0][2].tolist() == [0, 0] and padded[0][1].shape == (2, 4) and padded[0][2].dtype == torch.long

BAD = {'outside': (lambda w, h: ([[0, 0, 10, h + 1]], ['circle']), "expected box 0 inside the image, 0 <= x1 < x2 <= {w} and 0 <= y1 < y2 <= {h}"),
       'far outside': (lambda w, h: ([[0, 0, 200, 10]], ['circle']), "expected box 0 inside the image, 0 <= x1 < x2 <= "),
       'x1 > x2': (lambda w, h: ([[20, 0, 10, 10]], ['circle']), "with x1 <= x2 and y1 <= y2, got [20, 0, 10, 10]"),
       'class': (lambda w, h: ([[0, 0, 10, 10]], ['hexagon']), "got 'hexagon' for box 0"),
       'shape': (lambda w, h: ([0, 0, 10, 10], ['circle']), "expected boxes of shape [n, 4]"),
       'counts': (lambda w, h: ([[0, 0, 10, 10]], ['circle', 'square']), "got 1 boxes and 2 classes"),
       'not a pair': (lambda w, h: 'circle', "expected a label (boxes [n, 4], classes [n])")}

@pytest.mark.parametrize('bad', list(BAD))
def test_bad_labels_are_refused_with_nothing_written(folder24, bad):
    split = _split(folder24)
    split.label_random(3, seed=0)
    before = split.ledger.state_dict()
    i = int(split.pool().ds_idxs[0])
    key = split.ledger.keys([i])[0]
    w, h = Image.open(folder24/key).size
    make, message = BAD[bad]
    label, message = make(w, h), message.format(w=w, h=h)
    good = split.true_labels([int(split.pool().ds_idxs[1])])[0]
    j = int(split.pool().ds_idxs[1])
    split.ledger.request([i, j])
    attempts = [lambda: split.label({key: label}, unrequested=True),
                lambda: split.label([j, i], [good, label]),  # one bad label among good ones: none is written
                lambda: split.ledger.label([i], [label], source='oracle'),
                lambda: split.ledger.correct(split.ledger.labelled_idxs()[:1], [label]),
                lambda: split.ledger.set_pseudo([i], [label]),
                lambda: split.label_random(1, labels_of=lambda ds_idxs: [label] * len(ds_idxs))]
    if bad == 'outside': attempts = attempts[:3] + attempts[4:5]  # by the size of image i: not for the other images of `correct`, `label_random`
    for attempt in attempts:
        with pytest.raises((ValueError, TypeError)) as e: attempt()
        assert message in str(e.value), (bad, str(e.value))
    after = split.ledger.state_dict()
    assert {t: after[t] for t in ('labels', 'superseded', 'pseudo')} == {t: before[t] for t in ('labels', 'superseded', 'pseudo')}
    assert f"label of '{key}'" in str(pytest.raises((ValueError, TypeError), attempts[0]).value)

def test_missing_answer_and_images_outside_the_boxes_file(folder24, tmp_path):
    split = _split(folder24)
    key = split.ledger.keys([0])[0]
    with pytest.raises(ValueError, match='no answer yet'): split.label({key: None}, unrequested=True)
    assert split.ledger.n_labelled == 0
    get_boxes, _ = coco_get_y(folder24/'annotations.json')
    with pytest.raises(ValueError, match=r"image .*other\.png is not in the boxes file .*annotations\.json"): get_boxes(tmp_path/'other.png')
    # a boxes file whose file names carry the folder: matched on the end of the item's path
    coco = _coco(folder24)
    for im in coco['images']: im['file_name'] = 'images/' + im['file_name']
    (tmp_path/'nested.json').write_text(json.dumps(coco))
    nested = ActiveSplit(_dblock(folder24, tmp_path/'nested.json'), folder24, vocab=DETECTION_SHAPES)
    assert nested.true_labels(nested.idxs_of(list(_file_labels(folder24)))) == list(_file_labels(folder24).values())

def test_a_growing_folder_keeps_every_label(tmp_path):
    full = detection_folder(tmp_path/'full', n=30, seed=1)
    grows = tmp_path/'grows'
    (grows/'images').mkdir(parents=True)
    shutil.copy(full/'annotations.json', grows/'annotations.json')  # the boxes file lists all 30 already
    names = sorted(p.name for p in (full/'images').glob('*.png'))
    for n in names[:24]: shutil.copy(full/'images'/n, grows/'images'/n)
    split = _split(grows, path=tmp_path/'labels.db')
    split.label_random(6, balanced=True, seed=0)
    oracle = SimulatedOracle.from_split(split)
    asked = split.pool().ds_idxs[:4]
    split.ledger.request(asked)
    split.ledger.label(asked, oracle(asked), source=oracle.source)
    before = _stored(split)
    for n in names[24:]: shutil.copy(full/'images'/n, grows/'images'/n)
    report = split.refresh()
    assert sorted(split.ledger.keys(report.added)) == [f'images/{n}' for n in names[24:]]
    assert _stored(split) == before and len(split.pool()) == 30 - 10
    new = report.added[:2]
    split.ledger.request(new)
    split.ledger.label(new, oracle(new), source=oracle.source)
    truth = _file_labels(grows)
    assert _stored(split) == {k: truth[k] for k in _stored(split)} and len(_stored(split)) == 12
    split.dataloaders(bs=4).one_batch()
    after = _stored(split)
    split.ledger.close()
    assert _stored(_split(grows, path=tmp_path/'labels.db')) == after

def test_a_fixed_validation_set_of_other_images(folder24, tmp_path):
    other = detection_folder(tmp_path/'valid', n=4, seed=5)
    valid_items = sorted((other/'images').glob('*.png'))
    files, labels, _ = read_coco(other/'annotations.json')
    valid_labels = [dict(zip(files, labels))[p.name] for p in valid_items]
    split = _split(folder24, valid_items=valid_items, valid_labels=valid_labels)
    split.label_random(4, seed=0)
    dls = split.dataloaders(bs=2)
    assert len(dls.valid_ds) == 4 and [tuple(r.label) for r in dls.valid_ds.items] == valid_labels
    w, h = Image.open(valid_items[0]).size
    with pytest.raises(ValueError, match=r"label of valid item .*0000\.png.*: expected box 0 inside the image"):
        _split(folder24, valid_items=valid_items, valid_labels=[([[0, 0, w + 1, 1]], ['circle'])] + valid_labels[1:])
