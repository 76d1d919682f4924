"""The pool path on a local Ray (2 workers) against the in-memory scorer, on generated histories of an image folder and
a table (as tests/test_pool_path.py does for the chunked scorer): minutes, so here rather than in CI, which runs the
fixed histories of tests/test_distributed.py."""
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

ray = pytest.importorskip('ray')

from fastai_active.distributed import RayScorer, local_ray
from fastai_active.scorer import InMemoryScorer
from fastai_active.uncertainty import MCDropout

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
        assert_same_picks(picks(al, RayScorer(num_workers=2, chunk_size=7), family), picks(al, InMemoryScorer(), family), str(family))


@SLOW
@given(ops=ops(*FOLDER_OPS))
def test_ray_on_image_folder_histories(cluster, tmp_path_factory, ops):
    check_ray(folder_history(tmp_path_factory.mktemp('folder'), ops, MCDropout(8, seed=0)))


@SLOW
@given(ops=ops(*TABLE_OPS))
def test_ray_on_table_histories(cluster, tmp_path_factory, ops):
    check_ray(table_history(tmp_path_factory.mktemp('table'), ops, MCDropout(8, seed=0)))
