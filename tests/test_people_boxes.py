"""People label boxes (issue 27): detection labels `(boxes, classes)` in pixels go to Label Studio as rectangles in
percentages of the image, with the model's boxes as predictions to correct, and come back to the same pixels; bad
rectangles are refused naming the task, with nothing written; the widget accepts or rejects the model's boxes.

Most tests use a plain `ActiveSplit` over the images with a `TransformBlock` target, whose ledger stores each label as
JSON (so `kind='boxes'` and `vocab=` are passed): the functions under test work on the label format and the requests'
DataFrame, not on a detector. The last ones use a `BoxSplit`, which gives the kind and the classes itself."""
import io, json, warnings
from types import SimpleNamespace as NS
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from fastai.data.block import DataBlock, TransformBlock
from fastai.vision.all import get_image_files
from fastai.vision.data import ImageBlock

from fastai_active.data.boxes import read_coco
from fastai_active.data.split import ActiveSplit
from fastai_active.datasets import detection_folder
from fastai_active.people.answers import answers
from fastai_active.people.label_studio import LabelStudioProject, import_annotations, label_config, to_tasks
from fastai_active.people.widgets import LabelWidget, _BOX_COLOURS


@pytest.fixture(scope='module')
def shapes_folder(tmp_path_factory):
    "Eight generated images of 96-128 px with 0-6 shapes, and their true labels by file name"
    det = detection_folder(tmp_path_factory.mktemp('shapes')/'shapes', n=8, seed=0)
    files, truth, vocab = read_coco(det/'annotations.json')
    return det, dict(zip(files, truth)), vocab


def box_split(det, path=None):
    return ActiveSplit(DataBlock(blocks=(ImageBlock, TransformBlock), get_items=get_image_files), det/'images', path=path)


def size_of(det, key): return Image.open(det/'images'/key).size


def float_boxes(det, key, n, seed):
    "`n` seeded boxes with fractional pixel coordinates inside the image of `key`"
    w, h = size_of(det, key)
    rng = np.random.default_rng(seed)
    x1, y1 = rng.uniform(0, w - 10, n), rng.uniform(0, h - 10, n)
    return np.stack([x1, y1, rng.uniform(x1 + 1, w), rng.uniform(y1 + 1, h)], 1).tolist()


def exported(task, tid, result, aid=None, email='ana@example.com', updated=None, cancelled=False):
    "A task of Label Studio's JSON export with one annotation of `result` (the layout a 1.23 server writes)"
    ann = {'id': aid or 500 + tid, 'completed_by': {'id': 7, 'email': email, 'first_name': '', 'last_name': ''},
           'result': [{**r, 'origin': 'prediction-changed'} for r in result], 'was_cancelled': cancelled,
           'ground_truth': False, 'created_at': '2026-12-05T10:00:00.000000Z',
           'updated_at': updated or f'2026-12-05T10:{tid:02d}:00.000000Z', 'lead_time': 12.5, 'task': tid, 'project': 9}
    return {'id': tid, 'annotations': [ann], 'data': task['data'], 'project': 9, 'predictions': task.get('predictions', [])}


def rect(x, y, width, height, name, size, rotation=0, type='rectanglelabels'):
    "A rectangle as Label Studio's editor saves it (percentages of the image)"
    value = {'x': x, 'y': y, 'width': width, 'height': height, 'rotation': rotation}
    if name is not None: value['rectanglelabels'] = name if isinstance(name, list) else [name]
    return {'id': 'r1', 'type': type, 'from_name': 'label', 'to_name': 'image', 'original_width': size[0],
            'original_height': size[1], 'image_rotation': 0, 'value': value}


def requested(det, n=4, path=None):
    split = box_split(det, path)
    split.ledger.request(list(range(n)), scores=list(range(n, 0, -1)))
    return split, split.ledger.keys(list(range(n)))


# --- the labelling configuration ---------------------------------------------------------------------------------

def test_label_config_boxes():
    root = ET.fromstring(label_config(['circle', 'square & co'], 'boxes'))
    control = root.find('RectangleLabels')
    assert [l.get('value') for l in control.iter('Label')] == ['circle', 'square & co']
    assert (control.get('name'), control.get('toName'), control.get('canRotate')) == ('label', 'image', 'false')
    assert root.find('Image').get('value') == '$image' and root.find('Collapse') is None
    with pytest.raises(ValueError, match="boxes labels need image items, got data='text'"): label_config(['a'], 'boxes', data='text')


