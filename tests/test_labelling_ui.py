"People in the loop (widgets, label_studio): the labelling widget (multi-label, segmentation, table rows) and Label Studio export files."
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from fastai.data.block import DataBlock, CategoryBlock, MultiCategoryBlock
from fastai.data.transforms import ColReader, get_image_files

from fastai_active.core import mean_log_probs
from fastai_active.data.split import ActiveSplit
from fastai_active.loop.learner import ActiveLearner
from fastai_active.datasets import digits_folder, mask_of
from fastai_active.demo import digits_block
from fastai_active.people.widgets import LabelWidget
from fastai_active.people.answers import answers, record_answers, review_batch, item_keys, ds_idxs_of_keys
from fastai_active.people.label_studio import (to_tasks, import_annotations, label_config, rle_decode, rle_encode,
                                        _time_of)

from test_segmentation import shapes_split, make_learner as seg_learner, MeanPixelEntropy

FIXTURES = Path(__file__).parent/'fixtures'


def table_split(tmp_path, multi=False):
    "A DataFrame of texts keyed by a string index; single- or multi-label targets"
    df = pd.DataFrame({'text': [f'note <{i}> & more' for i in range(12)], 'y': ['a b' if i % 3 else 'c' for i in range(12)]},
                      index=[f'row{i:02d}' for i in range(12)])
    block = MultiCategoryBlock(vocab=['a', 'b', 'c']) if multi else CategoryBlock(vocab=['a', 'b', 'c'])
    dblock = DataBlock(blocks=(block,), get_y=ColReader('y', label_delim=' ' if multi else None), n_inp=0)
    return ActiveSplit(dblock, df, path=tmp_path/'labels.db')


def test_multi_label_toggles_write_a_list(tmp_path):
    split = table_split(tmp_path, multi=True)
    split.ledger.request([3, 5, 7], scores=[.1, .3, .2])
    w = LabelWidget(split, annotator='ana')
    assert w.kind == 'multi'
    assert w.batch.key.tolist() == ['row05', 'row07', 'row03']  # most informative first
    assert '&lt;5&gt;' in w.item_html.value and '<5>' not in w.item_html.value  # the row, escaped
    w.key_box.value = '13'  # toggle a and c
    w.key_box.value = '3'   # c off again
    assert [t.value for t in w.toggles.values()] == [True, False, False]
    w.toggles['b'].value = True
    w.save_button.click()
    w.key_box.value = 'a'   # nothing toggled: the item has none of the classes
    assert split.ledger.labels([5, 7]) == {5: ['a', 'b'], 7: []}
    test_refused = lambda: record_answers(split, [3], [['a', 'z']], annotator='ana')
    with pytest.raises(ValueError, match="not in the vocabulary: \\['z'\\]"): test_refused()
    # the lists are what fastai's MultiCategorize reads (ActiveSplit.datasets does not yet build a multi-label target:
    # its vocabulary fix turns MultiCategorize, a subclass of Categorize, into Categorize)
    from fastai.data.transforms import MultiCategorize
    tfm = MultiCategorize(vocab=split.vocab)
    assert [tfm(l).tolist() for l in split.ledger.labels([5, 7]).values()] == [[0, 1], []]


def test_table_rows_in_label_studio_tasks(tmp_path):
    split = table_split(tmp_path)
    split.ledger.request([2, 4], scores=[.5, .9])
    tasks = to_tasks(split)
    assert [t['data']['key'] for t in tasks] == ['row04', 'row02']
    assert tasks[0]['data']['table'] == {'text': 'note <4> & more', 'y': 'a b'}
    assert 'Table name="table" value="$table"' in label_config(split.vocab, data='table')


