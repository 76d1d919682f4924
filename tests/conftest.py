"pytest settings shared by the suite: headless plotting and silent fastai progress bars."
import os
os.environ.setdefault('MPLBACKEND', 'Agg')

import pytest
from hypothesis import settings

settings.register_profile('ci', max_examples=60, deadline=None, derandomize=True)
settings.register_profile('dev', max_examples=200, deadline=None)
settings.load_profile('ci' if os.environ.get('CI') else os.environ.get('HYPOTHESIS_PROFILE', 'dev'))


def pytest_configure(config):
    # deprecations raised inside torch/fastai/pandas at import time, not by this package
    for msg in ["ignore:`torch.jit.script` is deprecated:FutureWarning",
                "ignore:The 'mode.chained_assignment' option is deprecated"]:
        config.addinivalue_line('filterwarnings', msg)
