"""The ledger's schema version is checked: files of schema 1 and 2 are upgraded in place with every record kept (made
here by the schema-1 code itself, kept in tests/fixtures/ledger_schema1.py, and committed files written by the
revisions that wrote schemas 1 and 2: tests/fixtures/ledger_schema*.sqlite, made by make_ledger_fixtures.py); files
of a newer schema are refused and left as they are."""
import importlib.util, json, shutil, sqlite3
from pathlib import Path

import pytest
import torch
from fastai.data.block import DataBlock, TransformBlock, CategoryBlock
from fastai.data.transforms import get_files, parent_label

from fastai_active.data.ledger import LabelLedger, SCHEMA_VERSION, items_fingerprint
from fastai_active.data.split import ActiveSplit


FIXTURES = Path(__file__).parent/'fixtures'


def schema1():
    "The ledger module as fastai_active 0.1.0 had it"
    spec = importlib.util.spec_from_file_location('ledger_schema1', Path(__file__).parent/'fixtures'/'ledger_schema1.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def meta(path):
    con = sqlite3.connect(path)
    try: return dict(con.execute('SELECT key, value FROM meta'))
    finally: con.close()


def old_ledger(path, items):
    "A schema-1 file with every kind of record: initial, requested and human labels, a pending request, a pseudo-label, history"
    v1 = schema1()
    old = v1.LabelLedger(len(items), path, vocab=['a', 'b'], fingerprint=v1.items_fingerprint(items))
    old.label([0, 5], ['a', 'b'], source='initial')
    old.request([7, 8], [0.9, 0.1])
    old.label([7], ['b'])
    old.set_pseudo([2], ['a'], scores=[0.99])
    old.record_history(0, {'round': 0, 'accuracy': 0.5})
    state = old.state_dict()
    old.close()
    return state


def test_schema1_file_is_upgraded_in_place(tmp_path):
    path, items = tmp_path/'labels.db', [f'img_{i}.png' for i in range(12)]
    before = old_ledger(path, items)
    assert meta(path)['schema'] == '1'
    # other items than the file was made for: refused, and the file is left as schema 1
    with pytest.raises(ValueError, match="has schema 1 .* made for other items"):
        LabelLedger(keys=items[::-1], path=path, vocab=['a', 'b'], fingerprint=items_fingerprint(items[::-1]))
    with pytest.raises(ValueError, match="has schema 1 .* made for other items"):
        LabelLedger(keys=items + ['img_12.png'], path=path, vocab=['a', 'b'], fingerprint=items_fingerprint(items + ['img_12.png']))
    assert meta(path)['schema'] == '1'

    new = LabelLedger(keys=items, path=path, vocab=['a', 'b'], fingerprint=items_fingerprint(items))
    assert meta(path)['schema'] == str(SCHEMA_VERSION) == '3' and 'fingerprint' not in meta(path)
    assert new.keys() == items
    assert new.labels() == {0: 'a', 5: 'b', 7: 'b'} and new.labels(pseudo=True) == {2: 'a'}
    assert [list(r) for r in new._q('SELECT ds_idx, label, source, round, time FROM labels ORDER BY ds_idx')] == before['labels']
    assert [list(r) for r in new._q('SELECT * FROM pseudo')] == before['pseudo']
    assert new.to_df().set_index('ds_idx').loc[7, 'time'].timestamp() == pytest.approx(before['labels'][2][4])
    assert new.pending()[['ds_idx', 'round', 'rank', 'score']].values.tolist() == [[8, 1, 1, 0.1]]
    assert new.round == 1 and new.history().to_dict('records') == [{'round': 0, 'accuracy': 0.5}]
    new.close()
    # upgraded once: opening again changes nothing, and now the items may come and go
    with pytest.warns(UserWarning, match=r"1 items of the ledger are not among the items given .* 1 of them labelled"):
        grown = LabelLedger(keys=['img_new.png'] + items[1:], path=path, vocab=['a', 'b'])
    assert grown.report.added.tolist() == [12] and grown.missing_idxs().tolist() == [0]
    assert grown.labels() == {0: 'a', 5: 'b', 7: 'b'}


def test_schema1_file_of_a_folder_keeps_labels_with_their_files(tmp_path):
    "A schema-1 ledger numbered files by their place in the listing; upgraded, each label is keyed by its file's path"
    folder = tmp_path/'data'
    for name in ['a/1.txt', 'a/2.txt', 'b/3.txt', 'b/4.txt', 'a/5.txt']:
        (folder/name).parent.mkdir(parents=True, exist_ok=True)
        (folder/name).write_text(name)
    dblock = DataBlock(blocks=(TransformBlock, CategoryBlock), get_items=get_files,
                       get_x=lambda f: torch.tensor([0.]), get_y=parent_label)
    items = get_files(folder)  # what the schema-1 split numbered
    v1 = schema1()
    old = v1.LabelLedger(len(items), tmp_path/'labels.db', vocab=['a', 'b'], fingerprint=v1.items_fingerprint(items))
    old.label([1, 3], [parent_label(items[1]), parent_label(items[3])], source='initial')
    old.close()
    split = ActiveSplit(dblock, folder, path=tmp_path/'labels.db', vocab=['a', 'b'])
    labels = {split.ledger.keys([i])[0]: l for i, l in split.ledger.labels().items()}
    assert labels == {items[1].relative_to(folder).as_posix(): parent_label(items[1]),
                      items[3].relative_to(folder).as_posix(): parent_label(items[3])}
    assert all(parent_label(split.item(i)) == l for i, l in split.ledger.labels().items())


def test_newer_schema_is_refused_and_left_alone(tmp_path):
    path = tmp_path/'labels.db'
    LabelLedger(keys=['a', 'b'], path=path, vocab=['x']).close()
    con = sqlite3.connect(path)
    con.execute("UPDATE meta SET value = '4' WHERE key = 'schema'")
    con.execute("INSERT INTO meta VALUES ('added_by_schema_4', 'yes')")
    con.commit()
    con.close()
    for _ in range(2):
        with pytest.raises(ValueError, match="has schema 4, written by a newer fastai_active; this version reads schema 3"):
            LabelLedger(keys=['a', 'b'], path=path, vocab=['x'])
    assert meta(path)['schema'] == '4' and meta(path)['added_by_schema_4'] == 'yes'
    con = sqlite3.connect(path)
    con.execute("UPDATE meta SET value = 'two' WHERE key = 'schema'")
    con.commit()
    con.close()
    with pytest.raises(ValueError, match="no readable schema version"): LabelLedger(keys=['a', 'b'], path=path, vocab=['x'])


def test_schema1_state_dict_loads(tmp_path):
    items = [f'img_{i}.png' for i in range(12)]
    before = old_ledger(tmp_path/'labels.db', items)
    new = LabelLedger(keys=items, vocab=['a', 'b'], fingerprint=items_fingerprint(items))
    new.load_state_dict(json.loads(json.dumps(before)))
    assert new.labels() == {0: 'a', 5: 'b', 7: 'b'} and new.pending().ds_idx.tolist() == [8] and new.round == 1
    other = LabelLedger(keys=items[::-1], vocab=['a', 'b'], fingerprint=items_fingerprint(items[::-1]))
    with pytest.raises(ValueError, match="has schema 1 .* made for other items"): other.load_state_dict(before)
    assert other.n_labelled == 0


def rows(path, table, cols='*'):
    con = sqlite3.connect(path)
    try: return [list(r) for r in con.execute(f'SELECT {cols} FROM {table} ORDER BY rowid')]
    finally: con.close()


def test_schema1_fixture_file_upgrades_with_every_record(tmp_path):
    "A file fastai_active 0.1.0 wrote (items by position): every label, request, pseudo-label and record kept; schema 3 after"
    path = tmp_path/'labels.db'
    shutil.copy(FIXTURES/'ledger_schema1.sqlite', path)
    assert meta(path)['schema'] == '1'
    labels, requests = rows(path, 'labels'), rows(path, 'requests')
    pseudo, history = rows(path, 'pseudo'), rows(path, 'history')
    items = [f'r{i}' for i in range(12)]
    new = LabelLedger(keys=items, path=path, vocab=['a', 'b'], fingerprint=items_fingerprint(items))
    assert meta(path)['schema'] == '3' and 'fingerprint' not in meta(path)
    assert new.keys() == items
    assert rows(path, 'labels', 'ds_idx, label, source, round, time') == labels
    assert rows(path, 'requests', 'ds_idx, round, rank, score, time') == requests
    assert {r[0] for r in rows(path, 'requests', 'status')} == {'pending'}
    assert rows(path, 'pseudo') == pseudo and rows(path, 'history') == history
    assert new.labels() == {0: 'a', 5: 'b', 7: 'b'} and new.pending().ds_idx.tolist() == [8, 9]
    assert new.answers().empty and new.n_acquired() == 1
    new.close()
    # opened again: nothing changes
    again = LabelLedger(keys=items, path=path, vocab=['a', 'b'])
    assert again.labels() == {0: 'a', 5: 'b', 7: 'b'} and meta(path)['schema'] == '3'
    again.close()


def test_schema2_fixture_file_upgrades_with_its_answers_log(tmp_path):
    "A file written by the schema-2 ledger, with the answers log `people.answers` kept beside it: all of it kept"
    path = tmp_path/'labels.db'
    shutil.copy(FIXTURES/'ledger_schema2.sqlite', path)
    assert meta(path)['schema'] == '2'
    tables = ['items', 'requests', 'labels', 'superseded', 'pseudo', 'history', 'answers']
    before = {t: rows(path, t) for t in tables}
    assert [r[8] for r in before['answers']] == ['label', 'label', 'correct', 'confirm', 'undo', 'reject']
    keys = [f'r{i}' for i in range(12)]
    new = LabelLedger(keys=keys, path=path, vocab=['a', 'b'])
    assert meta(path)['schema'] == '3'
    assert {t: rows(path, t) for t in tables} == before  # every label, request, correction, answer, as it was
    assert new.labels() == {0: 'a', 1: 'b', 5: 'b', 7: 'a'}
    assert new.pending().ds_idx.tolist() == [8, 9]
    log = new.answers()
    assert log[['ds_idx', 'key', 'label', 'annotator', 'action']].fillna('-').values.tolist() == [
        [7, 'r7', 'b', 'ana', 'label'], [8, 'r8', 'a', 'ana', 'label'], [7, 'r7', 'a', 'bo', 'correct'],
        [7, 'r7', 'a', 'cy', 'confirm'], [8, 'r8', 'a', 'ana', 'undo'], [9, 'r9', '-', 'cy', 'reject']]
    assert new.seen_refs() == {'ls:1': 'b', 'ls:2': 'a', 'ls:3': 'a'}
    # the log goes on where it was, and it is in the state dict
    new.log_answers([9], 'reject', 'cy', via='widget')
    assert rows(path, 'answers', 'id')[-1] == [7]
    assert len(new.state_dict()['answers']) == 7
    new.close()


def test_schema2_state_dict_loads_without_a_log(tmp_path):
    "A state dict of schema 2 has no answers log: it loads, and the log is empty"
    path = tmp_path/'labels.db'
    shutil.copy(FIXTURES/'ledger_schema2.sqlite', path)
    new = LabelLedger(keys=[f'r{i}' for i in range(12)], path=path, vocab=['a', 'b'])
    sd = {k: v for k, v in new.state_dict().items() if k != 'answers'}
    sd['meta'] = {**sd['meta'], 'schema': '2'}
    fresh = LabelLedger(keys=[f'r{i}' for i in range(12)], vocab=['a', 'b'])
    fresh.load_state_dict(json.loads(json.dumps(sd)))
    assert fresh.labels() == new.labels() and fresh.answers().empty
    assert fresh.to_df(superseded=True).equals(new.to_df(superseded=True))
    new.close()
