"""Boxes through a real Label Studio server (issue 27): a RectangleLabels project, a batch whose tasks carry the
model's boxes as predictions, annotations posted through the API as the editor saves them (the predictions kept, one
box moved, an image with no object, a rotated rectangle), pulled into the ledger in pixels; the export reads the same.
Run with `make integration`."""
import json

import numpy as np
import pandas as pd
import pytest
import requests
from PIL import Image
from fastai.data.block import DataBlock
from fastai.vision.all import get_image_files
from fastai.vision.data import ImageBlock, BBoxBlock, BBoxLblBlock

from fastai_active.data.boxes import BoxSplit, coco_get_y, read_coco
from fastai_active.data.split import ActiveSplit
from fastai_active.datasets import detection_folder
from fastai_active.people.answers import answers
from fastai_active.people.label_studio import LabelStudioProject, import_annotations

from .servers import label_studio_server


def box_split(det, vocab, path):
    "A `BoxSplit` of the generated images: the kind ('boxes') and the classes come from it"
    block = DataBlock(blocks=(ImageBlock, BBoxBlock, BBoxLblBlock), n_inp=1, get_items=get_image_files,
                      get_y=coco_get_y(det/'annotations.json'))
    split = ActiveSplit(block, det/'images', path=path, vocab=vocab)
    assert isinstance(split, BoxSplit)
    return split


def test_boxes_round_trip_through_a_real_server(tmp_path):
    det = detection_folder(tmp_path/'shapes', n=8, seed=0)
    files, truth, vocab = read_coco(det/'annotations.json')
    truth = dict(zip(files, truth))
    split = box_split(det, vocab, tmp_path/'boxes.db')
    split.ledger.request(list(range(4)), scores=[4, 3, 2, 1])
    keys = split.ledger.keys(list(range(4)))
    # the model's boxes: the true ones shifted by half a pixel (fractional, as a detector gives them)
    preds = [([[x1 + 0.5, y1 + 0.25, x2 - 0.5, y2 - 0.25] for x1, y1, x2, y2 in truth[k][0]], truth[k][1],
              [0.9 - 0.1 * j for j in range(len(truth[k][0]))]) for k in keys]
    preds[2] = ([], [], [])
    req = pd.DataFrame({'ds_idx': range(4), 'prediction': preds})
    with label_studio_server() as server:
        print(f"Label Studio answered /health {server.started_s:.0f} s after start")
        ls = LabelStudioProject.create(server.url, server.token, split, title='boxes')
        assert ls.push(split, req) == 4
        assert ls.push(split, req) == 0  # each key once
        tasks = {t['data']['key']: t for t in ls.tasks()}
        assert set(tasks) == set(keys)
        for k, (boxes, classes, scores) in zip(keys, preds):  # the server kept the predictions as we sent them
            pred = tasks[k]['predictions'][0]
            assert [r['value']['rectanglelabels'] for r in pred['result']] == [[c] for c in classes]
            assert [r['score'] for r in pred['result']] == pytest.approx(scores)
            if scores: assert pred['score'] == pytest.approx(np.mean(scores))
        # the labeller: keeps the model's boxes on the first image, moves the first box of the second, confirms that the
        # third has no object, and draws a rotated rectangle on the fourth (which the import refuses)
        kept = tasks[keys[0]]['predictions'][0]['result']
        moved = json.loads(json.dumps(tasks[keys[1]]['predictions'][0]['result']))
        moved[0]['value']['x'] += 1.0
        w3, h3 = Image.open(det/'images'/keys[3]).size
        rotated = [{'type': 'rectanglelabels', 'from_name': 'label', 'to_name': 'image', 'original_width': w3,
                    'original_height': h3, 'image_rotation': 0,
                    'value': {'x': 10, 'y': 10, 'width': 20, 'height': 20, 'rotation': 20, 'rectanglelabels': [vocab[0]]}}]
        for k, result in zip(keys, [kept, moved, [], rotated]): ls.client.annotations.create(id=tasks[k]['id'], result=result)
        with pytest.warns(UserWarning, match='1 annotations were left out'): report = ls.pull(split)
        assert report.labelled == keys[:3] and report.problems.key.tolist() == [keys[3]]
        assert 'rotated by 20 degrees' in report.problems.why[0] and f"task {tasks[keys[3]]['id']}" in report.problems.why[0]
        labels = split.ledger.labels(list(range(4)))
        np.testing.assert_allclose(labels[0][0], preds[0][0], atol=1e-6, rtol=0)
        assert labels[0][1] == preds[0][1]
        w1 = Image.open(det/'images'/keys[1]).size[0]
        want = np.array(preds[1][0])
        want[0, [0, 2]] += w1 / 100
        np.testing.assert_allclose(labels[1][0], want, atol=1e-6, rtol=0)
        assert labels[2] == [[], []] and 3 not in labels and 3 in split.ledger.pending().ds_idx.tolist()
        log = answers(split)
        assert log.annotator.unique().tolist() == [server.email] and log.ref.str.startswith(f'label-studio:{ls.id}:').all()
        with pytest.warns(UserWarning): assert ls.pull(split).n_changed == 0  # idempotent
        export = requests.get(f'{server.url}/api/projects/{ls.id}/export', params={'exportType': 'JSON'},
                              headers=ls.client._client_wrapper.get_headers(), timeout=30).json()
        with pytest.warns(UserWarning):
            assert import_annotations(split, export, users=ls).n_changed == 0
        fresh = box_split(det, vocab, tmp_path/'fresh.db')
        fresh.ledger.request(list(range(4)))
        with pytest.warns(UserWarning): import_annotations(fresh, export, users=ls)
    assert fresh.ledger.labels(list(range(4))) == labels  # the export file gives the ledger the live pull gave
