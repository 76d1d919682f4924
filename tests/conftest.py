"""pytest settings shared by the suite: headless plotting, hypothesis profiles, the `slow` marker, and the repository's
`benchmarks/` importable as the package `benchmarks`."""
import importlib.util, os, sys
from pathlib import Path
os.environ.setdefault('MPLBACKEND', 'Agg')

import pytest
from hypothesis import settings

settings.register_profile('ci', max_examples=60, deadline=None, derandomize=True)
settings.register_profile('dev', max_examples=200, deadline=None)
settings.load_profile('ci' if os.environ.get('CI') else os.environ.get('HYPOTHESIS_PROFILE', 'dev'))


BENCHMARKS = Path(__file__).resolve().parent.parent/'benchmarks'


def import_benchmarks():
    """`benchmarks/` as the package `benchmarks`, so that a test imports `from benchmarks.label_efficiency import ...`.
    Registered by its path, not by putting the repository root on `sys.path`: CI also runs this suite from tests/
    against the installed package, and the root on `sys.path` would let the source tree shadow it."""
    if 'benchmarks' in sys.modules or not (BENCHMARKS/'__init__.py').is_file(): return
    spec = importlib.util.spec_from_file_location('benchmarks', BENCHMARKS/'__init__.py',
                                                  submodule_search_locations=[str(BENCHMARKS)])
    module = importlib.util.module_from_spec(spec)
    sys.modules['benchmarks'] = module
    spec.loader.exec_module(module)

import_benchmarks()


def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: a subprocess, Ray or minute-scale test; `pytest -m "not slow"` leaves them out '
                                       '(make test and CI run everything)')
    # deprecations raised inside torch/fastai/pandas at import time, not by this package
    for msg in ["ignore:`torch.jit.script` is deprecated:FutureWarning",
                "ignore:The 'mode.chained_assignment' option is deprecated"]:
        config.addinivalue_line('filterwarnings', msg)
