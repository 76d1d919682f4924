"""One pool path: every scorer gives the in-memory picks, item by item, on histories a user's data goes through.

Generated histories (hypothesis): an image folder that grows, loses and renames files, read again by `refresh()` or
by a new session; a table whose rows are appended, removed and re-sorted, with no target for the unlabelled rows.
For each, the chunked scorer with chunks of 1, 7 and more than the pool picks what the in-memory scorer picks, for
every acquisition family, and each per-item score equals that item's own score computed alone. Ray: test_distributed."""
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from fastai_active.scale.chunked import ChunkedScorer
from fastai_active.loop.learner import ActiveLearner
from fastai_active.loop.scorer import InMemoryScorer
from fastai_active.acquisition.scores import entropy
from fastai_active.acquisition.strategies import as_acquisition
from fastai_active.acquisition.diversity_acquisition import TypiClust
from fastai_active.uncertainty.core import SinglePass
from fastai_active.uncertainty.mc_dropout import MCDropout

from _histories import (FAMILIES, FOLDER_OPS, PER_ITEM, TABLE_OPS, Folder, Table, assert_same_picks, folder_al,
                        folder_history, own_scores, picks, table_al, table_history)

SCORERS = {'chunks of 1': ChunkedScorer(chunk_size=1), 'chunks of 7': ChunkedScorer(chunk_size=7),
           'one chunk': ChunkedScorer(chunk_size=10_000)}
