"""People in the loop: answers go to the items they were given for, with who and when; rounds labelled by people are
evaluated and recorded like simulated ones; integer classes come back as integers; bad counts are refused."""
import math

import numpy as np
import pandas as pd
import pytest
import torch
from fastai.data.block import DataBlock, TransformBlock, CategoryBlock
from fastai.data.transforms import ColReader

from fastai_active.data.ledger import LabelLedger
from fastai_active.data.split import ActiveSplit
from fastai_active.loop.learner import ActiveLearner, SimulatedOracle
from fastai_active.semi.core import PseudoLabeller
from fastai_active.uncertainty.core import PosteriorSampler

from _learners import ignore_id_learner, two_features_and_id as features


def frame(n=120, seed=0, classes=('a', 'b')):
    "Two features and the row's id; classes by the sign of x0 - x1 (and of x0 + x1 for a third class)"
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({'x0': rng.normal(size=n), 'x1': rng.normal(size=n), 'id': np.arange(n)})
    idx = (df.x0 - df.x1 > 0).astype(int) + ((df.x0 + df.x1 > 1) if len(classes) > 2 else 0)
    df['y'] = np.array(classes, dtype=object)[idx] if isinstance(classes[0], str) else np.array(classes)[idx]
    return df


def make_learner(dls): return ignore_id_learner(dls, p=0.1)


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
    with pytest.raises(ValueError, match="expected finite scores, got nan"): ledger.request(free[:1], scores=[float('nan')])
    with pytest.raises(ValueError, match="expected finite scores, got inf"): ledger.request(free[:1], scores=[math.inf])
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
    al.fit()  # the learners of these labels (acquire refuses learners older than the labels)
    with pytest.raises(ValueError, match="a label must equal a class in type too"):
        al.label(al.acquire(1).assign(label='1'))


# --- issue 25: people in the loop as a team works (Label Studio corrections, partial imports, who labelled) ---------

from fastai_active.people.answers import answers, correct_answers, withdraw_answer
from fastai_active.people.label_studio import import_annotations, LabelStudioProject
import fastai_active.people.label_studio as label_studio_module


def ls_ann(aid, label, user=1, created='2026-12-01T10:00:00Z', updated=None, cancelled=False, project=3):
    "A Label Studio 1.23 annotation as its export gives it (the annotator by user id)"
    result = [] if cancelled else [{'from_name': 'label', 'to_name': 'table', 'type': 'choices', 'value': {'choices': [label]}}]
    return {'id': aid, 'completed_by': user, 'result': result, 'was_cancelled': cancelled, 'created_at': created,
            'updated_at': updated or created, 'project': project}


def ls_task(tid, key, *anns, project=3): return {'id': tid, 'project': project, 'data': {'key': key}, 'annotations': list(anns)}


USERS = {1: 'ana@example.com', 2: 'bo@example.com', 3: 'cy@example.com'}


def replayed(split):
    "The current answer of each item of the answers log, replayed: `label` and `correct` set it, `undo` and `withdraw` clear it"
    out = {}
    for d, l, a in zip(*(answers(split)[c] for c in ('ds_idx', 'label', 'action'))):
        if a in ('label', 'correct'): out[d] = l
        elif a in ('undo', 'withdraw'): out.pop(d, None)
    return out


def log_agrees(split):
    log = answers(split)
    return replayed(split) == split.ledger.labels(log.ds_idx.unique().tolist())


def requested_split(n=4):
    split = make_al().split
    idxs = split.pool().ds_idxs[:n].tolist()
    split.ledger.request(idxs, scores=list(range(n, 0, -1)))
    return split, idxs


