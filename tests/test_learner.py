"ActiveLearner: index spaces end to end, loop targets, warm start, ensembles of members, history and errors."
import math

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from fastai.data.block import DataBlock, TransformBlock, CategoryBlock
from fastai.data.transforms import ColReader

from fastai_active.acquisition.scores import entropy
from fastai_active.data.split import ActiveSplit
from fastai_active.loop.learner import ActiveLearner, SimulatedOracle
from fastai_active.uncertainty.core import PosteriorSampler, SinglePass

from _learners import ignore_id_learner, two_features_and_id as features


def frame(n=120, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({'x0': rng.normal(size=n), 'x1': rng.normal(size=n), 'id': np.arange(n)})
    df['y'] = np.where(df.x0 - df.x1 > 0, 'a', 'b')
    return df


make_learner = ignore_id_learner


def make_dropout_learner(dls):
    "The same MLP with dropout in its head, for MC dropout (refused on a model without dropout when the learner is built)"
    return ignore_id_learner(dls, p=0.2)


def make_al(n=120, path=None, **kwargs):
    df = frame(n)
    dblock = DataBlock(blocks=(TransformBlock, CategoryBlock), get_x=features, get_y=ColReader('y'))
    split = ActiveSplit(dblock, df, path=path, vocab=['a', 'b'], valid_items=frame(40, seed=1), min_epoch_items=32)
    split.label_random(6, balanced=True, seed=0)
    kw = dict(oracle=SimulatedOracle.from_split(split), epochs=1, lr=1e-2, dl_kwargs=dict(num_workers=0),
              show_progress=False)
    from fastai_active.uncertainty.mc_dropout import MCDropout
    learner = make_dropout_learner if isinstance(kwargs.get('sampler'), MCDropout) else make_learner
    return ActiveLearner(split, learner, **{**kw, **kwargs})


class IdSampler(PosteriorSampler):
    "Log-probs read off the items' ids: items whose id is in `uncertain` are 50/50, all others certain"
    def __init__(self, uncertain): self.uncertain = set(uncertain)
    def __call__(self, learns, dl):
        ids = torch.cat([xb[:, 2] for xb, in dl]).long().tolist()
        probs = torch.tensor([[0.5, 0.5] if i in self.uncertain else [0.99, 0.01] for i in ids])
        return probs.log()[:, None]


def test_acquire_returns_the_items_the_scores_point_at():
    "Pool rows and dataset indices must not be mixed up between scoring, selection and the ledger"
    al = make_al(sampler=IdSampler({17, 42, 99}), acquisition=entropy)
    al.fit()
    picked = al.acquire(3)
    assert sorted(picked.ds_idx) == [17, 42, 99]
    assert all(al.pool.to_ds([p])[0].item() == d for p, d in zip(picked.pool_idx, picked.ds_idx))
    assert sorted(al.ledger.pending().ds_idx) == [17, 42, 99]
    assert (picked['round'] == 1).all()
    np.testing.assert_allclose(picked.score, math.log(2), rtol=1e-5)


def test_loop_targets_are_totals_and_budget_is_exact():
    al = make_al()
    h = al.loop(budget=25, n_per_round=10)
    assert h.n_acquired.tolist() == [0, 10, 20, 25]
    assert h.n_labelled.tolist() == [6, 16, 26, 31]
    assert al.loop(budget=25, n_per_round=10).equals(h)  # already there: nothing more is acquired
    again = ActiveLearner(al.split, make_learner, oracle=al.oracle, show_progress=False)  # e.g. after a restart
    assert again.loop(budget=25, n_per_round=10).equals(h) and again.learns == []  # and nothing is retrained
    assert al.ledger.n_labelled == 31
    cols = {'round', 'n_labelled', 'n_train', 'n_valid', 'valid_loss', 'accuracy', 'fit_s', 'score_s', 'acquire_s'}
    assert cols <= set(h.columns)
    assert h.score_s.iloc[:-1].notna().all() and (h.fit_s > 0).all() and (h.valid_s > 0).all()


def test_loop_stops_when_the_pool_is_empty():
    al = make_al(n=20)
    h = al.loop(rounds=10, n_per_round=4)
    assert al.ledger.n_labelled == 20 and len(al.split.pool()) == 0
    assert h.n_labelled.iloc[-1] == 20
    with pytest.raises(ValueError, match="pool is empty"): al.acquire(1)


@pytest.mark.parametrize('acquisition', ['random', 'powerentropy'])
def test_same_seed_same_picks_other_seed_other_picks(acquisition):
    runs = []
    for s in (0, 0, 1):
        al = make_al(seed=s, acquisition=acquisition)
        al.loop(rounds=2, n_per_round=5)
        runs.append(al.ledger.to_df()[['ds_idx', 'round']].values.tolist())
    assert runs[0] == runs[1] != runs[2]


def _next_round(al):
    "Acquire and label one item by hand, so the ledger moves to the next round"
    idx = int(al.split.pool().ds_idxs[0])
    al.ledger.request([idx])
    al.split.label([idx], ['a'])  # the request above makes it a requested item


def test_warm_start_loads_last_weights_and_fresh_weights_differ():
    weights = lambda al: [p.detach().clone() for p in al.learn.model.parameters()]
    for warm in (True, False):
        al = make_al(warm_start=warm, fit=lambda learn: None)  # no training: the weights are what fit started from
        al.fit()
        first = weights(al)
        _next_round(al)
        al.fit()
        same = all(torch.equal(a, b) for a, b in zip(first, weights(al)))
        assert same == warm


class TwoMembers(PosteriorSampler):
    n_members = 2
    def __call__(self, learns, dl):
        return torch.stack([l.get_log_probs(dl=dl)[0] for l in learns], dim=1)


def test_members_are_trained_with_different_seeds():
    al = make_al(sampler=TwoMembers())
    al.fit()
    assert len(al.learns) == 2
    a, b = (next(l.model.parameters()).detach() for l in al.learns)
    assert not torch.equal(a, b)
    log_probs = al.score()
    assert log_probs.shape == (len(al.pool), 2, 2)


def test_an_ensemble_is_validated_as_its_mean_predictive():
    al = make_al(sampler=TwoMembers())
    al.fit()
    members = [l.get_log_probs(dl=al.dls.valid) for l in al.learns]
    targs = members[0][1]
    mean_probs = (members[0][0].exp() + members[1][0].exp()) / 2  # computed apart from the learner's code path
    res = al.validate()
    assert res['valid_loss'] == pytest.approx(float(-mean_probs[torch.arange(len(targs)), targs].log().mean()), rel=1e-5)
    assert res['accuracy'] == pytest.approx(float((mean_probs.argmax(1) == targs).float().mean()))
    one = make_al()
    one.fit()
    assert one.validate()['valid_loss'] == pytest.approx(float(one.learn.validate()[0]), rel=1e-6)  # one learner: its own


def test_the_default_strategy_is_power_entropy():
    from fastai_active.acquisition.selection import StochasticAcquisition
    acq = make_al().acquisition
    assert isinstance(acq, StochasticAcquisition) and acq.score is entropy and acq.mode == 'power'


def test_errors_are_clear(tmp_path):
    al = make_al(oracle=None)
    with pytest.raises(RuntimeError, match="needs an oracle"): al.loop(rounds=1)
    with pytest.raises(RuntimeError, match="call `fit\\(\\)`"): al.score()
    with pytest.raises(ValueError, match="expected `rounds`, `budget` or `stop`"): make_al().loop()
    with pytest.raises(TypeError, match="PosteriorSampler"): make_al(sampler=lambda learns, dl: None)
    from fastai_active.uncertainty.core import TTASampler
    from fastai_active.uncertainty.mc_dropout import MCDropout
    with pytest.raises(ValueError, match="same model for every item"):
        make_al(acquisition='batchbald', sampler=MCDropout(consistent_masks=False))
    with pytest.raises(ValueError, match="same model for every item"): make_al(acquisition='batchbald', sampler=TTASampler())
    make_al(acquisition='batchbald', sampler=MCDropout())  # consistent masks by default
    make_al(acquisition='bald', sampler=MCDropout(consistent_masks=False))  # per-item scores do not mind
    bad = make_al(fit=lambda learn: None)
    bad.make_learner = lambda dls: nn.Linear(2, 2)
    with pytest.raises(TypeError, match="must return a fastai Learner"): bad.fit()


def test_plot_history_draws_the_learning_curve():
    matplotlib.use('Agg')
    al = make_al()
    al.loop(rounds=2, n_per_round=5)
    ax = al.plot_history()
    x, y = ax.lines[0].get_data()
    assert list(x) == al.history.n_labelled.tolist()
    np.testing.assert_allclose(y, al.history.accuracy)


# --- pseudo-labels ------------------------------------------------------------------------------------------

from hypothesis import given, strategies as st
from fastai_active.loop.learner import PseudoLabeller


@given(st.integers(1, 60), st.integers(1, 4), st.integers(2, 5), st.floats(0.3, 0.99), st.integers(1, 10), st.integers(0, 2**31))
def test_pseudo_labeller_picks_confident_items_most_confident_first(N, K, C, threshold, cap, seed):
    g = torch.Generator().manual_seed(seed)
    lp = (torch.randn(N, K, C, generator=g) * 4).log_softmax(-1)
    probs = lp.exp().mean(1)
    conf, cls = probs.max(1)
    idxs, got_cls, got_conf = PseudoLabeller(threshold)(lp)
    assert set(idxs.tolist()) == set((conf >= threshold).nonzero().flatten().tolist())
    assert torch.equal(got_cls, cls[idxs]) and torch.allclose(got_conf, conf[idxs])
    assert (got_conf[:-1] >= got_conf[1:]).all()
    capped, capped_cls, _ = PseudoLabeller(threshold, max_per_class=cap)(lp)
    for c in range(C):
        n_c = int((cls[idxs] == c).sum())
        assert int((capped_cls == c).sum()) == min(n_c, cap)


def test_pseudo_labels_are_revised_and_never_labels():
    al = make_al(pseudo=PseudoLabeller(0.6))
    h = al.loop(rounds=2, n_per_round=5)
    assert h.n_labelled.tolist() == [6, 11, 16]
    assert (h.n_pseudo.iloc[1:] > 0).all()
    pseudo = al.ledger.labels(pseudo=True)
    assert pseudo and not set(pseudo) & set(al.ledger.labelled_idxs().tolist())
    # a real label replaces a pseudo-label
    i = next(iter(pseudo))
    al.label([i], ['b' if pseudo[i] == 'a' else 'a'], unrequested=True)
    assert i not in al.ledger.labels(pseudo=True) and al.ledger.labels()[i] != pseudo[i]
    # the pseudo-labelled items are in the next training set, validation is untouched
    dls = al.split.dataloaders(with_pseudo=True, num_workers=0)
    assert len(dls.train_ds) >= len(al.ledger.labels(pseudo=True)) + len(al.split.train_valid_idxs()[0])
    assert len(dls.valid_ds) == 40


# ---------------------------------------------------------------- issue 9: item 4, counts, and what `fit` and `loop` show
@pytest.mark.parametrize('acquisition', ['bald', 'batchbald', 'powerbald', 'variation_ratios'])
def test_strategies_of_sample_disagreement_refuse_one_deterministic_pass(acquisition):
    "Item 4: with K=1 every BALD score is 0 and the batch was the first n pool items; refused before any training"
    from fastai_active.uncertainty.mc_dropout import MCDropout
    with pytest.raises(ValueError, match=r"\(K=1\).*MCDropout\(n_samples=20\).*DeepEnsemble"):
        make_al(acquisition=acquisition)                           # the default sampler: one deterministic pass
    with pytest.raises(ValueError, match=r"\(K=1\)"): make_al(acquisition=acquisition, sampler=MCDropout(n_samples=1))
    make_al(acquisition=acquisition, sampler=MCDropout(n_samples=2))


def test_a_sampler_that_turns_out_to_give_k1_is_refused_at_acquisition():
    "A user's sampler whose K is unknown until called: the strategy refuses K=1 log-probs, nothing is requested"
    class OnePass(PosteriorSampler):
        def __call__(self, learns, dl): return SinglePass()(learns, dl)
    al = make_al(acquisition='powerbald', sampler=OnePass())
    al.fit()
    with pytest.raises(ValueError, match="got K=1"): al.acquire(4)
    assert len(al.ledger.pending()) == 0


def test_numpy_integer_counts_work_in_the_loop():
    al = make_al(epochs=np.int64(1), bs=np.int64(16), pool_bs=np.int32(32))
    h = al.loop(rounds=np.int64(1), n_per_round=np.int64(4))
    assert h.n_acquired.tolist() == [0, 4] and al.learn.dls.bs == 16
    with pytest.raises(TypeError, match="n_per_round as an int, got 2.5"): al.loop(rounds=2, n_per_round=2.5)
    with pytest.raises(ValueError, match="epochs >= 1"): make_al(epochs=0)


def test_fit_quiet_false_logs_only_the_columns_it_computes():
    "UX: with the epoch validation skipped, the table used to name valid_loss and accuracy columns it had no values for"
    al = make_al(epochs=2)
    al.fit(quiet=False)
    rec = al.learn.recorder
    assert list(rec.metric_names) == ['epoch', 'train_loss', 'time']
    assert len(rec.log) == len(rec.metric_names)
    assert [m.name for m in al.learn.metrics] == ['accuracy'] and rec.valid_metrics   # put back after training
    assert set(al.validate()) == {'valid_loss', 'accuracy'}
    al2 = make_al(epochs=2, epoch_validation=True)
    al2.fit(quiet=False)
    assert list(al2.learn.recorder.metric_names) == ['epoch', 'train_loss', 'valid_loss', 'accuracy', 'time']
    assert len(al2.learn.recorder.log) == 5


def test_the_round_bar_is_completed_when_the_loop_ends(monkeypatch):
    "UX: the loop's last step ends early; its progress bar was left at (n-1)/n, e.g. '75% [3/4]'"
    import fastai_active.loop.learner as learner_mod
    bars = []
    real = learner_mod.progress_bar
    def recording(gen, **kwargs):
        bar = real(gen, **kwargs)
        bar.values = []
        update = bar.update
        def record(v):
            bar.values.append(v)
            update(v)
        bar.update = record
        bars.append(bar)
        return bar
    monkeypatch.setattr(learner_mod, 'progress_bar', recording)
    al = make_al(show_progress=True)
    al.loop(rounds=3, n_per_round=4)
    assert len(bars) == 1 and bars[0].total == 4 and bars[0].values[-1] == 4


def test_an_ensemble_trains_through_train_ensemble_with_the_same_seeds():
    "One member-training loop: ActiveLearner.fit gives the members train_ensemble gives, weight for weight"
    from fastai_active.uncertainty.core import DeepEnsemble, train_ensemble
    from fastai_active.core import derive_seed, seeded
    al = make_al(sampler=DeepEnsemble(2), epochs=2)
    al.fit()
    with seeded(derive_seed(al.seed, 'dls', al.round)):
        dls = al.split.dataloaders(bs=al.bs, **al.dl_kwargs)
    again = train_ensemble(make_learner, dls, n_members=2, fit=al._fit_member, seed=al.seed, round=al.round, quiet=True)
    for a, b in zip(al.learns, again):
        for (k, v), w in zip(a.model.state_dict().items(), b.model.state_dict().values()): assert torch.equal(v, w), k
    assert not torch.equal(al.learns[0].model.net[0].weight, al.learns[1].model.net[0].weight)


def test_mc_dropout_takes_more_samples_for_joint_acquisition():
    "Item 11: K samples tell apart at most log K nats; without n_samples, BatchBALD gets JOINT_N_SAMPLES"
    from fastai_active.uncertainty.mc_dropout import MCDropout, JOINT_N_SAMPLES, N_SAMPLES
    assert (N_SAMPLES, JOINT_N_SAMPLES) == (20, 100)
    assert make_al(acquisition='batchbald', sampler=MCDropout()).sampler.K == JOINT_N_SAMPLES
    assert make_al(acquisition='bald', sampler=MCDropout()).sampler.K == N_SAMPLES
    assert make_al(acquisition='batchbald', sampler=MCDropout(n_samples=30)).sampler.K == 30   # as given
