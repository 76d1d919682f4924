"""People in the loop: answers go to the items they were given for, with who and when; rounds labelled by people are
evaluated and recorded like simulated ones; integer classes come back as integers; bad counts are refused."""
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from fastai.data.block import DataBlock, TransformBlock, CategoryBlock
from fastai.data.transforms import ColReader
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat
from fastai.metrics import accuracy

from fastai_active.ledger import LabelLedger
from fastai_active.split import ActiveSplit
from fastai_active.learner import ActiveLearner, SimulatedOracle
from fastai_active.semi import PseudoLabeller
from fastai_active.uncertainty import PosteriorSampler


def features(row): return torch.tensor([row.x0, row.x1, float(row.id)], dtype=torch.float32)


def frame(n=120, seed=0, classes=('a', 'b')):
    "Two features and the row's id; classes by the sign of x0 - x1 (and of x0 + x1 for a third class)"
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({'x0': rng.normal(size=n), 'x1': rng.normal(size=n), 'id': np.arange(n)})
    idx = (df.x0 - df.x1 > 0).astype(int) + ((df.x0 + df.x1 > 1) if len(classes) > 2 else 0)
    df['y'] = np.array(classes, dtype=object)[idx] if isinstance(classes[0], str) else np.array(classes)[idx]
    return df


class IgnoreId(nn.Module):
    def __init__(self, c): super().__init__(); self.net = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, c))
    def forward(self, x): return self.net(x[:, :2])


def make_learner(dls): return Learner(dls, IgnoreId(dls.c), loss_func=CrossEntropyLossFlat(), metrics=accuracy)


def make_al(path=None, classes=('a', 'b'), n=120, initial=6, **kwargs):
    df = frame(n, classes=classes)
    dblock = DataBlock(blocks=(TransformBlock, CategoryBlock), get_x=features, get_y=ColReader('y'))
    split = ActiveSplit(dblock, df, path=path, vocab=sorted(set(df.y)), valid_items=frame(40, seed=1, classes=classes),
                        min_epoch_items=32)
    if split.ledger.n_labelled == 0: split.label_random(initial, seed=0)
    kw = dict(epochs=1, lr=1e-2, dl_kwargs=dict(num_workers=0), show_progress=False)
    return ActiveLearner(split, make_learner, **{**kw, **kwargs})


class IdSampler(PosteriorSampler):
    "Items whose id is in `uncertain` are 50/50, all others certain"
    def __init__(self, uncertain): self.uncertain = set(uncertain)
    def __call__(self, learns, dl):
        ids = torch.cat([xb[:, 2] for xb, in dl]).long().tolist()
        return torch.tensor([[0.5, 0.5] if i in self.uncertain else [0.99, 0.01] for i in ids]).log()[:, None]


# --- issue 9, item 5: labels go to the items that were asked about -----------------------------------------------

def test_labels_for_items_never_requested_are_refused():
    ledger = LabelLedger(10, vocab=['a', 'b'])
    ledger.request([3, 4])
    with pytest.raises(ValueError, match=r"items never requested \(no pending request\): \[5\]"): ledger.label([3, 5], ['a', 'b'])
    assert ledger.n_labelled == 0 and ledger.pending().ds_idx.tolist() == [3, 4]
    assert ledger.label([3, 5], ['a', 'b'], unrequested=True) == 2  # on purpose
    assert ledger.label([6], ['a'], source='initial') == 1  # labels the user had before any request
    df = ledger.to_df().set_index('ds_idx')
    assert df.request.isna().tolist() == [False, True, True] and ledger.pending().ds_idx.tolist() == [4]


def test_pool_idx_cannot_be_passed_for_ds_idx():
    "acquire's pool_idx column where ds_idx was meant: refused, whichever way it is passed; nothing is written"
    al = make_al(sampler=IdSampler({17, 42, 99}), acquisition='entropy')
    al.fit()
    picked = al.acquire(3)
    assert sorted(picked.ds_idx) == [17, 42, 99] and not (picked.pool_idx == picked.ds_idx).all()
    answers = al.split.true_labels(picked.ds_idx)
    before = al.ledger.labels()
    with pytest.raises(ValueError, match="rows whose ds_idx does not match their key"):
        al.label(picked.assign(ds_idx=picked.pool_idx, label=answers))
    with pytest.raises(TypeError, match="got the `pool_idx` column"): al.label(picked.pool_idx, answers)
    with pytest.raises(ValueError, match="never requested"): al.label(picked.pool_idx.tolist(), answers)
    with pytest.raises(ValueError, match="got `pool_idx` only"): al.label(picked[['pool_idx']].assign(label=answers))
    assert al.ledger.labels() == before and sorted(al.ledger.pending().ds_idx) == [17, 42, 99]
    assert al.label(picked.assign(label=answers), annotator='ana') == 3
    assert al.ledger.labels([17, 42, 99]) == dict(zip(picked.ds_idx, answers))