def test_an_annotation_updated_in_label_studio_is_a_correction():
    "Case 1: Label Studio's Update (the same annotation, new result and updated_at) corrects the ledger on the next pull"
    split, (i, j, *_) = requested_split()
    day1 = [ls_task(1, i, ls_ann(11, 'a')), ls_task(2, j, ls_ann(12, 'b'))]
    assert import_annotations(split, day1, users=USERS).labelled == [i, j]
    day2 = [ls_task(1, i, ls_ann(11, 'b', user=2, updated='2026-12-02T08:30:00Z')), day1[1]]
    report = import_annotations(split, day2, users=USERS)
    assert report.corrected == [i] and report.labelled == [] and split.ledger.labels([i, j]) == {i: 'b', j: 'b'}
    hist = split.ledger.to_df(superseded=True).query('ds_idx == @i')
    assert hist[['label', 'annotator', 'current']].values.tolist() == [['a', 'ana@example.com', False], ['b', 'bo@example.com', True]]
    assert hist.time.iloc[1] == pd.Timestamp('2026-12-02T08:30:00Z')
    assert split.ledger.refs('label-studio:3:11') == {'label-studio:3:11@2026-12-01T10:00:00.000000Z': (i, 'a', False),
                                                      'label-studio:3:11@2026-12-02T08:30:00.000000Z': (i, 'b', True)}
    state, n_log = split.ledger.state_dict(), len(answers(split))
    for export in (day2, day1, day2):  # the same pull twice, and an older export, change nothing
        assert import_annotations(split, export, users=USERS).n_changed == 0
    assert split.ledger.state_dict() == state and len(answers(split)) == n_log and log_agrees(split)


def test_a_deleted_and_remade_annotation_blocks_nothing():
    "Case 2: deleted and annotated again: a correction, and an unrelated new answer in the same pull lands"
    split, (i, j, k, _) = requested_split()
    import_annotations(split, [ls_task(1, i, ls_ann(11, 'a'))], users=USERS)
    report = import_annotations(split, [ls_task(1, i, ls_ann(21, 'b', user=3, created='2026-12-02T09:00:00Z')),
                                        ls_task(2, j, ls_ann(22, 'a'))], users=USERS)
    assert report.corrected == [i] and report.labelled == [j] and len(report.problems) == 0
    assert split.ledger.labels([i, j]) == {i: 'b', j: 'a'}
    assert split.ledger.to_df().set_index('ds_idx').loc[i, ['annotator', 'corrections']].tolist() == ['cy@example.com', 1]
    # deleted with nothing in its place (only a skip): the label is withdrawn (kept as superseded), the item asked again
    report = import_annotations(split, [ls_task(1, i, ls_ann(31, '', cancelled=True))], users=USERS)
    assert report.withdrawn == [i] and split.ledger.labels([i]) == {} and i in split.ledger.pending().ds_idx.tolist()
    assert split.ledger.to_df(superseded=True).query('ds_idx == @i').label.tolist() == ['a', 'b']
    assert answers(split).action.iloc[-1] == 'withdraw' and log_agrees(split)
    assert import_annotations(split, [ls_task(1, i, ls_ann(31, '', cancelled=True))]).n_changed == 0
    # deleted='report' keeps the label and says so
    import_annotations(split, [ls_task(3, k, ls_ann(41, 'b'))], users=USERS)
    with pytest.warns(UserWarning, match='1 annotations were left out'):
        report = import_annotations(split, [ls_task(3, k)], deleted='report')
    assert split.ledger.labels([k]) == {k: 'b'} and 'annotation 41 deleted in Label Studio' in report.problems.why[0]
    # a task of another project says nothing about this project's annotations
    assert import_annotations(split, [ls_task(3, k, project=4)]).n_changed == 0 and split.ledger.labels([k]) == {k: 'b'}


def test_a_correction_with_a_ref_unblocks_pulls_and_an_undo_after_it_keeps_the_log_right():
    "Case 3: `ledger.correct(..., ref=)` registers the ref; an undo after it leaves log and ledger agreeing"
    split, (i, j, *_) = requested_split()
    import_annotations(split, [ls_task(1, i, ls_ann(11, 'a'))], users=USERS)
    split.ledger.correct([i], ['b'], annotator='bo@example.com', ref=['label-studio:3:21'])  # as a person would type it
    remade = [ls_task(1, i, ls_ann(21, 'b', user=2, created='2026-12-02T09:00:00Z')), ls_task(2, j, ls_ann(22, 'a'))]
    report = import_annotations(split, remade, users=USERS)
    assert report.labelled == [j] and report.corrected == [] and len(report.problems) == 0  # not blocked, nothing twice
    withdraw_answer(split, i, annotator='bo')  # an undo after the correction
    assert split.ledger.labels([i]) == {} and answers(split).label.iloc[-1] == 'b' and log_agrees(split)
    assert import_annotations(split, remade, users=USERS).n_changed == 0  # the undo stands: annotation 21 was seen
    changed = [ls_task(1, i, ls_ann(21, 'a', user=2, created='2026-12-02T09:00:00Z', updated='2026-12-03T09:00:00Z'))]
    assert import_annotations(split, changed, users=USERS).labelled == [i]  # ... until it changes in Label Studio
    assert split.ledger.labels([i]) == {i: 'a'} and log_agrees(split)
    correct_answers(split, [i], ['b'], annotator='dee')  # a notebook correction stands until Label Studio changes again
    assert import_annotations(split, changed, users=USERS).n_changed == 0 and split.ledger.labels([i]) == {i: 'b'}
    assert log_agrees(split)


