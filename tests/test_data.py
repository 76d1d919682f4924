"The label ledger and the labelled / unlabelled split: index spaces, atomic writes, persistence, DataBlocks."
import json, sqlite3

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, strategies as st
from fastai.data.block import DataBlock, TransformBlock, CategoryBlock
from fastai.data.transforms import ColReader, get_image_files, parent_label
from fastai.vision.data import ImageBlock
from fastai.vision.core import PILImageBW

from fastai_active.data.ledger import LabelLedger, items_fingerprint
from fastai_active.data.split import ActiveSplit, Pool
from fastai_active.datasets import digits_folder


def id_features(row): return torch.tensor([float(row['id'])])


def id_frame(n=50):
    "Items whose only feature is their own dataset index, so a batch tells which items it holds"
    return pd.DataFrame({'id': np.arange(n), 'y': np.where(np.arange(n) % 3 == 0, 'a', 'b')})


def id_split(n=50, **kwargs):
    dblock = DataBlock(blocks=(TransformBlock, CategoryBlock), get_x=id_features, get_y=ColReader('y'))
    return ActiveSplit(dblock, id_frame(n), vocab=['a', 'b'], **kwargs)


# --- index spaces -------------------------------------------------------------------------------------------

@given(st.sets(st.integers(0, 49), max_size=45), st.data())
def test_pool_index_conversion_round_trips(labelled, data):
    split = id_split(valid_pct=0.0)
    if labelled: split.label(sorted(labelled), ['a'] * len(labelled), source='initial')
    pool = split.pool()
    assert pool.ds_idxs.tolist() == sorted(set(range(50)) - labelled)
    pool_idxs = data.draw(st.lists(st.integers(0, len(pool) - 1), unique=True, max_size=len(pool)))
    ds_idxs = pool.to_ds(pool_idxs)
    assert pool.to_pool(ds_idxs).tolist() == pool_idxs
    assert not set(ds_idxs.tolist()) & labelled


def test_pool_dataloader_rows_are_pool_order():
    split = id_split(valid_pct=0.5)
    split.label([0, 3, 4, 7, 9, 12], ['a', 'a', 'b', 'b', 'a', 'a'], source='initial')
    dls = split.dataloaders(bs=4, num_workers=0)
    pool = split.pool()
    dl = split.pool_dl(dls, pool, bs=7)
    ids = torch.cat([xb[:, 0] for xb, in dl]).long()
    assert ids.tolist() == pool.ds_idxs.tolist()  # row i of the pool's predictions is item pool.ds_idxs[i]


def test_pool_subset_is_seeded_and_converts():
    split = id_split()
    a, b, c = split.pool(10, seed=1), split.pool(10, seed=1), split.pool(10, seed=2)
    assert a.ds_idxs.tolist() == b.ds_idxs.tolist() != c.ds_idxs.tolist()
    assert a.to_ds([0, 9]).tolist() == [a.ds_idxs[0].item(), a.ds_idxs[9].item()]
    with pytest.raises(KeyError, match="not in this pool"):
        a.to_pool([int(next(i for i in range(50) if i not in a.ds_idxs.tolist()))])


def test_array_items():
    X = np.arange(40, dtype=np.float32).reshape(20, 2)
    dblock = DataBlock(blocks=(TransformBlock, CategoryBlock), get_x=lambda r: torch.tensor(r), get_y=lambda r: 'big' if r[0] > 19 else 'small')
    split = ActiveSplit(dblock, X, vocab=['small', 'big'], valid_pct=0.5, seed=3)
    split.label_random(8, seed=0)
    assert split.ledger.labels() == {i: ('big' if X[i, 0] > 19 else 'small') for i in split.ledger.labelled_idxs().tolist()}
    dls = split.dataloaders(num_workers=0)
    pool = split.pool()
    xb, = split.pool_dl(dls, pool).one_batch()
    assert torch.equal(xb, torch.tensor(X[pool.ds_idxs.numpy()][:len(xb)]))


def test_image_folder_through_a_vision_datablock(tmp_path):
    path = digits_folder(tmp_path/'digits')
    dblock = DataBlock(blocks=(ImageBlock(cls=PILImageBW), CategoryBlock), get_items=get_image_files, get_y=parent_label)
    split = ActiveSplit(dblock, path/'train', vocab=[str(i) for i in range(10)], valid_items=get_image_files(path/'test'))
    chosen = split.label_random(20, balanced=True, seed=0)
    assert sorted(split.ledger.labels().values()) == sorted([str(i) for i in range(10)] * 2)
    assert [parent_label(split.item(i)) for i in chosen.tolist()] == [split.ledger.labels()[i] for i in chosen.tolist()]
    dls = split.dataloaders(bs=8, num_workers=0)
    assert dls.c == 10 and len(dls.valid_ds) == 599
    pool = split.pool()
    xb, = split.pool_dl(dls, pool, bs=5).one_batch()
    files = split.items_at(pool.ds_idxs[:5])
    direct = torch.stack([dls.valid.after_item(PILImageBW.create(f)) for f in files]).float() / 255
    assert torch.allclose(xb.cpu(), direct)


