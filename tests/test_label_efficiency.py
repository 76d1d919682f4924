"The label-efficiency benchmark: a minute-scale smoke run of the runner, and its report tables on known curves."
import json, math

import numpy as np
import pandas as pd
import pytest

from benchmarks import label_efficiency as le
from fastai_active.core import derive_seed


def curves(spec):
    "A history DataFrame from {strategy: {seed: [accuracy at 0, 10, 20, ... acquired]}}"
    return pd.DataFrame([dict(dataset='toy', strategy=s, seed=seed, n_acquired=10 * i, accuracy=a)
                         for s, runs in spec.items() for seed, accs in runs.items() for i, a in enumerate(accs)])


def test_labels_to_reach_quartiles_and_runs_that_never_reach():
    df = curves({'random': {0: [.5, .7, .9], 1: [.5, .8, .85], 2: [.6, .9, .95]},
                 'bald': {0: [.5, .95, .96], 1: [.5, .92, .97], 2: [.5, .7, .91]}})
    t = le.labels_to_reach(df, 0.9).set_index('strategy')
    assert t.loc['random', 'reached'] == '2/3' and t.loc['random', 'median'] == 15  # seeds reach at 20 and 10
    assert t.loc['bald', 'reached'] == '3/3' and t.loc['bald', 'median'] == 10
    assert t.loc['bald', 'q75'] == np.percentile([10, 10, 20], 75)
    assert math.isnan(le.labels_to_reach(df, 0.99).set_index('strategy').loc['bald', 'median'])


def test_area_under_curves_is_paired_against_random():
    df = curves({'random': {s: [.5, .6, .7] for s in range(4)}, 'bald': {s: [.5, .7, .8 + .01 * s] for s in range(4)}})
    auc = le.area_under_curves(df).set_index('strategy')
    assert auc.loc['random', 'auc_median'] == pytest.approx(0.6)
    assert auc.loc['bald', 'vs_random_median'] == pytest.approx(np.median([(0.1 + 0.1 + 0.01 * s) / 3 for s in range(4)]))
    assert auc.loc['bald', 'seeds'] == '4' and auc.loc['bald', 'paired_t_p'] < 0.01


def test_area_under_curves_over_the_range_every_run_covers():
    "Runs ended by `--until` are compared over the acquired labels every run reached, not over their own lengths"
    df = curves({'random': {0: [.5, .6, .7, .8], 1: [.5, .6, .7, .8]}, 'bald': {0: [.5, .9], 1: [.5, .7, .95]}})
    assert le.common_range(df) == 10
    auc = le.area_under_curves(df).set_index('strategy')
    assert auc.loc['random', 'auc_median'] == pytest.approx(0.55)
    assert auc.loc['bald', 'auc_median'] == pytest.approx(np.median([0.7, 0.6]))


def test_reached_accuracy_stops_after_the_first_round_at_the_target():
    class Hist:  # what the criterion reads of an ActiveLearner
        def __init__(self, accs): self.history = pd.DataFrame(dict(accuracy=accs))
    crit = le.ReachedAccuracy(0.9)
    assert crit(Hist([])) [1] is False and crit(Hist([.5, .89]))[1] is False
    values, stop = crit(Hist([.5, .91, .88]))
    assert stop and values == dict(best_accuracy=.91)


def test_stopping_table_first_round_a_criterion_fires_and_runs_that_never_fire():
    df = curves({'bald': {0: [.5, .8, .9, .85], 1: [.5, .7, .8, .9], 2: [.5, .6, .7]}})  # seed 2 stopped part-way
    df['would_stop_kappa'] = [False, False, True, True, False, False, False, False, False, True, True]
    t = le.stopping_table(df).set_index('strategy').loc['bald']
    assert t.criterion == 'kappa' and t.budget == 30 and t.fired == '1/2'  # seed 2 (to 20 only) left out
    # seed 0 stops at 20 (accuracy .9, saves 10); seed 1 never fires: at the budget, 30 (accuracy .9, saves 0)
    assert t.stop_at == '25 [22, 28]' and t.labels_saved == '5 [2, 8]'
    assert t.accuracy_at_stop == pytest.approx(0.9) and t.best_accuracy == pytest.approx(0.9)
    assert t.accuracy_given_up == pytest.approx(0.0)
    assert len(le.stopping_table(curves({'bald': {0: [.5, .6]}}))) == 0  # no recorded criterion: no table