def test_one_bad_annotation_blocks_nothing():
    "Case 4: out-of-vocabulary labels, disagreements and unknown tasks are reported and stay pending; the rest lands"
    split, idxs = requested_split(10)
    good = [ls_task(t, i, ls_ann(100 + t, 'ab'[t % 2])) for t, i in enumerate(idxs[:7])]
    bad = [ls_task(7, idxs[7], ls_ann(107, 'z')),
           ls_task(8, idxs[8], ls_ann(108, 'a'), ls_ann(208, 'b', user=2)),
           ls_task(9, 'no-such-key', ls_ann(109, 'a')),
           ls_task(10, idxs[9], ls_ann(110, 'a'), ls_ann(210, 'a', user=2, created='2026-12-01T11:00:00Z'))]
    state = split.ledger.state_dict()
    with pytest.raises(ValueError, match=r"3 annotations cannot be imported, so nothing was written \(partial=False\)"):
        import_annotations(split, bad + good, users=USERS, partial=False)
    assert split.ledger.state_dict() == state and len(answers(split)) == 0
    with pytest.warns(UserWarning, match='3 annotations were left out'):
        report = import_annotations(split, bad + good, users=USERS)
    assert report.labelled == idxs[9:10] + idxs[:7] and report.confirmed == idxs[9:10]  # two agreeing annotators: one answer
    assert split.ledger.labels(idxs) == {**{i: 'ab'[t % 2] for t, i in enumerate(idxs[:7])}, idxs[9]: 'a'}
    p = report.problems
    assert p[['task', 'annotation', 'key']].values.tolist() == [[7, 107, idxs[7]], [8, [108, 208], idxs[8]], [9, [109], 'no-such-key']]
    assert "['z']" in p.why[0] and 'not in the vocabulary' in p.why[0] and 'annotators disagree' in p.why[1]
    assert 'matches no item' in p.why[2]
    assert sorted(split.ledger.pending().ds_idx.tolist()) == sorted(idxs[7:9])  # the bad ones still wait
    assert answers(split).query('ds_idx == @idxs[9]').annotator.tolist() == ['ana@example.com', 'bo@example.com']
    # fixed in Label Studio: the next pull takes them
    fixed = [ls_task(7, idxs[7], ls_ann(107, 'b', updated='2026-12-02T10:00:00Z')),
             ls_task(8, idxs[8], ls_ann(108, 'a'), ls_ann(208, 'a', user=2, updated='2026-12-02T10:00:00Z'))]
    assert import_annotations(split, fixed + good, users=USERS).labelled == idxs[7:9]
    assert len(split.ledger.pending()) == 0 and log_agrees(split)
    # an item with no pending request and no label is reported too
    free = split.pool().ds_idxs[0].item()
    with pytest.warns(UserWarning):
        report = import_annotations(split, [ls_task(11, free, ls_ann(111, 'a'))], users=USERS)
    assert 'no pending request' in report.problems.why[0] and split.ledger.labels([free]) == {}


def test_an_import_is_written_whole_or_not_at_all(monkeypatch):
    "A failure after some answers were written (here: logging the confirmations) leaves the ledger and the log as they were"
    split, (i, j, k, _) = requested_split()
    import_annotations(split, [ls_task(1, i, ls_ann(11, 'a'))], users=USERS)
    state, n_log = split.ledger.state_dict(), len(answers(split))
    export = [ls_task(1, i, ls_ann(11, 'b', updated='2026-12-02T10:00:00Z')), ls_task(2, j, ls_ann(12, 'a')),
              ls_task(3, k, ls_ann(13, 'a'), ls_ann(23, 'a', user=2))]
    def full_disk(*a, **kw): raise OSError('disk full')
    monkeypatch.setattr(label_studio_module, 'confirm_answers', full_disk)
    with pytest.raises(OSError, match='disk full'): import_annotations(split, export, users=USERS)
    assert split.ledger.state_dict() == state and len(answers(split)) == n_log
    monkeypatch.undo()
    report = import_annotations(split, export, users=USERS)
    assert (report.corrected, report.labelled, report.confirmed) == ([i], [j, k], [k]) and log_agrees(split)