# --- pixels -> task -> annotation -> label ------------------------------------------------------------------------

def test_round_trip_pixels_task_annotation_label(shapes_folder):
    det, truth, vocab = shapes_folder
    split, keys = requested(det, 4)
    rng = np.random.default_rng(1)
    preds = []
    for j, k in enumerate(keys):  # fractional boxes, as a detector gives them; the third image: no object
        n = 0 if j == 2 else 1 + j
        preds.append((float_boxes(det, k, n, seed=j), [vocab[int(c)] for c in rng.integers(0, len(vocab), n)],
                      rng.uniform(0.05, 1, n).tolist()))
    req = pd.DataFrame({'ds_idx': range(4), 'score': range(4, 0, -1), 'prediction': preds})
    tasks = to_tasks(split, req, kind='boxes', vocab=vocab)
    assert [t['data']['key'] for t in tasks] == keys  # most informative first
    json.loads(json.dumps(tasks))  # plain JSON
    for t, (boxes, classes, scores) in zip(tasks, preds):
        pred = t['predictions'][0]
        assert pred['model_version'].startswith('fastai_active round')
        w, h = size_of(det, t['data']['key'])
        for r, box, c, p in zip(pred['result'], boxes, classes, scores):
            assert (r['type'], r['from_name'], r['to_name']) == ('rectanglelabels', 'label', 'image')
            assert (r['original_width'], r['original_height'], r['score']) == (w, h, p)
            v = r['value']
            assert v['rectanglelabels'] == [c] and v['rotation'] == 0
            assert 0 <= v['x'] and v['x'] + v['width'] <= 100 + 1e-9 and 0 <= v['y'] and v['y'] + v['height'] <= 100 + 1e-9
            np.testing.assert_allclose([v['x'] / 100 * w, v['y'] / 100 * h, (v['x'] + v['width']) / 100 * w,
                                        (v['y'] + v['height']) / 100 * h], box, atol=1e-9)
        assert len(pred['result']) == len(boxes)
        assert pred.get('score') == (pytest.approx(np.mean(scores)) if scores else None)
    # the labeller keeps the model's boxes (the predictions become the annotation, as "accept" in the editor does)
    export = [exported(t, 11 + j, t['predictions'][0]['result']) for j, t in enumerate(tasks)]
    report = import_annotations(split, json.loads(json.dumps(export)), kind='boxes', vocab=vocab)
    assert report.labelled == keys and report.problems.empty
    labels = split.ledger.labels(list(range(4)))
    for i, (boxes, classes, _) in enumerate(preds):
        got_boxes, got_classes = labels[i]
        assert got_classes == classes
        np.testing.assert_allclose(np.array(got_boxes).reshape(-1, 4), np.array(boxes).reshape(-1, 4), atol=1e-6, rtol=0)
    assert labels[2] == [[], []]  # no rectangle: an image with no object
    log = answers(split)
    assert log.annotator.tolist() == ['ana@example.com'] * 4 and (log.via == 'label-studio file').all()
    assert log.ref.tolist() == [f'label-studio:9:{511 + j}@2026-12-05T10:{11 + j:02d}:00.000000Z' for j in range(4)]
    assert log.time.tolist() == [pd.Timestamp(f'2026-12-05T10:{11 + j:02d}:00Z').timestamp() for j in range(4)]
    assert import_annotations(split, export, kind='boxes', vocab=vocab).n_changed == 0  # idempotent


def test_the_true_boxes_of_the_generated_data_round_trip(shapes_folder):
    "Integer pixel boxes from the COCO file, every image: the label that comes back is the one that went out"
    det, truth, vocab = shapes_folder
    split, keys = requested(det, 8)
    req = pd.DataFrame({'ds_idx': range(8), 'prediction': [(*truth[k], [1.0] * len(truth[k][0])) for k in keys]})
    tasks = to_tasks(split, req, kind='boxes', vocab=vocab)
    export = [exported(t, 1 + j, t['predictions'][0]['result']) for j, t in enumerate(tasks)]
    import_annotations(split, export, kind='boxes', vocab=vocab)
    for i, k in enumerate(split.ledger.keys(list(range(8)))):
        boxes, classes = split.ledger.labels([i])[i]
        assert classes == truth[k][1]
        np.testing.assert_allclose(np.array(boxes).reshape(-1, 4), np.array(truth[k][0]).reshape(-1, 4), atol=1e-6, rtol=0)


