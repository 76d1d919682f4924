"""The label-efficiency runner reproduces the committed digits curves exactly, for the same seeds.

The committed `benchmarks/results/digits/curves.csv` was run one thread per run (`--threads 1`): with two threads a sum
inside training comes out in another float order, and from round 1 on the picks differ. The layers of the package
(and every later change) must not move a figure of these runs.
"""
import json, sqlite3

import pandas as pd
import pytest

from benchmarks import label_efficiency as le
from pathlib import Path

COMMITTED = Path(__file__).parent.parent/'benchmarks'/'results'/'digits'/'curves.csv'
FIGURES = ['n_labelled', 'n_train', 'n_valid', 'n_acquired', 'valid_loss', 'accuracy']


@pytest.mark.slow
@pytest.mark.parametrize('strategy,sampler,seed', [('bald', 'mc', 0), ('powerentropy', 'single', 1)])
def test_runner_reproduces_the_committed_digits_curves(tmp_path, strategy, sampler, seed):
    budget = 30
    le.main(['run', '--dataset', 'digits', '--strategies', strategy, '--sampler', sampler, '--seeds', str(seed),
             '--budget', str(budget), '--threads', '1', '--out', str(tmp_path/'digits')])
    db, = (tmp_path/'digits'/'runs').glob('*.db')
    con = sqlite3.connect(db)
    new = pd.DataFrame([json.loads(r[0]) for r in con.execute('SELECT record FROM history ORDER BY round')])
    con.close()
    old = pd.read_csv(COMMITTED)
    old = old[(old.strategy == f'{strategy} ({sampler})') & (old.seed == seed) & (old.n_acquired <= budget)]
    assert len(old) == len(new) == budget // 10 + 1
    for col in FIGURES:  # float32 figures written as text: equal to the last digit printed
        assert new[col].tolist() == pytest.approx(old[col].tolist(), rel=1e-12, abs=0), col