def test_export_files_say_who_labelled():
    "Case 6: exports give `completed_by` as an id; e-mails from users=, from the server, or a warning naming the ids"
    split, (i, j, k, _) = requested_split()
    export = [ls_task(1, i, ls_ann(11, 'a', user=1)), ls_task(2, j, ls_ann(12, 'b', user=5))]
    with pytest.warns(UserWarning, match=r"names annotators \[5\] by user id only"):
        report = import_annotations(split, export, users={1: 'ana@example.com'})
    assert report.unknown_users == [5] and answers(split).annotator.tolist() == ['ana@example.com', 'label-studio user 5']

    class Server:  # what LabelStudioProject.users() gives: the organisation's users
        def users(self): return {3: 'cy@example.com'}
    assert import_annotations(split, [ls_task(3, k, ls_ann(13, 'a', user=3))], users=Server()).unknown_users == []
    assert answers(split).annotator.iloc[-1] == 'cy@example.com'
    inline = ls_task(3, k, {**ls_ann(14, 'a', created='2026-12-02T10:00:00Z'), 'completed_by': {'id': 9, 'email': 'dee@example.com'}})
    import_annotations(split, [inline])  # older exports name the user inline: a confirmation, by dee
    assert answers(split).annotator.iloc[-1] == 'dee@example.com'


def test_a_refused_token_says_what_to_do():
    "Case 8: the legacy-token refusal as words, not the SDK's ApiError with its header dump"
    class ApiError(Exception):
        def __init__(self, status_code, body):
            super().__init__(f"headers: {{'server': 'nginx', ...}}, status_code: {status_code}, body: {body}")
            self.status_code, self.body = status_code, body
    class Tasks:
        def list(self, **kw): raise ApiError(401, {'detail': 'legacy token authentication has been disabled for this organization'})
    client = type('Client', (), {'tasks': Tasks()})()
    with pytest.raises(PermissionError, match=r"legacy API token.*personal access token: in Label Studio, open Account & "
                                              r"Settings .* Personal Access Token → Create"):
        LabelStudioProject('http://127.0.0.1:8080', 'legacy', 3, client=client).pull(make_al().split)


@pytest.mark.slow  # a worker process killed mid-transaction
@pytest.mark.skipif(not hasattr(__import__('signal'), 'SIGKILL'), reason="needs SIGKILL")
def test_an_import_killed_mid_transaction_leaves_nothing_of_it(tmp_path):
    "SIGKILL inside an import's transaction (labels and corrections written, not committed): none of it is kept"
    import os, signal, sqlite3, subprocess, sys, json
    from pathlib import Path
    path = tmp_path/'labels.db'
    split = make_al(path=path).split
    idxs = split.pool().ds_idxs[:6].tolist()
    split.ledger.request(idxs, scores=list(range(6, 0, -1)))
    import_annotations(split, [ls_task(1, idxs[0], ls_ann(11, 'a'))], users=USERS)
    state, n_log = split.ledger.state_dict(), len(answers(split))
    export = ([ls_task(1, idxs[0], ls_ann(11, 'b', updated='2026-12-02T10:00:00Z'))]
              + [ls_task(2 + t, i, ls_ann(12 + t, 'a'), ls_ann(22 + t, 'a', user=2)) for t, i in enumerate(idxs[1:])])
    (tmp_path/'export.json').write_text(json.dumps(export))
    split.ledger.close()
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name('_import_worker.py')), str(path), str(tmp_path/'export.json')],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=Path(__file__).parent)
    out = []
    for line in proc.stdout:
        out.append(line)
        if line.strip() == 'WRITING': break
    assert out and out[-1].strip() == 'WRITING', ''.join(out)[-3000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    con = sqlite3.connect(path)
    assert con.execute('PRAGMA integrity_check').fetchone() == ('ok',)
    con.close()
    again = make_al(path=path).split
    assert again.ledger.state_dict() == state and len(answers(again)) == n_log  # nothing of the killed import
    report = import_annotations(again, export, users=USERS)  # the same import, whole
    assert report.corrected == idxs[:1] and report.labelled == idxs[1:] and report.confirmed == idxs[1:]
    assert again.ledger.labels(idxs) == {idxs[0]: 'b', **{i: 'a' for i in idxs[1:]}} and log_agrees(again)