def test_the_image_s_own_size_converts_and_tiny_overshoot_is_clipped(shapes_folder):
    det, truth, vocab = shapes_folder
    split, keys = requested(det, 3)
    tasks = to_tasks(split, pd.DataFrame({'ds_idx': range(3)}), kind='boxes', vocab=vocab)
    assert all('predictions' not in t for t in tasks)  # no prediction column: nothing to correct, the form starts empty
    sizes = [size_of(det, k) for k in keys]
    export = [exported(tasks[0], 1, [rect(-1e-7, 50, 50 + 1e-7, 50.0000001, 'circle', (1000, 1000))]),  # a wrong original size
              exported(tasks[1], 2, [rect(0, 0, 100.0000001, 100, 'square', sizes[1])]),
              exported(tasks[2], 3, [rect(25, 25, 50, 50, 'triangle', sizes[2]), rect(0, 0, 10, 10, 'circle', sizes[2])])]
    import_annotations(split, export, kind='boxes', vocab=vocab)
    labels = split.ledger.labels([0, 1, 2])
    (w0, h0), (w1, h1), (w2, h2) = sizes
    np.testing.assert_allclose(labels[0][0], [[0, h0 / 2, w0 / 2, h0]], atol=1e-6)  # read with the image's own size, clipped
    assert labels[1] == [[[0.0, 0.0, float(w1), float(h1)]], ['square']]  # the border exactly
    assert labels[2][1] == ['triangle', 'circle']
    np.testing.assert_allclose(labels[2][0], [[w2 / 4, h2 / 4, 3 * w2 / 4, 3 * h2 / 4], [0, 0, w2 / 10, h2 / 10]], atol=1e-9)


# --- bad input ------------------------------------------------------------------------------------------------------

BAD = {  # annotation result -> what the refusal says
    'outside': (lambda s: [rect(90, 10, 11, 20, 'circle', s)], 'expected box 0 inside the image, 0 <= x1 < x2 <= '),
    'outside left': (lambda s: [rect(-0.5, 10, 10, 20, 'circle', s)], 'expected box 0 inside the image'),
    'zero width': (lambda s: [rect(10, 10, 0, 20, 'circle', s)], 'expected box 0 of positive width and height'),
    'class': (lambda s: [rect(10, 10, 20, 20, 'hexagon', s)], "expected classes in the vocabulary ['circle', 'square', 'triangle'], got 'hexagon' for box 0"),
    'two classes': (lambda s: [rect(10, 10, 20, 20, ['circle', 'square'], s)], "expected one class on rectangle 0"),
    'no class': (lambda s: [rect(10, 10, 20, 20, None, s, type='rectangle')], "expected one class on rectangle 0"),
    'rotated': (lambda s: [rect(10, 10, 20, 20, 'circle', s, rotation=15)], 'is rotated by 15 degrees: expected upright boxes'),
    'not a number': (lambda s: [{**rect(10, 10, 20, 20, 'circle', s), 'value': {'x': 'ten', 'y': 1, 'width': 2, 'height': 2,
                                                                                  'rectanglelabels': ['circle']}}],
                     'with numbers x, y, width, height'),
    'choices': (lambda s: [{'type': 'choices', 'from_name': 'label', 'to_name': 'image', 'value': {'choices': ['circle']}}],
                "expected rectangles in task"),
}


