"Chunked pool scoring on one machine: the same picks as in memory through ActiveLearner, unreadable files, memory."
import gc, sys, warnings

import numpy as np
import pytest
import torch

from fastai_active.scale.chunked import ChunkedScorer, score_pool
from fastai_active.acquisition.joint import BatchBALDAcquisition
from fastai_active.acquisition.scores import bald
from fastai_active.acquisition.strategies import as_acquisition
from fastai_active.uncertainty.mc_dropout import MCDropout

from _pools import PeakMemory, digits_al, tensor_learner, wide_pool


@pytest.fixture(scope='module')
def al(tmp_path_factory):
    return digits_al(tmp_path_factory.mktemp('chunked'), sampler=MCDropout(8))  # unseeded masks, as a user may leave them


@pytest.mark.parametrize('acquisition', ['powerbald', 'margin', BatchBALDAcquisition(num_samples=1000)])  # softrank: in 14b
def test_active_learner_with_a_scorer_picks_what_it_picks_in_memory(al, acquisition):
    "The only change is `scorer=`: the same masks (drawn from the same seeded RNG), scores and picks"
    al.acquisition, al.scorer = as_acquisition(acquisition), None  # None: the in-memory scorer
    want = al.acquire(6)
    al.ledger.cancel_requests()
    al.scorer = ChunkedScorer(chunk_size=64, candidates=300)  # candidates >= pool: BatchBALD on all of it
    got = al.acquire(6)
    al.ledger.cancel_requests()
    al.scorer = None
    assert got.ds_idx.tolist() == want.ds_idx.tolist()
    np.testing.assert_allclose(got.score, want.score, rtol=1e-5, atol=1e-7)
    assert al.log_probs is None and al.failed == {}


def test_unreadable_files_are_reported_and_the_rest_scored(al, tmp_path):
    items = list(al.split.items)
    pool = al._pool()
    (tmp_path/'noise.png').write_bytes(b'\x89PNG but not really')
    (tmp_path/'empty.png').write_bytes(b'')
    bad_rows = {3: tmp_path/'noise.png', 10: tmp_path/'gone.png', 200: tmp_path/'empty.png'}
    for pos, f in bad_rows.items(): items[int(pool.ds_idxs[pos])] = f
    sampler = MCDropout(4, seed=0)
    res = ChunkedScorer(chunk_size=50).score(al.learn, items, sampler, rows=pool.ds_idxs, scores={'bald': bald},
                                             acquisition=al.acquisition, n=5, seed=0)
    assert sorted(res.failed) == sorted(bad_rows)
    assert 'gone.png' in res.failed[10] and 'UnidentifiedImageError' in res.failed[3]
    good = np.array([i for i in range(len(pool)) if i not in bad_rows])
    ref = bald(sampler(al.learns, al.split.pool_dl(al.dls, pool).new(shuffle=False)))  # the real files at those rows
    np.testing.assert_allclose(res.scores['bald'][good], ref.numpy()[good], rtol=1e-6)
    assert np.isnan(res.scores['bald'][list(bad_rows)]).all()
    assert not set(res.batch.idxs.tolist()) & set(bad_rows)


def test_active_learner_warns_about_unreadable_files(al):
    ds = int(al._pool().ds_idxs[7])
    real = al.split.items[ds]
    al.split.items[ds] = real.with_name('missing.png')
    al.scorer = ChunkedScorer(chunk_size=100)
    try:
        with pytest.warns(UserWarning, match=r"1 pool items could not be loaded.*missing.png"): picked = al.acquire(4)
        assert list(al.failed) == [ds] and ds not in picked.ds_idx.tolist()
    finally:
        al.split.items[ds], al.scorer = real, None
        al.ledger.cancel_requests()


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason="reads /proc/self/status")
def test_memory_is_bounded_by_the_chunk_not_the_pool(tmp_path):
    "6,000 items x K=8 x C=250: 46 MiB of log-probs, written to disk in chunks of 1.5 MiB; the process grows by far less"
    N, K, C, chunk = 6000, 8, 250, 200
    rows, learn = wide_pool(tmp_path/'rows.npy', N, C)
    scorer, sampler = ChunkedScorer(chunk_size=chunk), MCDropout(K, seed=0)
    scorer.score(learn, rows[:2 * chunk], sampler)  # warm-up: allocator pools, lazy imports
    gc.collect()
    with PeakMemory() as mem:
        res = scorer.score(learn, rows, sampler, scores={'bald': bald}, log_probs=tmp_path/'lp.npy',
                           acquisition=as_acquisition('powerbald'), n=10, seed=0)
    full = N * K * C * 4
    assert res.log_probs.shape == (N, K, C) and np.isfinite(res.scores['bald']).all()
    # measured: about 7 MiB (the chunk's log-probs, the sampler's copies of them, the scores' temporaries)
    assert mem.growth < full / 3, f"grew by {mem.growth / 2**20:.1f} MiB for {full / 2**20:.0f} MiB of log-probs"
    # what was written is what the sampler gives for those rows
    i = np.array([0, 777, N - 1])
    np.testing.assert_allclose(res.log_probs[i], sampler([learn], learn.dls.test_dl(rows[i])).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason="reads /proc/self/status")
def test_memory_mapped_rows_gathered_a_batch_at_a_time_give_the_per_item_scores(tmp_path):
    """The same model on `TensorDataLoaders` (one indexing a batch) scores a `np.memmap` chunk by chunk: the scores and
    picks of the per-item `DataBlock` in memory, the process growing by a small part of the log-probs"""
    N, K, C, chunk = 4000, 8, 250, 250
    rows, learn = wide_pool(tmp_path/'rows.npy', N, C)
    tlearn, sampler, acq = tensor_learner(learn, rows), MCDropout(K, seed=0), as_acquisition('powerbald')
    scorer = ChunkedScorer(chunk_size=chunk)
    scorer.score(tlearn, rows[:2 * chunk], sampler)  # warm-up
    gc.collect()
    with PeakMemory() as mem:
        res = scorer.score(tlearn, rows, sampler, scores={'bald': bald}, acquisition=acq, n=10, seed=0)
    full = N * K * C * 4
    assert mem.growth < full / 3, f"grew by {mem.growth / 2**20:.1f} MiB for {full / 2**20:.0f} MiB of log-probs"
    lp = sampler([learn], learn.dls.test_dl(rows))  # per row through the DataBlock, all in memory
    np.testing.assert_allclose(res.scores['bald'], bald(lp).numpy(), rtol=1e-5, atol=1e-7)
    assert res.batch.idxs.tolist() == acq(lp, 10, seed=0).idxs.tolist()
