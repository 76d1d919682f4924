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