def test_segmentation_review_accept_and_reject(tmp_path):
    split = shapes_split(tmp_path, n=30, n_valid=6, n_initial=6)
    al = ActiveLearner(split, seg_learner, acquisition=MeanPixelEntropy(), epochs=1, lr=1e-2, bs=8,
                       dl_kwargs=dict(num_workers=0), seed=0, show_progress=False)
    al.fit()
    req = al.acquire(3)
    w = LabelWidget(al, annotator='ana')
    assert w.kind == 'segmentation'
    # the masks on show are the model's own: argmax of the mean predictive of the scores `acquire` used
    lp = al.log_probs[al.pool.to_pool(w.batch.ds_idx.tolist())]
    want = mean_log_probs(lp).argmax(1).numpy()
    assert all(np.array_equal(m, e) for m, e in zip(w.batch['mask'], want))
    first, second, third = w.batch.ds_idx.tolist()
    w.accept_button.click()
    w.key_box.value = 'r'
    assert w.message.value == ''
    path = Path(split.ledger.labels([first])[first])
    assert path.parent == tmp_path/'labels.db.masks'
    assert np.array_equal(np.array(Image.open(path)), want[0])
    assert second in split.ledger.pending().ds_idx.tolist()
    assert answers(al).action.tolist() == ['label', 'reject']
    w.key_box.value = '1'
    assert 'no action for the key' in w.message.value
    # the tasks for Label Studio carry the predicted masks as brush RLE; an annotation's brush comes back as a mask file
    tasks = {t['data']['ds_idx']: t for t in to_tasks(al)}
    for i, m in zip([second, third], want[1:]):
        decoded = np.zeros((24, 24), dtype=bool)
        for r in tasks[i]['predictions'][0]['result']:  # none where the model sees only background
            assert r['value']['brushlabels'] == ['shape']
            decoded |= rle_decode(r['value']['rle'], 24, 24)
        assert np.array_equal(decoded, m == 1)
        assert tasks[i]['data']['score'] == pytest.approx(float(w.batch.set_index('ds_idx').score[i]))
        assert 'score' not in tasks[i]['predictions'][0]  # no confidence in [0, 1] for a mask: Label Studio shows none
    drawn = np.zeros((24, 24), dtype=bool)
    drawn[4:9, 2:20] = True
    ann = {'id': 41, 'completed_by': 2, 'was_cancelled': False, 'created_at': '2026-12-01T10:00:00Z', 'project': 5,
           'result': [{'from_name': 'label', 'to_name': 'image', 'type': 'brushlabels', 'original_width': 24,
                       'original_height': 24, 'value': {'format': 'rle', 'rle': rle_encode(drawn), 'brushlabels': ['shape']}}]}
    assert import_annotations(al, [{'id': 9, 'data': tasks[second]['data'], 'annotations': [ann]}], users={2: 'bo@example.com'}).labelled == [tasks[second]['data']['key']]
    got = np.array(Image.open(split.ledger.labels([second])[second]))
    assert np.array_equal(got, drawn.astype(np.uint8))
    assert answers(al).annotator.iloc[-1] == 'bo@example.com'


def test_real_label_studio_export_file(tmp_path):
    "An export that a Label Studio 1.23 server wrote (tests/integration/test_label_studio_server.py keeps it)"
    export = json.loads((FIXTURES/'label_studio_export.json').read_text())
    folder = digits_folder(tmp_path/'digits')
    split = ActiveSplit(digits_block(), folder/'train', path=tmp_path/'labels.db', vocab=[str(i) for i in range(10)])
    keys = [t['data']['key'] for t in export]
    split.ledger.request(ds_idxs_of_keys(split, keys), scores=[t['data']['score'] for t in export])
    report = import_annotations(split, tmp_path.joinpath('x.json').write_text(json.dumps(export)) and tmp_path/'x.json',
                                users={1: 'owner@example.com'})
    assert len(report.labelled) == 4 and report.unknown_users == []
    done = [t for t in export if not t['annotations'][0]['was_cancelled']]
    idxs = ds_idxs_of_keys(split, [t['data']['key'] for t in done]).tolist()
    assert split.ledger.labels(idxs) == {i: t['annotations'][0]['result'][0]['value']['choices'][0] for i, t in zip(idxs, done)}
    log = answers(split)
    assert log.annotator.unique().tolist() == ['owner@example.com']
    assert log.time.tolist() == [_time_of(t['annotations'][0]['updated_at']) for t in done]
    assert log.ref.tolist() == [f"label-studio:{t['project']}:{t['annotations'][0]['id']}@{t['annotations'][0]['updated_at']}"
                                for t in done]
    skipped = [t['data']['key'] for t in export if t['annotations'][0]['was_cancelled']]
    assert item_keys(split, split.ledger.pending().ds_idx.tolist()) == skipped
    assert import_annotations(split, export, users={1: 'owner@example.com'}).n_changed == 0
    # an annotation for a task of other data, or with a class the model does not have, is reported and left out
    bad = json.loads(json.dumps(done[:1]))
    bad[0]['data']['key'] = 'elsewhere/0001.png'
    with pytest.warns(UserWarning, match='1 annotations were left out'): report = import_annotations(split, bad)
    assert "'elsewhere/0001.png' matches no item" in report.problems.why[0]
    with pytest.raises(ValueError, match='elsewhere/0001.png'): import_annotations(split, bad, partial=False)
    bad[0]['data']['key'] = skipped[0]
    bad[0]['annotations'][0]['result'][0]['value']['choices'] = ['eleven']
    with pytest.raises(ValueError, match="'eleven'"): import_annotations(split, bad, partial=False)
    assert len(answers(split)) == 4