def test_answers_by_key_and_partial_answers():
    al = make_al(sampler=IdSampler({17, 42, 99}), acquisition='entropy')
    al.fit()
    picked = al.acquire(3)
    with pytest.raises(ValueError, match="drop the rows that have no answer yet"):
        al.label(picked.assign(label=['a', None, 'b']))
    first = picked.iloc[:1].assign(label='a')  # a person answers one item now, the others later
    assert al.label(first, annotator='ana') == 1
    assert al.label({k: 'b' for k in picked.key.iloc[1:]}, annotator='ben') == 2  # keyed: the DataFrame index values
    df = al.ledger.to_df().set_index('ds_idx').loc[picked.ds_idx]
    assert df.annotator.tolist() == ['ana', 'ben', 'ben'] and (df['round'] == 1).all() and df.request.notna().all()


# --- issue 9, item 6: counts, rounds and scores ------------------------------------------------------------------

def test_bad_counts_rounds_and_scores_are_refused():
    al = make_al()
    split, ledger = al.split, al.ledger
    n0 = ledger.n_labelled
    for n, err, msg in [(-1, ValueError, "expected n >= 0, got n=-1"), (1.5, TypeError, "expected n as an int, got 1.5"),
                        (True, TypeError, "expected n as an int, got True"), ('3', TypeError, "expected n as an int")]:
        with pytest.raises(err, match=msg): split.label_random(n)
    free = split.pool().ds_idxs[:2].tolist()
    for r, err, msg in [(-1, ValueError, "expected round >= 0"), (2.0, TypeError, "expected round as an int")]:
        with pytest.raises(err, match=msg): ledger.label(free[:1], ['a'], round=r, unrequested=True)
        with pytest.raises(err, match=msg): ledger.request(free[:1], round=r)
        with pytest.raises(err, match=msg): ledger.record_history(r, {})
    with pytest.raises(ValueError, match=r"expected finite scores, got \[nan\]"): ledger.request(free[:1], scores=[float('nan')])
    with pytest.raises(ValueError, match=r"expected finite scores, got \[inf\]"): ledger.request(free[:1], scores=[math.inf])
    with pytest.raises(ValueError, match="expected n >= 1"): al.acquire(0)
    with pytest.raises(TypeError, match="expected n as an int"): al.acquire(2.5)
    with pytest.raises(ValueError, match="expected max_items >= 1"): split.pool(max_items=0)
    assert ledger.n_labelled == n0 and len(ledger.pending()) == 0 and ledger.requests().empty
    # NumPy integers just work
    assert len(split.label_random(np.int64(2), seed=1)) == 2
    ledger.label(split.pool().ds_idxs[:1], ['a'], round=np.int64(0), unrequested=True)
    al.fit()
    assert len(al.acquire(np.int64(2))) == 2
    assert len(split.pool(max_items=np.int32(5))) == 5


# --- issue 10: people labelling, provenance, history --------------------------------------------------------------