FAST = settings(max_examples=4, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


def check_every_scorer(al:ActiveLearner, families=FAMILIES, scorers=SCORERS):
    "Each family's in-memory picks, then every scorer's, compared item by item; per-item scores against each item alone"
    for family in families:
        want = picks(al, InMemoryScorer(), family)
        if family in PER_ITEM:
            own = own_scores(al, want.key.tolist(), PER_ITEM[family], al.sampler)
            np.testing.assert_allclose(want.score, own, rtol=1e-4, atol=1e-5, err_msg=f"{family}: in-memory scores")
        for name, scorer in scorers.items(): assert_same_picks(picks(al, scorer, family), want, f"{family}, {name}")


def history_ops(kinds, k_max):
    return st.lists(st.tuples(st.sampled_from(kinds), st.integers(1, k_max), st.sampled_from(['refresh', 'session'])),
                    min_size=1, max_size=3)
folder_ops, table_ops = history_ops(*FOLDER_OPS), history_ops(*TABLE_OPS)

@pytest.mark.slow  # minutes: every generated history re-reads a folder of PNGs with every scorer
@FAST
@given(ops=folder_ops)
def test_image_folder_histories(tmp_path_factory, ops):
    check_every_scorer(folder_history(tmp_path_factory.mktemp('folder'), ops, MCDropout(8, seed=0)))


@FAST
@given(ops=table_ops)
def test_table_histories(tmp_path_factory, ops):
    check_every_scorer(table_history(tmp_path_factory.mktemp('table'), ops, MCDropout(8, seed=0)))


def test_a_grown_folder_in_a_new_session_gives_the_in_memory_picks_and_each_file_its_own_score(tmp_path):
    "The first row of the issue's table: 12 new PNGs, a new session; the chunked picks were other files' before"
    folder = Folder(tmp_path/'imgs', 60)
    al = folder_al(folder, tmp_path/'labels.db', SinglePass())
    folder.add(12)
    al = folder_al(folder, tmp_path/'labels.db', SinglePass(), fitted=al)
    want, got = picks(al, InMemoryScorer(), 'entropy', 10), picks(al, ChunkedScorer(chunk_size=16), 'entropy', 10)
    assert_same_picks(got, want, 'entropy, chunks of 16')
    np.testing.assert_allclose(got.score, own_scores(al, got.key.tolist(), entropy, SinglePass()), rtol=1e-4, atol=1e-6)
    assert len(al._pool()) == 60 + 12 - 20  # the new files are in the pool


def test_deleted_files_in_a_new_session_are_not_read(tmp_path):
    "Six unlabelled files deleted (and none added): an IndexError before, the in-memory picks now"
    folder = Folder(tmp_path/'imgs', 60)
    al = folder_al(folder, tmp_path/'labels.db', SinglePass())
    folder.delete(al.split, 6)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        al = folder_al(folder, tmp_path/'labels.db', SinglePass(), fitted=al)
    assert len(al.split.ledger.missing_idxs()) == 6
    for family in ('entropy', 'coreset'):
        assert_same_picks(picks(al, ChunkedScorer(chunk_size=5), family), picks(al, InMemoryScorer(), family), family)


def test_a_table_without_targets_for_the_pool_and_re_sorted_gives_the_in_memory_picks(tmp_path):
    "The DataFrame how-to's table: no target for unlabelled rows (the target column reached the loss before), re-sorted"
    table = Table(120)
    al = table_al(table, tmp_path/'labels.db', SinglePass())
    table.resort()
    al = table_al(table, tmp_path/'labels.db', SinglePass(), fitted=al)
    want = picks(al, InMemoryScorer(), 'entropy', 10)
    got = picks(al, ChunkedScorer(chunk_size=7), 'entropy', 10)
    assert_same_picks(got, want, 'entropy on a re-sorted table')
    np.testing.assert_allclose(got.score, own_scores(al, got.key.tolist(), entropy, SinglePass()), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('family', ['coreset', 'badge', 'typiclust', 'cluster_margin'])
def test_diversity_strategies_run_on_a_chunked_scorer(tmp_path, family):
    "Accepted when built and failing after the fit before; now the in-memory picks (the pool is within `candidates`)"
    folder = Folder(tmp_path/'imgs', 50)
    acq = TypiClust(min_cluster_size=1, k_nn=5) if family == 'typiclust' else family  # clusters of 5 need a bigger pool
    al = folder_al(folder, tmp_path/'labels.db', SinglePass(), acquisition=acq, scorer=ChunkedScorer(chunk_size=8))
    got = al.acquire(4)
    al.ledger.cancel_requests()
    assert_same_picks(got, picks(al, InMemoryScorer(), acq), family)


def test_a_pool_beyond_the_candidates_is_picked_from_them_and_said_to_be_approximate(tmp_path):
    folder = Folder(tmp_path/'imgs', 60)
    al = folder_al(folder, tmp_path/'labels.db', SinglePass())
    al.acquisition = as_acquisition('coreset')
    pool = al._pool()
    req = al._request(pool, 3, seed=0)
    for M, exact in ((len(pool), True), (10, False)):
        pick = ChunkedScorer(chunk_size=7, candidates=M).pick(req)
        assert pick.exact is exact and len(pick.candidates.idxs) == M
        top = entropy(InMemoryScorer().sample(req)[0]).argsort(descending=True)[:M]  # the candidates: the top-M by entropy
        assert set(pick.candidates.idxs.tolist()) == set(top.tolist())


# ---------------------------------------------------------------- learners never older than the labels
def test_score_acquire_and_evaluate_refuse_learners_older_than_the_labels(tmp_path):
    folder = Folder(tmp_path/'imgs', 40)
    al = folder_al(folder, tmp_path/'labels.db', SinglePass())
    al.label(al.split.pool().ds_idxs[:2], ['0', '1'], unrequested=True)   # labels added, no fit
    for what in ('score', 'evaluate'):
        with pytest.raises(RuntimeError, match=r"trained in round 0 on 20 labels.*now holds 22.*call `fit\(\)` before"):
            getattr(al, what)()
    with pytest.raises(RuntimeError, match=r"call `fit\(\)` before `acquire\(\)`"): al.acquire(2)
    assert len(al.ledger.pending()) == 0                                 # nothing requested
    al.fit()
    key = al.ledger.keys(al.ledger.labelled_idxs()[:1])
    al.ledger.correct(al.split.idxs_of(key), ['9'])                      # a correction: the same count of labels
    with pytest.raises(RuntimeError, match="some of them corrected since"): al.acquire(2)
    al.fit()
    al.acquire(2)


def test_a_fit_that_raised_leaves_the_old_learners_refused(tmp_path):
    folder = Folder(tmp_path/'imgs', 40)
    al = folder_al(folder, tmp_path/'labels.db', SinglePass())
    old = al.learns
    def broken(learn): raise ZeroDivisionError("the user's fit")
    al.fit_fn = broken
    with pytest.raises(ZeroDivisionError): al.fit()
    assert al.learns is old
    with pytest.raises(RuntimeError, match=r"the last `fit\(\)` raised \(ZeroDivisionError: the user's fit\)"): al.acquire(2)
    al.fit_fn = None
    al.fit().acquire(2)


# ---------------------------------------------------------------- the other rough edges
def test_labelled_rows_with_gaps_and_no_fill_missing_are_refused_by_key(tmp_path):
    from fastai.tabular.all import Categorify, Normalize, TabularPandas
    table = Table(60)
    table.df.loc[table.df.index[:24], 'spend'] = table.df.spend[:24].fillna(1.)
    table.df.loc['c00003', 'spend'] = np.nan
    to = TabularPandas(table.df, procs=[Categorify, Normalize], cat_names=['plan'], cont_names=['tenure', 'spend'],
                       y_names='left', do_setup=False)
    from fastai_active.data.split import ActiveSplit
    split = ActiveSplit(to, vocab=[0, 1], valid_items=table.valid.fillna(1.))
    split.label(table.df.left.dropna().astype(int).to_dict(), source='initial')
    with pytest.raises(ValueError, match=r"1 labelled rows have missing values in the continuous columns \['spend'\].*'c00003'"):
        split.dataloaders()


def test_a_nan_validation_loss_is_not_recorded_and_names_the_items(tmp_path):
    from fastai.learner import Learner
    from fastai.losses import CrossEntropyLossFlat
    from torch import nn
    from fastai_active.data.arrays import ArraySplit
    x = np.random.default_rng(0).normal(size=(60, 4)).astype(np.float32)
    x[5, 2] = np.nan
    split = ArraySplit(x, np.arange(60) % 2, vocab=[0, 1], valid_pct=0.3)
    split.label(torch.arange(12), (np.arange(12) % 2).tolist(), unrequested=True)
    al = ActiveLearner(split, lambda dls: Learner(dls, nn.Linear(4, 2), loss_func=CrossEntropyLossFlat()), epochs=1,
                       show_progress=False)
    al.fit()
    with pytest.raises(RuntimeError, match=r"round 0 is not recorded: valid_loss is NaN.*1 labelled items hold NaN.*\[5\]"):
        al.evaluate()
    assert len(al.history) == 0


def test_bad_inputs_of_the_same_run_get_clear_errors(tmp_path):
    from fastai.tabular.all import TabularPandas, Normalize
    from fastai_active.data.split import ActiveSplit
    from fastai_active.data.arrays import ArraySplit
    folder = Folder(tmp_path/'imgs', 40)
    al = folder_al(folder, tmp_path/'labels.db', SinglePass())
    # a class the vocabulary lacks, met while labelling a balanced set
    split = ArraySplit(np.zeros((30, 2), np.float32), [i % 3 for i in range(30)], vocab=[0, 1])
    with pytest.raises(ValueError, match=r"has the label 2, which is not a class of the vocabulary \[0, 1\]"):
        split.label_random(4, balanced=True)
    # the target column also among the inputs
    to = TabularPandas(Table(30).df, procs=[Normalize], cont_names=['tenure', 'left'], y_names='left', do_setup=False)
    with pytest.raises(ValueError, match="target column 'left' is also in cat_names or cont_names"): ActiveSplit(to, vocab=[0, 1])
    # items given as file paths (absolute or relative to the folder) label those files; unknown keys are named
    pool = al.split.pool()
    f0, f1 = al.split.items_at(pool.ds_idxs[:2])
    assert al.label([str(f0), f1.relative_to(folder.root).as_posix()], ['1', '2'], unrequested=True) == 2
    assert al.ledger.labels(al.split.idxs_of([f0, f1])) == {int(pool.ds_idxs[0]): '1', int(pool.ds_idxs[1]): '2'}
    with pytest.raises(KeyError, match="keys not in the ledger: \\['nope.png'\\]"): al.label(['nope.png'], ['1'])
    # no split, or a Learner where a function that makes one was expected
    with pytest.raises(TypeError, match="expected an ActiveSplit .* got NoneType"): ActiveLearner(None, lambda dls: None)
    with pytest.raises(TypeError, match="wrap it"): ActiveLearner(al.split, al.learn)


def test_mc_dropout_on_a_model_without_dropout_is_refused_before_training(tmp_path):
    from fastai.learner import Learner
    from fastai.losses import CrossEntropyLossFlat
    from torch import nn
    from fastai_active.data.arrays import ArraySplit
    def plain(dls): return Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), loss_func=CrossEntropyLossFlat())
    split = ArraySplit(np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32), np.arange(40) % 2, vocab=[0, 1])
    al = ActiveLearner(split, plain, sampler=MCDropout(4), show_progress=False)   # no labels yet: checked at the first fit
    split.label(torch.arange(8), (np.arange(8) % 2).tolist(), unrequested=True)
    with pytest.raises(ValueError, match="MC dropout needs dropout layers"): al.fit()
    assert al.learns == []                                                   # refused before any training
    with pytest.raises(ValueError, match="MC dropout needs dropout layers"):  # with labels: refused when built
        ActiveLearner(split, plain, sampler=MCDropout(4), show_progress=False)