@pytest.mark.parametrize('case', list(BAD))
def test_a_bad_rectangle_is_refused_naming_the_task_and_nothing_is_written(shapes_folder, tmp_path, case):
    det, truth, vocab = shapes_folder
    split, keys = requested(det, 2, path=tmp_path/'boxes.db')
    tasks = to_tasks(split, pd.DataFrame({'ds_idx': [0, 1]}), kind='boxes', vocab=vocab)
    make, message = BAD[case]
    good = exported(tasks[1], 42, [rect(10, 10, 20, 20, 'square', size_of(det, keys[1]))])
    export = [exported(tasks[0], 41, make(size_of(det, keys[0]))), good]
    state = split.ledger.state_dict()
    with pytest.raises(ValueError) as e: import_annotations(split, export, kind='boxes', vocab=vocab, partial=False)
    assert 'nothing was written' in str(e.value) and f'task 41, annotation 541' in str(e.value) and message in str(e.value)
    assert split.ledger.state_dict() == state and answers(split).empty
    with pytest.warns(UserWarning, match='1 annotations were left out'):
        report = import_annotations(split, export, kind='boxes', vocab=vocab)
    assert report.problems.task.tolist() == [41] and report.problems.key.tolist() == [keys[0]]
    assert message in report.problems.why[0] and f"task 41 (key {keys[0]!r}), annotation 541" in report.problems.why[0]
    assert report.labelled == [keys[1]]  # the good one lands, the bad one's item stays requested
    assert split.ledger.labels([0]) == {} and 0 in split.ledger.pending().ds_idx.tolist()


def test_bad_predictions_are_refused_before_any_task(shapes_folder):
    det, truth, vocab = shapes_folder
    split, keys = requested(det, 1)
    w, h = size_of(det, keys[0])
    for pred, message in [(([[0, 0, w + 5, 10]], ['circle'], [0.5]), f"expected box 0 inside the image, 0 <= x1 < x2 <= {w}"),
                          (([[0, 0, 10, 10]], ['hexagon'], [0.5]), "expected classes in the vocabulary"),
                          (([[0, 0, 10, 10]], ['circle'], [0.5, 0.2]), "expected one score per box, got 1 boxes and 2 scores"),
                          (([[0, 0, 10, 10]], ['circle'], [1.5]), "expected scores in [0, 1]"),
                          (([[0, 0, 10, 10]], ['circle']), "expected a prediction (boxes [n, 4], classes [n], scores [n])")]:
        with pytest.raises((ValueError, TypeError), match=r'the prediction for ' + repr(keys[0])) as e:
            to_tasks(split, pd.DataFrame({'ds_idx': [0], 'prediction': [pred]}), kind='boxes', vocab=vocab)
        assert message in str(e.value), (message, str(e.value))
    with pytest.raises(ValueError, match=r"expected the class names of the boxes: pass vocab=\[...\]"):
        to_tasks(split, pd.DataFrame({'ds_idx': [0]}), kind='boxes')


def test_corrections_withdrawals_and_disagreement_work_for_boxes(shapes_folder):
    det, truth, vocab = shapes_folder
    split, keys = requested(det, 2)
    tasks = to_tasks(split, pd.DataFrame({'ds_idx': [0, 1]}), kind='boxes', vocab=vocab)
    s0, s1 = size_of(det, keys[0]), size_of(det, keys[1])
    day1 = [exported(tasks[0], 1, [rect(10, 10, 20, 20, 'circle', s0)]), exported(tasks[1], 2, [])]
    assert import_annotations(split, day1, kind='boxes', vocab=vocab).labelled == keys
    day2 = json.loads(json.dumps(day1))  # the first box moved in the editor (Update), by bo
    day2[0]['annotations'][0]['result'][0]['value']['x'] = 30
    day2[0]['annotations'][0].update(updated_at='2026-12-06T09:00:00.000000Z', completed_by={'id': 8, 'email': 'bo@example.com'})
    report = import_annotations(split, day2, kind='boxes', vocab=vocab)
    assert report.corrected == [keys[0]]
    np.testing.assert_allclose(split.ledger.labels([0])[0][0], [[0.3 * s0[0], 0.1 * s0[1], 0.5 * s0[0], 0.3 * s0[1]]], atol=1e-9)
    hist = split.ledger.to_df(superseded=True).query('ds_idx == 0')
    assert hist.annotator.tolist() == ['ana@example.com', 'bo@example.com'] and hist.current.tolist() == [False, True]
    second = exported(tasks[1], 2, [rect(5, 5, 5, 5, 'square', s1)], aid=900, email='cy@example.com')['annotations'][0]
    day3 = json.loads(json.dumps(day2))
    day3[1]['annotations'].append(second)  # cy sees a square where ana saw nothing
    with pytest.warns(UserWarning): report = import_annotations(split, day3, kind='boxes', vocab=vocab)
    assert 'annotators disagree' in report.problems.why[0] and split.ledger.labels([1]) == {1: [[], []]}
    day4 = json.loads(json.dumps(day2))
    day4[1]['annotations'] = []  # ana's annotation deleted: the label is withdrawn, the image asked again
    assert import_annotations(split, day4, kind='boxes', vocab=vocab).withdrawn == [keys[1]]
    assert 1 in split.ledger.pending().ds_idx.tolist()