def test_a_person_labelling_across_restarts_gets_history_and_curve(tmp_path):
    path = tmp_path/'labels.db'
    al = make_al(path=path)  # no oracle: a person answers
    al.fit()
    rec0 = al.evaluate()
    first = al.acquire(5)
    assert set(al.history.columns) >= {'score_s', 'acquire_s'}  # timings go with the round's row
    # a restart: another process opens the ledger, answers, trains and evaluates
    later = make_al(path=path)
    todo = later.pending()
    assert todo.ds_idx.tolist() == first.ds_idx.tolist() and todo.key.tolist() == first.key.tolist()
    later.label(todo.assign(label=later.split.true_labels(todo.ds_idx)), annotator='ana')
    with pytest.raises(RuntimeError, match="call `fit\\(\\)` before `evaluate\\(\\)`"): later.evaluate()
    later.fit()
    later.ledger.request([later.split.pool().ds_idxs[0]])
    with pytest.raises(RuntimeError, match="still waiting"): later.acquire(2)  # checked first, before any scoring
    later.ledger.cancel_requests()
    later.evaluate()
    stale = later.acquire(3)
    later.label(stale.assign(label=later.split.true_labels(stale.ds_idx)))
    with pytest.raises(RuntimeError, match="trained in round 1 on 11 labels"): later.evaluate()
    later.fit()
    later.evaluate()
    h = later.history
    assert h['round'].tolist() == [0, 1, 2] and h.n_labelled.tolist() == [6, 11, 14] and h.n_acquired.tolist() == [0, 5, 8]
    assert rec0['class_counts'] == h.class_counts.iloc[0]
    for counts, n in zip(h.class_counts, h.n_labelled): assert sum(counts.values()) == n and list(counts) == ['a', 'b']
    assert h.class_counts.iloc[-1] == later.ledger.class_counts()
    ax = later.plot_history()
    x, y = ax.lines[0].get_data()
    assert list(x) == [6, 11, 14] and np.allclose(y, h.accuracy)
    df = later.ledger.to_df()
    assert df.loc[df['round'] == 1, 'annotator'].tolist() == ['ana'] * 5
    assert str(df.time.dtype).startswith('datetime64') and df.time.dt.tz is not None


def test_a_correction_keeps_the_old_label():
    al = make_al()
    i = int(al.ledger.labelled_idxs()[0])
    old = al.ledger.labels()[i]
    new = 'b' if old == 'a' else 'a'
    with pytest.raises(ValueError, match="already labelled .* use `correct`"): al.label([i], [new], unrequested=True)
    assert al.ledger.correct([i], [new], annotator='ben', reason='second look') == 1
    assert al.ledger.labels()[i] == new and al.ledger.n_labelled == 6
    log = al.ledger.to_df(superseded=True).query('ds_idx == @i')
    assert log.label.tolist() == [old, new] and log.current.tolist() == [False, True]
    assert log.annotator.fillna('').tolist() == ['', 'ben'] and log.replaced.notna().tolist() == [True, False]
    assert al.ledger._q('SELECT reason FROM superseded')[0][0] == 'second look'
    dls = al.split.dataloaders(num_workers=0)  # training reads the corrected label
    pos = al.split.train_valid_idxs()[0].tolist().index(i)
    assert dls.vocab[int(dls.train_ds[pos][1])] == new


# --- issue 10: integer classes end to end ---------------------------------------------------------------------------

def test_integer_classes_round_trip_end_to_end():
    "Classes 0, 1, 2 from a DataFrame column: simulated, human and pseudo labels, history and predictions stay ints"
    al = make_al(classes=(0, 1, 2), initial=9, pseudo=PseudoLabeller(0.4))
    assert al.split.vocab == [0, 1, 2] and al.split.true_labels([0])[0] == float(al.split.items.y[0])  # pandas upcast
    al.oracle = SimulatedOracle.from_split(al.split)  # reveals 0.0, 1.0, 2.0 from the float row
    h = al.loop(rounds=2, n_per_round=5)
    al.oracle = None
    al.fit()
    picked = al.acquire(3)
    al.label(picked.assign(label=[int(v) for v in al.split.items.y.iloc[picked.ds_idx]]), annotator='ana')  # a person's ints
    labels, pseudo = al.ledger.labels(), al.ledger.labels(pseudo=True)
    assert len(labels) == 22 and pseudo
    assert all(type(v) is int for v in list(labels.values()) + list(pseudo.values()))
    assert all(v == al.split.items.y.iloc[d] for d, v in labels.items())
    assert all(type(k) is int for counts in h.class_counts for k in counts) and list(h.class_counts.iloc[0]) == [0, 1, 2]
    assert list(al.dls.vocab) == [0, 1, 2]
    assert set(al.ledger.to_df().label) <= {0, 1, 2}
    with pytest.raises(ValueError, match="a label must equal a class in type too"):
        al.label(al.acquire(1).assign(label='1'))