def test_restricted_unpickler_refuses_other_globals(tmp_path):
    import gzip, io, os, pickle
    ok = pickle.dumps((np.arange(6, dtype=np.uint8).reshape(2, 3), np.array([1, 2])))
    assert np.array_equal(le._NumpyArraysOnly(io.BytesIO(ok)).load()[1], [1, 2])
    evil = pickle.dumps(os.system)  # not `print`: importing Ray (tests/test_distributed.py) replaces builtins.print
    with pytest.raises(pickle.UnpicklingError, match=f"refusing to load {os.system.__module__}.system"):
        le._NumpyArraysOnly(io.BytesIO(evil)).load()


def test_smoke_run_and_report_on_digits(tmp_path):
    out = tmp_path/'digits'
    le.main(['run', '--dataset', 'digits', '--strategies', 'random', 'entropy', '--sampler', 'single', '--seeds', '0',
             '--initial', '20', '--per-round', '10', '--budget', '10', '--epochs', '2', '--threads', '1', '--out', str(out),
             '--stop', 'uncertainty'])
    le.main(['report', '--out', str(out), '--targets', '0.5'])
    df = pd.read_csv(out/'curves.csv')
    assert sorted(df.strategy.unique()) == ['entropy', 'random']
    assert df.groupby('strategy').n_acquired.max().tolist() == [10, 10]
    assert (out/'learning_curves.png').stat().st_size > 10_000
    assert 'acquired labels to reach' in (out/'report.md').read_text()
    # the criterion is recorded every round, and the runs still went to their budget
    assert df.would_stop_uncertainty.notna().all() and df.stop_uncertainty.between(0, 1).all()
    assert 'would have stopped' in (out/'report.md').read_text()
    # resumable: the same command again acquires nothing more
    le.main(['run', '--dataset', 'digits', '--strategies', 'random', '--sampler', 'single', '--seeds', '0',
             '--initial', '20', '--per-round', '10', '--budget', '10', '--epochs', '2', '--threads', '1', '--out', str(out)])
    assert len(le.read_runs(out).query("strategy == 'random'")) == 2
    # a run of other settings is refused the ledger (its name does not say the epochs), and runs under its own --variant
    three = ['run', '--dataset', 'digits', '--strategies', 'random', '--sampler', 'single', '--seeds', '0', '--initial', '20',
             '--per-round', '10', '--budget', '10', '--epochs', '3', '--threads', '1', '--out', str(out)]
    with pytest.raises(SystemExit, match="epochs: 2 then, 3 now"): le.main(three)
    le.main(three + ['--variant', 'e3'])
    runs = le.read_runs(out)
    assert sorted(runs.strategy.unique()) == ['entropy', 'random', 'random [e3]']
    assert runs.query("strategy == 'random [e3]'").epochs.unique().tolist() == [3]


def test_redundancy_counts_copies_of_labelled_images_and_within_batches(tmp_path):
    from fastai_active.data.ledger import LabelLedger
    runs = tmp_path/'runs'
    runs.mkdir()
    # 30 pool items = 3 copies of 10 images (item i shows image i % 10)
    ledger = LabelLedger(30, path=runs/'rep.db')
    ledger.label([0, 1], ['a', 'b'], source='initial', round=0)
    ledger.label([10, 25, 5], ['a', 'c', 'c'], source='oracle', round=1, unrequested=True)   # 10: copy of labelled 0; 25 and 5: image 5 twice
    ledger.label([21, 7, 17], ['b', 'd', 'd'], source='oracle', round=2, unrequested=True)   # 21: copy of labelled 1; 7 and 17: image 7 twice
    ledger.close()
    (runs/'rep.json').write_text(json.dumps(dict(dataset='repeated_digits', strategy='bald', sampler='mc', seed=0)))
    r = le.redundancy(tmp_path).iloc[0]
    assert (r.acquired, r.copies, r.copies_in_batch) == (6, 4, 2)  # new images only 5 and 7


