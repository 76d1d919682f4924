"""The pool path on a local Ray (2 workers) against the in-memory scorer, on generated histories of an image folder and
a table (as tests/test_pool_path.py does for the chunked scorer): minutes, so here rather than in CI, which runs the
fixed histories of tests/test_distributed.py."""
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

ray = pytest.importorskip('ray')

from fastai_active.distributed import RayScorer, local_ray
from fastai_active.scorer import InMemoryScorer
from fastai_active.uncertainty import MCDropout

from _histories import FAMILIES, Folder, Table, assert_same_picks, folder_al, picks, table_al

SLOW = settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope='module')
def cluster():
    here = str(Path(__file__).parent.parent)
    with local_ray(num_cpus=2, log_to_driver=False, runtime_env={'env_vars': {'PYTHONPATH': here}}) as ray_:
        yield ray_


def _reopen(al, how, again, source=None):
    if how == 'session': return again(al)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        al.split.refresh(**({} if source is None else {'source': source}))
    return al


@SLOW
@given(ops=st.lists(st.tuples(st.sampled_from(['add', 'delete', 'rename']), st.integers(1, 12),
                              st.sampled_from(['refresh', 'session'])), min_size=1, max_size=3))
def test_ray_on_image_folder_histories(cluster, tmp_path_factory, ops):
    tmp = tmp_path_factory.mktemp('folder')
    folder, sampler = Folder(tmp/'imgs', 60), MCDropout(8, seed=0)
    al = folder_al(folder, tmp/'labels.db', sampler)
    for op, k, how in ops:
        if op == 'add': folder.add(k)
        else: getattr(folder, op)(al.split, k)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            al = _reopen(al, how, lambda a: folder_al(folder, tmp/'labels.db', sampler, fitted=a))
    for family in FAMILIES:
        assert_same_picks(picks(al, RayScorer(num_workers=2, chunk_size=7), family), picks(al, InMemoryScorer(), family), str(family))


@SLOW
@given(ops=st.lists(st.tuples(st.sampled_from(['append', 'remove', 'resort']), st.integers(1, 15),
                              st.sampled_from(['refresh', 'session'])), min_size=1, max_size=3))
def test_ray_on_table_histories(cluster, tmp_path_factory, ops):
    tmp = tmp_path_factory.mktemp('table')
    table, sampler = Table(90), MCDropout(8, seed=0)
    al = table_al(table, tmp/'labels.db', sampler)
    for op, k, how in ops:
        getattr(table, op)(*([] if op == 'resort' else [k]))
        al = _reopen(al, how, lambda a: table_al(table, tmp/'labels.db', sampler, fitted=a), source=table.df)
    for family in FAMILIES:
        assert_same_picks(picks(al, RayScorer(num_workers=2, chunk_size=7), family), picks(al, InMemoryScorer(), family), str(family))