class FakeLabelStudio:
    "The calls `LabelStudioProject` makes, in memory"
    def __init__(self):
        self.made, self.tasks_, self.anns = {}, [], []
        self.projects = NS(create=lambda title, label_config: self.made.update(config=label_config) or NS(id=9),
                           import_tasks=lambda id, request: self.tasks_.extend(
                               {**t, 'id': len(self.tasks_) + j + 1, 'project': id} for j, t in enumerate(request)))
        self.tasks = NS(list=lambda project, fields='all': [NS(model_dump=lambda mode, t=t: {
            **t, 'annotations': [a for a in self.anns if a['task'] == t['id']]}) for t in self.tasks_])
        self.users = NS(list=lambda: [NS(id=7, email='ana@example.com', username='ana')])


def test_label_studio_project_pushes_and_pulls_boxes(shapes_folder):
    det, truth, vocab = shapes_folder
    split, keys = requested(det, 2)
    client = FakeLabelStudio()
    ls = LabelStudioProject.create('http://label-studio.example', 'token', split, kind='boxes', vocab=vocab, client=client)
    assert ET.fromstring(client.made['config']).find('RectangleLabels') is not None
    req = pd.DataFrame({'ds_idx': [0, 1], 'prediction': [(*truth[k], [0.7] * len(truth[k][0])) for k in keys]})
    assert ls.push(split, req, kind='boxes', vocab=vocab) == 2 and ls.push(split, req, kind='boxes', vocab=vocab) == 0
    for t in client.tasks_:
        client.anns.append({'id': 100 + t['id'], 'task': t['id'], 'project': 9, 'completed_by': 7, 'was_cancelled': False,
                            'result': t['predictions'][0]['result'], 'created_at': '2026-12-05T10:00:00Z',
                            'updated_at': '2026-12-05T10:00:00Z'})
    report = ls.pull(split, kind='boxes', vocab=vocab)
    assert report.labelled == keys and answers(split).annotator.tolist() == ['ana@example.com'] * 2
    for i, k in enumerate(keys):
        np.testing.assert_allclose(np.array(split.ledger.labels([i])[i][0]).reshape(-1, 4),
                                   np.array(truth[k][0]).reshape(-1, 4), atol=1e-6)


# --- the widget -----------------------------------------------------------------------------------------------------

def widget(det, truth, vocab, path=None, n=4, **kwargs):
    split, keys = requested(det, n, path)
    preds = [(*truth[k], [0.9] * len(truth[k][0])) for k in keys]
    preds[1] = ([[5, 5, 40, 40]], ['circle'], [0.3])  # a wrong guess
    preds[2] = ([], [], [])  # the model sees nothing
    req = pd.DataFrame({'ds_idx': range(n), 'prediction': preds})
    if n > 3: req.loc[3, 'prediction'] = None  # no prediction for this one
    return split, keys, preds, LabelWidget(req, split, kind='boxes', vocab=vocab, annotator='ana', **kwargs)


