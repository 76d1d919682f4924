"The benchmarks as the tests import them: the checkout's `benchmarks/`, beside whichever `fastai_active` is under test."
import os, sys
from pathlib import Path

import pytest

import fastai_active
import benchmarks
from benchmarks import label_efficiency

ROOT = Path(__file__).resolve().parent.parent


def test_benchmarks_come_from_the_checkout():
    assert Path(benchmarks.__file__).resolve() == ROOT/'benchmarks'/'__init__.py'
    assert Path(label_efficiency.__file__).resolve() == ROOT/'benchmarks'/'label_efficiency.py'


def test_the_installed_package_is_not_shadowed_by_the_checkout():
    "`.ci/run` tests a `pip install .` from tests/ (FASTAI_ACTIVE_INSTALLED=1): the benchmarks must not bring in the source tree"
    if not os.environ.get('FASTAI_ACTIVE_INSTALLED'): pytest.skip("the package under test is the checkout's")
    assert Path(fastai_active.__file__).resolve().parent != ROOT/'fastai_active', fastai_active.__file__
    assert all(Path(p or '.').resolve() != ROOT for p in sys.path), sys.path
    assert sys.modules[label_efficiency.ActiveSplit.__module__].__file__.startswith(str(Path(fastai_active.__file__).parent))