# --- ledger -------------------------------------------------------------------------------------------------

def test_a_bad_call_writes_nothing():
    ledger = LabelLedger(10, vocab=['a', 'b'])
    ledger.label([1], ['a'], source='initial')
    ledger.request([2, 3])
    bad = [(([2, 3], ['a', 'zz']), ValueError, "not in the vocabulary"), (([2, 1], ['a', 'b']), ValueError, "already labelled"),
           (([2, 11], ['a', 'b']), IndexError, r"in \[0, 10\), got \[11\]"), (([2, 2], ['a', 'a']), ValueError, "duplicates"),
           (([2, 4], ['a', 'b']), ValueError, r"never requested \(no pending request\): \[4\]"),
           (([2, 3], ['a', float('nan')]), ValueError, "no answer yet")]
    for args, err, msg in bad:
        with pytest.raises(err, match=msg): ledger.label(*args)
    assert ledger.labels() == {1: 'a'} and ledger.pending().ds_idx.tolist() == [2, 3]


def test_unique_constraint_rolls_back_a_whole_call(tmp_path):
    "Even when the database itself refuses a row, the rows before it in the same call are rolled back"
    ledger = LabelLedger(10, tmp_path/'l.db')
    ledger.label([4], [1], source='initial')
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        with ledger._transaction() as cur:
            cur.execute("INSERT INTO labels (ds_idx, label, source, round, time) VALUES (5, '1', 'human', 0, 0)")
            cur.execute("INSERT INTO labels (ds_idx, label, source, round, time) VALUES (4, '1', 'human', 0, 0)")
    assert LabelLedger(10, tmp_path/'l.db').labels() == {4: 1}


@given(st.lists(st.tuples(st.integers(0, 29), st.sampled_from(['x', 'y', 'z'])), unique_by=lambda t: t[0], max_size=30),
       st.sampled_from(['initial', 'oracle', 'human']))
def test_state_dict_round_trips_through_json(rows, source):
    ledger = LabelLedger(30, vocab=['x', 'y', 'z'])
    if rows: ledger.label([i for i, _ in rows], [l for _, l in rows], source=source, unrequested=True, annotator='a')
    if rows: ledger.correct([rows[0][0]], ['x'], reason='checked')
    if rows: ledger.log_answers([rows[0][0]], 'correct', 'a', via='test', labels=['x'], ref=['r:1'])  # the log goes too
    free = [i for i in range(30) if i not in dict(rows)]
    if free: ledger.request(free[:3], scores=[0.5] * len(free[:3]))
    ledger.record_history(0, {'round': 0, 'accuracy': 0.5})
    other = LabelLedger(30, vocab=['x', 'y', 'z'])
    other.load_state_dict(json.loads(json.dumps(ledger.state_dict())))
    assert other.state_dict() == ledger.state_dict()


def test_ledger_file_survives_and_is_checked(tmp_path):
    items = [f'img_{i}.png' for i in range(12)]
    ledger = LabelLedger(keys=items, path=tmp_path/'labels.db', vocab=['a', 'b'])
    ledger.label([0, 5], ['a', 'b'], source='initial')
    ledger.request([7, 8], [0.9, 0.1])
    ledger.close()
    again = LabelLedger(keys=items[::-1], path=tmp_path/'labels.db', vocab=['a', 'b'])  # another listing order
    assert again.labels() == {0: 'a', 5: 'b'} and again.pending().ds_idx.tolist() == [7, 8] and again.round == 1
    assert again.keys([0, 5]) == ['img_0.png', 'img_5.png']
    with pytest.raises(ValueError, match="belongs to other data: none of its 12 item keys"):
        LabelLedger(keys=[f'other_{i}.png' for i in range(12)], path=tmp_path/'labels.db', vocab=['a', 'b'])
    with pytest.raises(ValueError, match="belongs to other data: its vocab"):
        LabelLedger(keys=items, path=tmp_path/'labels.db', vocab=['a', 'c'])


def test_labels_keep_their_json_types():
    ledger = LabelLedger(4)
    ledger.label([0, 1, 2], [3, 'x', [1, 2]], source='initial')
    ledger.label([3], np.array([7]), source='initial')
    assert ledger.labels() == {0: 3, 1: 'x', 2: [1, 2], 3: 7}


def test_validation_share_is_stable_as_labels_grow():
    split = id_split(n=200, valid_pct=0.3, seed=5)
    split.label(list(range(0, 60)), ['a'] * 60, source='initial')
    _, valid1 = split.train_valid_idxs()
    split.label(list(range(60, 200)), ['b'] * 140, source='initial')
    train2, valid2 = split.train_valid_idxs()
    assert set(valid1.tolist()) <= set(valid2.tolist())
    assert 0.2 < len(valid2) / 200 < 0.4
    assert not set(train2.tolist()) & set(valid2.tolist())


def test_vocab_is_fixed_from_the_start():
    split = id_split(valid_pct=0.5)
    split.label([1, 2, 4, 5], ['b'] * 4, source='initial')  # only one class labelled so far
    dls = split.dataloaders(num_workers=0)
    assert list(dls.vocab) == ['a', 'b'] and dls.c == 2
