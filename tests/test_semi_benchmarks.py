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


def test_final_fits_sum_every_rounds_seconds_and_skip_runs_without_a_finished_final_fit(tmp_path):
    nan = float('nan')
    def row(run, strategy, seed, rnd, n, acc, fit, conf=nan, sup=nan):
        return dict(run=run, strategy=strategy, seed=seed, round=rnd, n_labelled=n, accuracy=acc, fit_s=fit, score_s=2., acquire_s=nan,
                    valid_s=1., n_confident=conf, confident_accuracy=nan if conf != conf else 0.97, supervised_accuracy=sup)
    rec = 'kmeans cold start, powerentropy + fixmatch final fit'
    df = pd.DataFrame([row('a', 'kmeans cold start, powerentropy', 0, 0, 20, .6, 10.), row('a', rec, 0, 1, 30, .96, 100., 50, .8),
                       row('b', 'kmeans cold start, powerentropy', 1, 0, 20, .6, 10.), row('b', rec, 1, 1, 30, .94, 120., 40, .7),
                       row('c', 'kmeans cold start, powerentropy', 2, 0, 20, .6, 10.),     # its final fit not done yet
                       row('d', 'random', 0, 0, 20, .5, 5.)])                              # supervised: no final fit
    (tmp_path/'a.cold').write_text(json.dumps(dict(cold_s=7.)))
    fits = ss.final_fits(df, tmp_path)
    assert fits.seed.tolist() == [0, 1] and fits.strategy.unique().tolist() == [rec]
    assert fits.total_s.tolist() == [10 + 3 + 100 + 3 + 7., 10 + 3 + 120 + 3]   # fit + score + valid (NaN counts 0) + cold start
    t = ss.recipes_table(fits, 0.95).iloc[0]
    assert t.seeds == 2 and t.by_seed == '0.960 0.940' and t['seeds_at_0.95'] == '1/2' and t.labels == '30'
    assert t.accuracy_median == pytest.approx(.95) and t.supervised_median == pytest.approx(.75)
    assert t.gain_median == pytest.approx(np.median([.16, .24])) and t.total_s_max == 136.


def test_ablation_fit_and_report(tmp_path):
    ab.main(['--seeds', '0', '--items', '128', '--epochs', '1', '--mu', '1', '--tag', 'tiny', '--out', str(tmp_path)])
    ab.main(['--seeds', '0', '--items', '128', '--epochs', '1', '--mu', '1', '--ema', '0.9', '--tag', 'tiny_ema', '--out', str(tmp_path)])
    rows = [json.loads(l) for l in (tmp_path/'ablation.jsonl').read_text().splitlines()]
    assert [r['tag'] for r in rows] == ['tiny', 'tiny_ema'] and all(0 <= r['acc'] <= 1 for r in rows)
    assert rows[1]['ema'] == 0.9 and rows[0]['mu'] == 1
    t = ab.report(tmp_path)
    assert list(t.index) == ['tiny', 'tiny_ema'] and t.loc['tiny', 0] == rows[0]['acc']