def test_an_answer_and_its_log_are_written_together(tmp_path, monkeypatch):
    "When writing the log fails after the ledger took the labels, neither is kept: the items still wait for an answer"
    from fastai_active.data.ledger import LabelLedger
    split = table_split(tmp_path)
    split.ledger.request([2, 4], scores=[.5, .9])
    def full_disk(self, *args, **kwargs): raise OSError("disk full")
    monkeypatch.setattr(LabelLedger, 'log_answers', full_disk)  # the log rows, written after the labels
    with pytest.raises(OSError, match='disk full'): record_answers(split, [2, 4], ['a', 'b'], annotator='ana')
    assert split.ledger.labels([2, 4]) == {} and len(answers(split)) == 0
    assert sorted(split.ledger.pending().ds_idx.tolist()) == [2, 4]
    monkeypatch.undo()
    assert record_answers(split, [2, 4], ['a', 'b'], annotator='ana') == 2
    assert split.ledger.labels([2, 4]) == {2: 'a', 4: 'b'}
    assert answers(split)[['key', 'label', 'annotator']].values.tolist() == [['row02', 'a', 'ana'], ['row04', 'b', 'ana']]


def test_digit_keys_record_the_digit_typed(tmp_path):
    "Issue 25, case 5: on the digits a person types the digit they see; names that are not single keys go by position"
    folder = digits_folder(tmp_path/'digits')
    split = ActiveSplit(digits_block(), folder/'train', path=tmp_path/'labels.db', vocab=[str(i) for i in range(10)])
    split.ledger.request([4, 5, 6], scores=[.3, .2, .1])
    w = LabelWidget(split, annotator='ana')
    assert [b.description for b in w.class_buttons.values()] == [f'[{d}] {d}' for d in range(10)]
    w.key_box.value = '9'
    w.key_box.value = '0'
    w.key_box.value = '1'
    assert split.ledger.labels([4, 5, 6]) == {4: '9', 5: '0', 6: '1'}
    assert '0123456789 a class' in w.key_box.placeholder
    # a table with classes 'a', 'b', 'c' and skip on 's': single letters that are not action keys are their own keys
    letters = table_split(tmp_path/'letters')
    letters.ledger.request([1, 2], scores=[.9, .8])
    lw = LabelWidget(letters, annotator='bo')
    assert lw.keys == {'a': 'a', 'b': 'b', 'c': 'c'} and lw.class_buttons['c'].description == '[c] c'
    lw.key_box.value = 'c'
    assert letters.ledger.labels([1]) == {1: 'c'}
    # the multi-label widget saves with 'a': its classes 'a', 'b', 'c' go by position
    assert LabelWidget(table_split(tmp_path/'multi', multi=True), annotator='bo').keys == {'1': 'a', '2': 'b', '3': 'c'}
