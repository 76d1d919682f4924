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