def test_widget_accepts_the_model_s_boxes_and_rejects(shapes_folder):
    det, truth, vocab = shapes_folder
    split, keys, preds, w = widget(det, truth, vocab)
    assert w.batch.ds_idx.tolist() == [0, 1, 2, 3]  # most informative first
    assert 'a accept the boxes · r reject them' in w.key_box.placeholder
    assert 'drawing and moving boxes belongs in Label Studio' in w.widget.children[2].children[-1].value
    w.press('a')  # right: the prediction is the label
    w.reject_button.click()  # wrong: rejected, logged, the image stays requested
    w.accept_button.click()  # nothing there: "no object" is the label
    assert split.ledger.labels([0, 1, 2]) == {0: [truth[keys[0]][0], truth[keys[0]][1]], 2: [[], []]}
    assert sorted(split.ledger.pending().ds_idx.tolist()) == [1, 3]
    log = answers(split)
    assert log.action.tolist() == ['label', 'reject', 'label'] and (log.annotator == 'ana').all() and (log.via == 'widget').all()
    assert w.progress.startswith('2 of 4 labelled · 0 skipped · 1 rejected')
    # no prediction: nothing to accept, said under the buttons; skip leaves it unlabelled
    assert int(w.current.ds_idx) == 3 and 'no predicted boxes' in w.guesses.value
    w.accept_button.click()
    assert 'no predicted boxes to accept' in w.message.value and split.ledger.labels([3]) == {}
    w.press('s')
    assert w.current is None and w.progress.startswith('2 of 4 labelled · 1 skipped · 1 rejected')
    w.press('u')  # undo the skip, then undo the "no object" label: withdrawn, requested again
    w.press('u')
    assert int(w.current.ds_idx) == 2 and split.ledger.labels([2]) == {} and 2 in split.ledger.pending().ds_idx.tolist()
    assert answers(split).action.iloc[-1] == 'undo'


def test_widget_draws_the_predicted_boxes_with_class_and_score(shapes_folder):
    det, truth, vocab = shapes_folder
    split, keys, preds, w = widget(det, truth, vocab, size=256)
    thumb = np.asarray(Image.open(io.BytesIO(w.image.value)))
    plain = np.asarray(Image.open(det/'images'/keys[0]).convert('RGB'))
    scale = 256 / max(plain.shape[:2])
    assert max(thumb.shape[:2]) == 256
    for (x1, y1, x2, y2), c in zip(*preds[0][:2]):  # every box's left edge in its class's colour
        edge = {tuple(thumb[int((y1 + y2) / 2 * scale), x]) for x in range(int(x1 * scale) - 1, int(x1 * scale) + 3)}
        assert _BOX_COLOURS[vocab.index(c)] in edge, (c, edge)
    for c in preds[0][1]: assert f'<b>{c}</b> 0.90' in w.guesses.value
    assert f'{len(preds[0][0])} boxes: ' in w.guesses.value
    w.press('r')
    assert '1 boxes: <b>circle</b> 0.30' in w.guesses.value
    w.press('r')
    assert 'no boxes: the model sees no object' in w.guesses.value


def test_widget_refuses_bad_boxes_and_writes_nothing(shapes_folder):
    det, truth, vocab = shapes_folder
    split, keys = requested(det, 1)
    w0, h0 = size_of(det, keys[0])
    for pred, message in [(([[0, 0, w0 + 1, 10]], ['circle'], [0.5]), 'expected box 0 inside the image'),
                          (([[0, 0, 10, 10]], ['hexagon'], [0.5]), 'expected classes in the vocabulary')]:
        w = LabelWidget(pd.DataFrame({'ds_idx': [0], 'prediction': [pred]}), split, kind='boxes', vocab=vocab, annotator='ana')
        w.accept_button.click()
        assert message in w.message.value and split.ledger.labels([0]) == {} and answers(split).empty
        with pytest.raises(ValueError, match='inside the image|vocabulary'): w.accept()
    with pytest.raises(ValueError, match=r'pass vocab=\[...\]'): LabelWidget(pd.DataFrame({'ds_idx': [0]}), split, kind='boxes')
    w = LabelWidget(pd.DataFrame({'ds_idx': [0]}), split, kind='boxes', vocab=vocab, annotator='ana')
    with pytest.raises(ValueError, match="no action for the key '1'"): w.press('1')  # no class keys: boxes are not chosen by key


