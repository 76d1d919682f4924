"""The ledger's schema version is checked: files of schema 1 (written here by the schema-1 code itself, kept in
tests/fixtures/ledger_schema1.py) are upgraded in place with every record kept; files of a newer schema are refused
and left as they are."""
import importlib.util, json, sqlite3
from pathlib import Path

import pytest
import torch
from fastai.data.block import DataBlock, TransformBlock, CategoryBlock
from fastai.data.transforms import get_files, parent_label

from fastai_active.data.ledger import LabelLedger, SCHEMA_VERSION, items_fingerprint
from fastai_active.data.split import ActiveSplit


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
    assert meta(path)['schema'] == str(SCHEMA_VERSION) == '2' and 'fingerprint' not in meta(path)
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
    con.execute("UPDATE meta SET value = '3' WHERE key = 'schema'")
    con.execute("INSERT INTO meta VALUES ('added_by_schema_3', 'yes')")
    con.commit()
    con.close()
    for _ in range(2):
        with pytest.raises(ValueError, match="has schema 3, written by a newer fastai_active; this version reads schema 2"):
            LabelLedger(keys=['a', 'b'], path=path, vocab=['x'])
    assert meta(path)['schema'] == '3' and meta(path)['added_by_schema_3'] == 'yes'
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
