"Integration tests start servers and browsers (Label Studio, Voila + headless Chromium): `make integration` runs them."
import os

import pytest


def pytest_collection_modifyitems(config, items):
    if os.environ.get('FASTAI_ACTIVE_INTEGRATION') == '1': return
    skip = pytest.mark.skip(reason="integration test: run `make integration` (sets FASTAI_ACTIVE_INTEGRATION=1)")
    for item in items:
        if 'integration' in str(item.fspath): item.add_marker(skip)
