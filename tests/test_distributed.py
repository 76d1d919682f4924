"""Scoring on Ray (local, 2 CPUs, loopback only): the single-process results (an ensemble; MC dropout below), the
ActiveLearner's path with unreadable files, memory-mapped rows gathered a batch at a time, a killed worker,
the driver's memory. Four Ray runs, each starting two workers. Skipped where Ray is not installed
(`pip install fastai_active[ray]`)."""
import gc, ipaddress, os, sys
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip('ray')
pytestmark = [pytest.mark.slow,  # a local Ray cluster
              pytest.mark.filterwarnings('ignore::DeprecationWarning:ray.data.context')]  # Ray's own settings

from fastai.callback.progress import ProgressCallback
from fastai_active.scale.chunked import ChunkedScorer
from fastai_active.core import seeded
from fastai_active.demo import digits_learner
from fastai_active.scale.distributed import RayScorer, local_ray
from fastai_active.acquisition.scores import bald, entropy
from fastai_active.acquisition.strategies import as_acquisition
from fastai_active.uncertainty.core import DeepEnsemble
from fastai_active.uncertainty.mc_dropout import MCDropout

from _pools import PeakMemory, digits_al, tensor_learner, wide_pool


@pytest.fixture(scope='module')
def cluster():
    "Ray on 127.0.0.1 with 2 CPUs; its workers import this folder's helpers (as a cluster's runtime_env would ship code)"
    here = str(Path(__file__).parent)
    with local_ray(num_cpus=2, log_to_driver=False, runtime_env={'env_vars': {'PYTHONPATH': here}}) as ray_:
        yield ray_


@pytest.fixture(scope='module')
def al(tmp_path_factory):
    return digits_al(tmp_path_factory.mktemp('ray'), sampler=MCDropout(8, seed=3), pool_max_items=240)


def _loopback(ip:str)->bool:
    a = ipaddress.ip_address(ip)
    return a.is_loopback or (a.version == 6 and a.ipv4_mapped is not None and a.ipv4_mapped.is_loopback)


def test_ray_listens_on_loopback_only(cluster):
    psutil = pytest.importorskip('psutil')
    assert ray.util.get_node_ip_address() == '127.0.0.1'
    ours = {p.pid for p in psutil.Process().children(recursive=True)} | {os.getpid()}
    try: conns = psutil.net_connections('inet')
    except psutil.AccessDenied: pytest.skip("listing sockets needs more rights here")
    listening = [c.laddr for c in conns if c.status == psutil.CONN_LISTEN and c.pid in ours]
    assert listening and all(_loopback(a.ip) for a in listening), listening


def test_ray_gives_the_single_process_scores_and_picks_for_an_ensemble(cluster, al, tmp_path):
    "Two members, each exported and loaded once per actor: the in-memory log-probs, scores and PowerBALD picks"
    with seeded(1):
        other = digits_learner(al.dls)
        other.remove_cb(ProgressCallback)
    learns, sampler, pool, acq = [al.learn, other], DeepEnsemble(2), al._pool(), as_acquisition('powerbald')
    kwargs = dict(rows=pool.ds_idxs, scores={'bald': bald, 'entropy': entropy}, acquisition=acq, n=8, seed=5)
    there = RayScorer(num_workers=2, chunk_size=40).score(learns, al.split.items, sampler, log_probs=tmp_path/'lp.npy', **kwargs)
    here = ChunkedScorer(chunk_size=40).score(learns, al.split.items, sampler, **kwargs)
    lp = sampler(learns, al.split.pool_dl(al.dls, pool))  # the in-memory path
    np.testing.assert_allclose(there.log_probs, lp.numpy(), rtol=1e-5, atol=1e-6)
    for k in ('bald', 'entropy'): np.testing.assert_array_equal(there.scores[k], here.scores[k])
    assert there.batch.idxs.tolist() == here.batch.idxs.tolist() == acq(lp, 8, seed=5).idxs.tolist()
    assert there.failed == {}


def test_active_learner_on_ray_reports_unreadable_files_and_picks_as_in_one_process(cluster, al, tmp_path):
    "`ActiveLearner(scorer=RayScorer(...))`: BatchBALD on the whole pool, two files broken; the same as `ChunkedScorer`"
    pool = al._pool()
    (tmp_path/'noise.png').write_bytes(b'not an image')
    bad = {int(pool.ds_idxs[5]): tmp_path/'noise.png', int(pool.ds_idxs[100]): tmp_path/'gone.png'}
    real = {d: al.split.items[d] for d in bad}
    al.acquisition = as_acquisition('batchbald')
    picks = {}
    try:
        for d, f in bad.items(): al.split.items[d] = f
        for name, scorer in [('ray', RayScorer(num_workers=2, chunk_size=60, candidates=240)),
                             ('here', ChunkedScorer(chunk_size=60, candidates=240))]:
            al.scorer = scorer
            with pytest.warns(UserWarning, match="2 pool items could not be loaded"): picks[name] = al.acquire(4)
            assert sorted(al.failed) == sorted(bad) and 'gone.png' in al.failed[int(pool.ds_idxs[100])]
            al.ledger.cancel_requests()
    finally:
        for d, f in real.items(): al.split.items[d] = f
        al.scorer = None
    assert picks['ray'].ds_idx.tolist() == picks['here'].ds_idx.tolist()
    assert not set(picks['ray'].ds_idx) & set(bad)
    np.testing.assert_allclose(picks['ray'].score, picks['here'].score, rtol=1e-6)
    # with every file readable, the in-memory path picks what the scorer picks
    al.scorer = ChunkedScorer(chunk_size=60, candidates=240)
    try: got = al.acquire(4)
    finally: al.scorer = None; al.ledger.cancel_requests()
    want = al.acquire(4)
    al.ledger.cancel_requests()
    assert got.ds_idx.tolist() == want.ds_idx.tolist()



