"The semi-supervised benchmarks: paired tables on known curves, and a seconds-long run of the FixMatch ablation."
import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from benchmarks import semi_ablation as ab, semi_supervised as ss


def frame(spec):
    "{strategy: {seed: [accuracy at 20, 30 labels]}} as the rows `read_runs` gives"
    return pd.DataFrame([dict(dataset='toy', strategy=s, seed=seed, n_labelled=20 + 10 * i, accuracy=a)
                         for s, runs in spec.items() for seed, accs in runs.items() for i, a in enumerate(accs)])


def test_base_strategy_splits_the_method_and_keeps_variants():
    assert ss.base_strategy('random + fixmatch') == ('random', 'fixmatch')
    assert ss.base_strategy('powerentropy + fixmatch-align [mu7]') == ('powerentropy', 'fixmatch-align [mu7]')
    assert ss.base_strategy('random [steps1000]') == ('random [steps1000]', 'supervised')
    assert ss.base_strategy('entropy + pseudo-labels') == ('entropy + pseudo-labels', 'supervised')


def test_paired_table_pairs_by_strategy_seed_and_labels():
    df = frame({'random': {0: [0.70, 0.80], 1: [0.74, 0.78], 2: [0.72, 0.82]},
                'random + fixmatch': {0: [0.90, 0.95], 1: [0.86, 0.93], 2: [0.70, 0.96]},
                'entropy + fixmatch': {0: [0.5, 0.5]}})   # no supervised entropy run: not paired, left out
    t = ss.paired_table(df).set_index('n_labelled')
    assert list(t.strategy) == ['random', 'random'] and list(t.method) == ['fixmatch', 'fixmatch']
    d20 = np.array([0.20, 0.12, -0.02])
    assert t.loc[20, 'gain_median'] == pytest.approx(np.median(d20))
    assert t.loc[20, 'paired_t_p'] == pytest.approx(stats.ttest_rel([0.90, 0.86, 0.70], [0.70, 0.74, 0.72]).pvalue)
    assert t.loc[20, 'better'] == '2/3' and t.loc[30, 'better'] == '3/3'
    assert t.loc[30, 'supervised'] == pytest.approx(0.80) and t.loc[30, 'semi'] == pytest.approx(0.95)


def test_targets_table_counts_seeds_at_or_above_each_target():
    df = frame({'random + fixmatch': {0: [0.90, 0.95], 1: [0.899, 0.96], 2: [0.93, 0.949]}})
    t = ss.targets_table(df, [0.9, 0.95]).set_index('n_labelled')
    assert t.loc[20, '>= 90%'] == '2/3' and t.loc[20, '>= 95%'] == '0/3'
    assert t.loc[30, '>= 90%'] == '3/3' and t.loc[30, '>= 95%'] == '2/3'


def test_ablation_fit_and_report(tmp_path):
    ab.main(['--seeds', '0', '--items', '128', '--epochs', '1', '--mu', '1', '--tag', 'tiny', '--out', str(tmp_path)])
    ab.main(['--seeds', '0', '--items', '128', '--epochs', '1', '--mu', '1', '--ema', '0.9', '--tag', 'tiny_ema', '--out', str(tmp_path)])
    rows = [json.loads(l) for l in (tmp_path/'ablation.jsonl').read_text().splitlines()]
    assert [r['tag'] for r in rows] == ['tiny', 'tiny_ema'] and all(0 <= r['acc'] <= 1 for r in rows)
    assert rows[1]['ema'] == 0.9 and rows[0]['mu'] == 1
    t = ab.report(tmp_path)
    assert list(t.index) == ['tiny', 'tiny_ema'] and t.loc['tiny', 0] == rows[0]['acc']