def test_repeated_digits_are_noisy_copies_in_blocks():
    (X, y), (Xt, yt), size = le.load_dataset('repeated_digits', seed=0)
    (X1, y1), _, _ = le.load_dataset('digits')
    n = len(X1)
    assert len(X) == le.REPEATS * n and size == 8 and len(Xt) == 600
    assert (y[:n] == y1).all() and (y[2 * n:] == y1).all()
    diff = X[:n].astype(int) - X[n:2 * n].astype(int)
    assert 0 < np.abs(diff).mean() < 40  # the same images under independent noise of sigma = 0.1 * 255, clipped


def _tiny_learner():
    "A fastai Learner on 64 two-feature rows (arrays), for the fit recipe's callbacks"
    import torch
    from torch import nn
    from fastai.learner import Learner
    from fastai.losses import CrossEntropyLossFlat
    from fastai_active.data.arrays import TensorDL, TensorDataLoaders
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 2, generator=g)
    y = (x[:, 0] > 0).long()
    dls = TensorDataLoaders(TensorDL((x, y), bs=16, shuffle=True), TensorDL((x, y), bs=16))
    return Learner(dls, nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2)), loss_func=CrossEntropyLossFlat()), (x, y)


def test_early_stopping_stops_after_patience_and_keeps_the_best_epochs_weights():
    "Held-out accuracies 0.5, 0.7, 0.6, 0.7, 0.65 with patience 3: stop after epoch 5, with the weights of epoch 2"
    import copy, torch
    learn, (x, y) = _tiny_learner()
    scripted, states = iter([.5, .7, .6, .7, .65, .9, .9]), []
    class Scripted(le.EarlyStopping):
        def accuracy(self):
            states.append(copy.deepcopy(self.learn.model.state_dict()))
            return next(scripted)
    stop = Scripted(learn.dls.valid, patience=3)
    with learn.no_logging(), learn.no_bar(): learn.fit(10, 1e-2, cbs=stop)
    assert stop.n_epochs == 5 and stop.best == .7
    for k, v in learn.model.state_dict().items(): assert torch.equal(v, states[1][k]), k
    assert not all(torch.equal(v, states[4][k]) for k, v in learn.model.state_dict().items())  # not the last epoch's


def test_early_stopping_accuracy_is_the_held_out_accuracy_with_dropout_off():
    import torch
    learn, (x, y) = _tiny_learner()
    learn.model = torch.nn.Sequential(learn.model, torch.nn.Dropout(0.9))
    learn.model.train()
    stop = le.EarlyStopping(learn.dls.test_dl((x, y), with_labels=True, bs=10), patience=3)
    stop.learn = learn
    with torch.no_grad(): expected = (learn.model.eval()(x).argmax(1) == y).float().mean().item()
    learn.model.train()
    assert stop.accuracy() == pytest.approx(expected)
    assert learn.model.training  # left as it was