def test_an_image_that_cannot_be_read_is_reported_not_raised(shapes_folder, tmp_path):
    "The image's size converts percentages: an image gone from its folder since the task was made is a problem of its task"
    import shutil
    det, truth, vocab = shapes_folder
    local = tmp_path/'copy'
    shutil.copytree(det, local)
    split, keys = requested(local, 2)
    tasks = to_tasks(split, pd.DataFrame({'ds_idx': [0, 1]}), kind='boxes', vocab=vocab)
    (local/'images'/keys[0]).unlink()
    export = [exported(tasks[0], 1, [rect(10, 10, 20, 20, 'circle', (100, 100))]), exported(tasks[1], 2, [])]
    with pytest.warns(UserWarning, match='1 annotations were left out'):
        report = import_annotations(split, export, kind='boxes', vocab=vocab)
    assert report.labelled == [keys[1]] and report.problems.task.tolist() == [1]
    assert f"the image of {keys[0]!r} cannot be read for its size" in report.problems.why[0]


# --- under a BoxSplit: the kind and the classes come from the split, the ledger checks the labels again --------------

def real_box_split(det, vocab, path=None):
    from fastai.vision.data import BBoxBlock, BBoxLblBlock
    from fastai_active.data.boxes import BoxSplit, coco_get_y
    block = DataBlock(blocks=(ImageBlock, BBoxBlock, BBoxLblBlock), n_inp=1, get_items=get_image_files,
                      get_y=coco_get_y(det/'annotations.json'))
    split = ActiveSplit(block, det/'images', path=path, vocab=vocab)
    assert isinstance(split, BoxSplit)
    return split


def test_label_studio_round_trip_under_a_box_split(shapes_folder, tmp_path):
    from fastai_active.people.answers import _target_kind
    det, truth, vocab = shapes_folder
    split = real_box_split(det, vocab, tmp_path/'boxes.db')
    assert _target_kind(split) == 'boxes'
    split.ledger.request(list(range(4)), scores=[4, 3, 2, 1])
    true = split.true_labels(list(range(4)))
    preds = [([[x1 + 0.5, y1, x2, y2 - 0.25] for x1, y1, x2, y2 in b], c, [0.6] * len(b)) for b, c in true]
    client = FakeLabelStudio()
    ls = LabelStudioProject.create('http://label-studio.example', 'token', split, client=client)  # no kind, no vocab
    assert [l.get('value') for l in ET.fromstring(client.made['config']).find('RectangleLabels').iter('Label')] == vocab
    assert ls.push(split, pd.DataFrame({'ds_idx': range(4), 'prediction': preds})) == 4
    for t in client.tasks_:
        client.anns.append({'id': 100 + t['id'], 'task': t['id'], 'project': 9, 'completed_by': 7, 'was_cancelled': False,
                            'result': t['predictions'][0]['result'], 'created_at': '2026-12-05T10:00:00Z',
                            'updated_at': '2026-12-05T10:00:00Z'})
    assert len(ls.pull(split).labelled) == 4
    for i, (boxes, classes, _) in enumerate(preds):
        got = split.ledger.labels([i])[i]
        assert got[1] == classes
        np.testing.assert_allclose(np.array(got[0]).reshape(-1, 4), np.array(boxes).reshape(-1, 4), atol=1e-6, rtol=0)
    assert split.ledger.class_counts() == {c: sum(p[1].count(c) for p in preds) for c in vocab}
    # reopened from its file, the labels are the same (the ledger's on-disk form)
    assert real_box_split(det, vocab, tmp_path/'boxes.db').ledger.labels(list(range(4))) == split.ledger.labels(list(range(4)))


def test_widget_under_a_box_split(shapes_folder):
    det, truth, vocab = shapes_folder
    split = real_box_split(det, vocab)
    split.ledger.request([0, 1, 2])
    true = split.true_labels([0, 1, 2])
    req = pd.DataFrame({'ds_idx': [0, 1, 2], 'prediction': [(b, c, [0.8] * len(b)) for b, c in true]})
    w = LabelWidget(req, split, annotator='ana')  # no kind, no vocab: the split's
    assert (w.kind, w.vocab) == ('boxes', vocab)
    w.press('a')
    w.press('r')
    w.press('s')
    assert split.ledger.labels([0, 1, 2]) == {0: [list(map(list, true[0][0])), list(true[0][1])]}
    assert answers(split).action.tolist() == ['label', 'reject'] and sorted(split.ledger.pending().ds_idx.tolist()) == [1, 2]
    assert w.progress.startswith('1 of 3 labelled · 1 skipped · 1 rejected')
