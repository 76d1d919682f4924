"""The pool path on a local Ray (2 workers) against the in-memory scorer, on generated histories of an image folder and
a table (as tests/test_pool_path.py does for the chunked scorer): minutes, so here rather than in CI, which runs the
fixed histories of tests/test_distributed.py."""
import tempfile
from pathlib import Path

import numpy as np
import torch

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

ray = pytest.importorskip('ray')

from fastai_active.core import derive_seed
from fastai_active.scale.distributed import RayScorer, local_ray
from fastai_active.loop.scorer import InMemoryScorer, PoolItems
from fastai_active.acquisition.diversity_acquisition import TypiClust
from fastai_active.uncertainty.mc_dropout import MCDropout

from _histories import FAMILIES, FOLDER_OPS, TABLE_OPS, assert_same_picks, folder_history, picks, table_history

SLOW = settings(max_examples=4, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope='module')
def cluster():
    here = str(Path(__file__).parent.parent)
    with local_ray(num_cpus=2, log_to_driver=False, runtime_env={'env_vars': {'PYTHONPATH': here}}) as ray_:
        yield ray_


def ops(kinds, k_max):
    return st.lists(st.tuples(st.sampled_from(kinds), st.integers(1, k_max), st.sampled_from(['refresh', 'session'])),
                    min_size=1, max_size=3)


def check_ray(al):
    for family in FAMILIES:
        got, want = picks(al, RayScorer(num_workers=2, chunk_size=7), family), picks(al, InMemoryScorer(), family)
        if isinstance(family, TypiClust) and got.key.tolist() != want.key.tolist():
            same_numbers_same_picks(al, family)  # k-means: float noise between batchings may move a cluster
        else: assert_same_picks(got, want, str(family))


def same_numbers_same_picks(al, family):
    "The Ray pass's log-probs and embeddings equal the in-memory ones to float noise, and on them TypiClust picks what Ray picked"
    tmp = Path(tempfile.mkdtemp())
    al.acquisition = family
    seed = derive_seed(al.seed, 'acquire', al.round)  # the seed of `acquire`'s picks
    req = al._request(al._pool(), 4, seed=seed)
    lp, emb = InMemoryScorer().sample(req)
    lab = req.labelled_embeddings()
    with req.scoring():
        res = RayScorer(num_workers=2, chunk_size=7).score(req.learns, PoolItems(req.split, req.pool), req.sampler, scores={},
                                                            log_probs=tmp/'lp.npy', embeddings=tmp/'emb.npy', acquisition=family,
                                                            n=4, seed=seed, labelled_embeddings=lab)
    np.testing.assert_allclose(res.log_probs, lp.numpy(), atol=1e-5)
    np.testing.assert_allclose(res.embeddings, emb.numpy(), atol=1e-5)
    again = family(torch.from_numpy(np.array(res.log_probs)), 4, seed=seed, embeddings=torch.from_numpy(np.array(res.embeddings)),
                   labelled_embeddings=lab)
    assert again.idxs.tolist() == res.batch.idxs.tolist()


@SLOW
@given(ops=ops(*FOLDER_OPS))
def test_ray_on_image_folder_histories(cluster, tmp_path_factory, ops):
    check_ray(folder_history(tmp_path_factory.mktemp('folder'), ops, MCDropout(8, seed=0)))


@SLOW
@given(ops=ops(*TABLE_OPS))
@example(ops=[('append', 11, 'refresh'), ('append', 10, 'refresh')])  # TypiClust's k-means moved by float noise here
def test_ray_on_table_histories(cluster, tmp_path_factory, ops):
    check_ray(table_history(tmp_path_factory.mktemp('table'), ops, MCDropout(8, seed=0)))