def test_held_out_validation_images_leave_the_pool():
    import argparse
    from collections import Counter
    split, size, held = le.make_split('digits', None, None, 0, 20, valid_size=100)
    (X, y), _, _ = le.load_dataset('digits')
    assert len(held[0]) == 100 and len(split.source) == len(X) - 100
    rows = lambda a: [tuple(r) for r in np.asarray(a).reshape(len(a), -1).tolist()]
    once = {r for r, c in Counter(rows(X)).items() if c == 1}  # digits has a few duplicate images: judge by the unique ones
    pool = set(rows(split.source))
    unique_held = [r for r in rows(held[0]) if r in once]
    assert len(unique_held) > 90 and not set(unique_held) & pool
    assert le.make_split('digits', None, None, 0, 20, valid_size=100)[2][1].tolist() == held[1].tolist()  # seeded
    with pytest.raises(SystemExit, match='--early-stop needs --valid-size'):
        le.fit_recipe(argparse.Namespace(early_stop=3, schedule='constant'), None)


def test_a_model_of_another_dataset_is_refused_before_any_ledger(tmp_path):
    "--model paper on digits was ignored (digits has its own CNN): a run that says one model and trains another"
    with pytest.raises(SystemExit, match=r"--model paper is not a model of --dataset digits: expected one of \['default'\]"):
        le.main(['run', '--dataset', 'digits', '--model', 'paper', '--strategies', 'random', '--seeds', '0', '--out', str(tmp_path)])
    assert not (tmp_path/'runs').exists()


def test_cold_start_then_acquisition_then_a_final_semi_supervised_fit(tmp_path):
    "The 40-label recipe's runner: cold-start labels, supervised rounds that choose the rest, the method only in the final fit"
    from fastai_active.acquisition.cold_start import choose_initial
    out = tmp_path/'recipe'
    cmd = ['run', '--dataset', 'digits', '--strategies', 'powerentropy', '--sampler', 'single', '--seeds', '0', '--initial', '10',
           '--per-round', '5', '--budget', '10', '--epochs', '2', '--threads', '1', '--cold', 'kmeans', '--semi', 'fixmatch',
           '--semi-mu', '2', '--semi-final', '--out', str(out)]
    le.main(cmd)
    name = 'digits-powerentropy-single-coldkmeans-pca-fixmatch0.95-final-seed0'
    runs = le.read_runs(out)
    assert runs.n_labelled.tolist() == [10, 15, 20]
    # only the final fit trained with the method: its row has the confident pool items, the choosing rounds none
    assert runs.n_confident.iloc[:2].isna().all() and runs.n_confident.iloc[-1] >= 0
    assert json.loads((out/'runs'/f'{name}.json').read_text())['semi_final'] is True
    assert json.loads((out/'runs'/f'{name}.cold').read_text())['cold_s'] > 0
    # the initial labels are k-means' picks on the PCA features, computed here independently of the runner
    (X, _), _, _ = le.load_dataset('digits', seed=0)
    want = choose_initial(le.pool_features('pca', X, 0), 10, 'kmeans', n_classes=10, seed=derive_seed(0, 'initial'))
    split, _, _ = le.make_split('digits', out/'runs', name, 0, 10)
    assert split.ledger.labelled_idxs(sources=['initial']).sort().values.tolist() == sorted(want.tolist())
    assert runs.strategy.tolist() == ['kmeans cold start, powerentropy'] * 2 + ['kmeans cold start, powerentropy + fixmatch final fit']
    # the final labels' supervised fit is kept beside the method's: it is the last round of the same run without --semi
    sup = tmp_path/'supervised'
    le.main(cmd[:cmd.index('--semi')] + ['--out', str(sup)])
    plain = le.read_runs(sup)
    assert plain.n_labelled.tolist() == [10, 15, 20] and plain.accuracy.iloc[:2].tolist() == runs.accuracy.iloc[:2].tolist()
    assert runs.supervised_accuracy.iloc[-1] == plain.accuracy.iloc[-1]
    # resumed: the same command trains nothing more, and --semi-final without --semi is refused
    le.main(cmd)
    assert le.read_runs(out).n_confident.iloc[-1] == runs.n_confident.iloc[-1]
    with pytest.raises(SystemExit, match="--semi-final needs --semi"):
        le.main([c for c in cmd if c not in ('--semi', 'fixmatch')])