def test_ray_reads_memory_mapped_rows_a_batch_at_a_time(cluster, tmp_path):
    """A learner on `TensorDataLoaders` exported to the actors, which read their chunks of the file and gather each
    batch with one indexing: the scores and picks of the per-item `DataBlock` in memory, with the same model"""
    rows, learn = wide_pool(tmp_path/'rows.npy', 1000, 10)
    tlearn, sampler, acq = tensor_learner(learn, rows), MCDropout(8, seed=0), as_acquisition('powerbald')
    res = RayScorer(num_workers=2, chunk_size=250).score(tlearn, rows, sampler, scores={'bald': bald},
                                                         acquisition=acq, n=10, seed=0)
    lp = sampler([learn], learn.dls.test_dl(rows))
    np.testing.assert_allclose(res.scores['bald'], bald(lp).numpy(), rtol=1e-5, atol=1e-7)
    assert res.batch.idxs.tolist() == acq(lp, 10, seed=0).idxs.tolist() and res.failed == {}

@pytest.mark.skipif(not sys.platform.startswith('linux'), reason="reads /proc/self/status")
def test_a_killed_worker_still_gives_every_item_once_and_the_driver_stays_small(cluster, tmp_path):
    """6,000 items x K=8 x C=250 (46 MiB of log-probs) in chunks of 200. The first worker to reach its second chunk
    dies (os._exit); Ray restarts it and retries the chunk. The driver refuses an item that comes back twice or never,
    writes the log-probs to disk and keeps only scores: its private memory grows by a small part of the log-probs."""
    N, K, C, chunk = 6000, 8, 250, 200
    rows, learn = wide_pool(tmp_path/'rows.npy', N, C)
    marker = str(tmp_path/'killed')
    def bald_or_die(lp, calls=[0]):
        calls[0] += 1
        if calls[0] == 2 and not os.path.exists(marker):
            open(marker, 'w').close()
            os._exit(1)
        return bald(lp)
    sampler = MCDropout(K, seed=0)
    gc.collect()
    with PeakMemory() as mem:
        res = RayScorer(num_workers=2, chunk_size=chunk).score(
            learn, rows, sampler, scores={'bald': bald_or_die}, log_probs=tmp_path/'lp.npy',
            acquisition=as_acquisition('powerbald'), n=10, seed=0)
    assert os.path.exists(marker), "no worker was killed"
    full = N * K * C * 4
    assert mem.growth < full / 3, f"the driver grew by {mem.growth / 2**20:.1f} MiB for {full / 2**20:.0f} MiB of log-probs"
    assert res.n_items == N and res.failed == {} and np.isfinite(res.scores['bald']).all()
    # a few rows against the sampler itself, in this process; the scores against the file
    i = np.array([0, 199, 200, 3333, N - 1])
    lp = sampler([learn], learn.dls.test_dl(rows[i]))
    np.testing.assert_allclose(res.log_probs[i], lp.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(res.scores['bald'][i], bald(lp).numpy(), rtol=1e-5, atol=1e-7)


def test_ray_gives_the_in_memory_picks_on_a_folder_and_a_table_that_changed(cluster, tmp_path):
    """The pool path on Ray, item by item against the in-memory scorer, on the histories of the issue's table: a folder
    that grew and lost files, read in a new session; a table with rows appended and re-sorted, without targets for
    the pool. Generated histories on Ray: tests/integration/test_ray_histories.py (`make integration`)."""
    from _histories import FAMILIES, Folder, Table, assert_same_picks, folder_al, picks, table_al
    from fastai_active.loop.scorer import InMemoryScorer
    folder, sampler = Folder(tmp_path/'imgs', 50), MCDropout(8, seed=0)
    al = folder_al(folder, tmp_path/'images.db', sampler)
    folder.delete(al.split, 6)
    folder.add(12)
    with pytest.warns(UserWarning, match="6 items of the ledger are not among the items given"):
        al = folder_al(folder, tmp_path/'images.db', sampler, fitted=al)
    table = Table(80)
    tal = table_al(table, tmp_path/'table.db', sampler)
    table.append(10)
    table.resort()
    tal = table_al(table, tmp_path/'table.db', sampler, fitted=tal)
    ray_scorer = RayScorer(num_workers=2, chunk_size=7)
    for a, families in ((al, FAMILIES), (tal, ['entropy', 'batchbald', 'badge'])):
        for family in families:
            assert_same_picks(picks(a, ray_scorer, family), picks(a, InMemoryScorer(), family), f"Ray, {family}")