def test_a_ledger_opened_on_a_folder_it_was_not_made_for_is_refused_and_left_as_it_was(tmp_path):
    from fastai_active.data.split import ActiveSplit
    from fastai_active.demo import digits_block
    first = Folder(tmp_path/'a', 40)
    folder_al(first, tmp_path/'labels.db', SinglePass())
    other = Folder(tmp_path/'b', 0, seed=1)
    other.next = 1000
    other.add(60)
    for f in first.files()[:5]:  # five files in common
        (tmp_path/'b'/f.parent.name).mkdir(exist_ok=True)
        (tmp_path/'b'/f.parent.name/f.name).hardlink_to(f)
    vocab = [str(i) for i in range(10)]
    with pytest.raises(ValueError, match=r"share only 5 of the ledger's 40 keys and would add 60 new ones"):
        ActiveSplit(digits_block(), tmp_path/'b', path=tmp_path/'labels.db', vocab=vocab)
    assert ActiveSplit(digits_block(), first.root, path=tmp_path/'labels.db', vocab=vocab).ledger.n_items == 40  # unchanged
    grown = ActiveSplit(digits_block(), tmp_path/'b', path=tmp_path/'labels.db', vocab=vocab, accept_new_items=True)
    assert grown.ledger.n_items == 100


# ---------------------------------------------------------------- items decoded once (ItemCache), against no cache
@settings(max_examples=3, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(ops=folder_ops)
def test_the_item_cache_changes_nothing_but_the_time(tmp_path_factory, ops):
    "Cached and uncached learners on the same folder history: the same weights, validation figures, scores and picks"
    from fastai_active.data.item_cache import CachedDL
    tmp = tmp_path_factory.mktemp('cache')
    folder, als = Folder(tmp/'imgs', 50), {}
    for name, cache in (('cached', 2**30), ('plain', None)):
        als[name] = folder_al(folder, tmp/f'{name}.db', SinglePass(), item_cache=cache)
    assert isinstance(als['cached'].dls.train, CachedDL) and not isinstance(als['plain'].dls.train, CachedDL)
    for op, k, how in ops:
        if op == 'add': folder.add(k)
        else: getattr(folder, op)(als['plain'].split, k)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            for name, al in als.items():
                if how == 'refresh': al.split.refresh()
                else: als[name] = folder_al(folder, tmp/f'{name}.db', SinglePass(), fitted=al,
                                            item_cache=2**30 if name == 'cached' else None)
    for al in als.values(): al.fit()
    a, b = als['cached'], als['plain']
    for p, q in zip(a.learn.model.parameters(), b.learn.model.parameters()): torch.testing.assert_close(p, q)
    assert a.validate() == pytest.approx(b.validate())
    for family in ('entropy', 'coreset'): assert_same_picks(picks(a, InMemoryScorer(), family), picks(b, InMemoryScorer(), family), family)
    assert_same_picks(picks(a, ChunkedScorer(chunk_size=7), 'entropy'), picks(b, InMemoryScorer(), 'entropy'), 'chunked, cached')


def test_a_file_changed_in_place_is_read_again_after_refresh(tmp_path):
    from PIL import Image
    folder = Folder(tmp_path/'imgs', 40)
    al = folder_al(folder, tmp_path/'labels.db', SinglePass())
    before = al.score()
    pool = al._pool()
    f = al.split.items_at(pool.ds_idxs[:1])[0]
    Image.fromarray(np.full((8, 8), 255, np.uint8)).save(f)            # a new image under the same path
    assert torch.equal(al.score(), before)                              # still the decoded one: not read again...
    al.split.refresh()                                                  # ...until the folder is read again
    plain = folder_al(folder, tmp_path/'labels.db', SinglePass(), item_cache=None, fitted=al)
    torch.testing.assert_close(al.score(), plain.score())
    assert not torch.allclose(al.score()[0], before[0])


def test_random_item_transforms_are_not_cached(tmp_path):
    from fastai.vision.all import DataBlock, ImageBlock, CategoryBlock, PILImageBW, get_image_files, parent_label, RandomResizedCrop
    from fastai_active.data.item_cache import CachedDL
    from fastai_active.data.split import ActiveSplit
    folder = Folder(tmp_path/'imgs', 30)
    block = DataBlock(blocks=(ImageBlock(cls=PILImageBW), CategoryBlock), get_items=get_image_files, get_y=parent_label,
                      item_tfms=RandomResizedCrop(8, min_scale=0.5))
    split = ActiveSplit(block, folder.root, vocab=[str(i) for i in range(10)])
    split.label_random(10, seed=0)
    assert not isinstance(split.dataloaders(bs=4).train, CachedDL)


def test_diversity_strategies_with_every_labelled_file_gone(tmp_path):
    "TypiClust when no labelled item is in the folder any more: it gets `[0, D]` labelled embeddings, on every scorer"
    folder = Folder(tmp_path/'imgs', 40)
    al = folder_al(folder, tmp_path/'labels.db', SinglePass())
    for key in al.ledger.keys(al.ledger.labelled_idxs()): (folder.root/key).unlink()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        al.split.refresh()
    assert al.labelled_embeddings() is None
    acq = TypiClust(min_cluster_size=1, k_nn=5)
    assert_same_picks(picks(al, ChunkedScorer(chunk_size=7), acq), picks(al, InMemoryScorer(), acq), 'typiclust')
