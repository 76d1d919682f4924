"Diversity strategies in the loop: embeddings from the scoring pass, every strategy by name with each sampler, fixtures."
import json, math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from fastai.data.block import DataBlock, TransformBlock, CategoryBlock
from fastai.data.transforms import ColReader

from fastai_active.data.split import ActiveSplit
from fastai_active.loop.learner import ActiveLearner, SimulatedOracle
from fastai_active.uncertainty.core import SinglePass, DeepEnsemble
from fastai_active.uncertainty.mc_dropout import MCDropout
from fastai_active.acquisition.diversity import coreset, badge, typiclust, probcover, gradient_embedding
from fastai_active.acquisition.diversity_acquisition import cluster_margin
from fastai_active.loop.stopping import LabelBudget

from _learners import mlp_learner, two_features as features

FIXTURE = Path(__file__).parent / 'fixtures' / 'diversity_peers.json'


def frame(n=150, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({'x0': rng.normal(size=n), 'x1': rng.normal(size=n)})
    df['y'] = np.where(df.x0 - df.x1 > 0, 'a', 'b')
    return df


def make_learner(dls): return mlp_learner(dls, p=0.3)


def make_al(acquisition, sampler=None, n=150):
    dblock = DataBlock(blocks=(TransformBlock, CategoryBlock), get_x=features, get_y=ColReader('y'))
    split = ActiveSplit(dblock, frame(n), vocab=['a', 'b'], valid_items=frame(40, seed=1), min_epoch_items=32)
    split.label_random(6, balanced=True, seed=0)
    return ActiveLearner(split, make_learner, acquisition=acquisition, sampler=sampler, oracle=SimulatedOracle.from_split(split),
                         epochs=1, lr=1e-2, dl_kwargs=dict(num_workers=0), show_progress=False)


def hand_features(al, ds_idxs):
    "The penultimate features (before the dropout) of the first learner, computed by hand"
    x = torch.stack([features(r) for _, r in al.split.items_at(ds_idxs).iterrows()])
    return al.learns[0].model[:2](x).detach()


def test_coreset_in_the_loop_uses_the_pass_that_scores_the_pool():
    al = make_al('coreset')
    al.fit()
    df = al.acquire(5)
    pool = al.pool
    torch.testing.assert_close(al.embeddings, hand_features(al, pool.ds_idxs), atol=1e-5, rtol=1e-5)
    lab = hand_features(al, al.ledger.labelled_idxs())
    torch.testing.assert_close(al.labelled_embeddings(), lab, atol=1e-5, rtol=1e-5)
    assert df.pool_idx.tolist() == coreset(al.embeddings, 5, lab).idxs.tolist()


@pytest.mark.parametrize('sampler', [SinglePass(), MCDropout(n_samples=4, seed=0), DeepEnsemble(n_members=2)], ids=repr)
@pytest.mark.parametrize('name', ['coreset', 'badge', 'typiclust', 'probcover', 'cluster_margin', 'diverse_batchbald', 'diverse_powerbald'])
def test_every_strategy_runs_in_the_loop_with_each_sampler(name, sampler):
    if name in ('diverse_batchbald', 'diverse_powerbald') and isinstance(sampler, SinglePass):
        with pytest.raises(ValueError, match=r"\(K=1\)"): make_al(name, sampler)  # refused before anything is trained
        return
    al = make_al(name, sampler)
    h = al.loop(rounds=2, n_per_round=4)
    assert h.n_labelled.tolist() == [6, 10, 14]
    assert al.embeddings is not None and al.embeddings.shape == (len(al.pool), 16)
    al.score()  # the last round's model (the loop fits it and stops before acquiring)
    # the first member's features; MC dropout's masks come after them, so they are the deterministic ones
    torch.testing.assert_close(al.embeddings, hand_features(al, al.pool.ds_idxs), atol=1e-5, rtol=1e-5)


def test_embeddings_are_not_computed_for_strategies_without_them():
    al = make_al('powerentropy')
    al.fit()
    al.acquire(3)
    assert al.embeddings is None


def test_stop_budget_in_the_loop():
    al = make_al('badge')
    h = al.loop(n_per_round=4, stop=LabelBudget(8))
    assert h.stop_acquired.tolist() == [0, 4, 8] and h.stopped_by.tolist() == ['', '', 'LabelBudget(budget=8)']
    assert al.loop(n_per_round=4, stop=LabelBudget(8)) is not None and len(al.history) == 3  # a finished run stays finished


@pytest.mark.skipif(not FIXTURE.exists(), reason="no peer fixture")
def test_against_scikit_activeml_fixtures():
    "Picks of scikit-activeml's implementations on the same inputs (made in the bench venv, see benchmarks/)"
    cases = json.loads(FIXTURE.read_text())['cases']
    assert {c['strategy'] for c in cases} == {'coreset', 'typiclust', 'probcover', 'badge'}
    for c in cases:
        emb = torch.tensor(c['emb'], dtype=torch.float64)
        lab = torch.tensor(c['labelled'], dtype=torch.float64).reshape(-1, emb.shape[1])
        if c['strategy'] == 'coreset':
            assert coreset(emb, c['n'], lab).idxs.tolist() == c['picks'], c['name']
        elif c['strategy'] == 'typiclust':
            clusters = torch.tensor(c['clusters'])
            assert typiclust(emb, c['n'], lab, clusters=clusters, k_nn=c['k_nn'], min_cluster_size=c['min_cluster_size']).idxs.tolist() == c['picks'], c['name']
        elif c['strategy'] == 'probcover':
            assert probcover(emb, c['n'], c['delta'], lab).idxs.tolist() == c['picks'], c['name']
        elif c['strategy'] == 'badge':
            lp = torch.tensor(c['log_probs'], dtype=torch.float64)
            assert badge(lp, emb, 1).idxs.tolist() == c['picks'][:1], c['name']  # the first pick is deterministic
            w = gradient_embedding(lp, emb).pow(2).sum(1)  # squared gradient norms, normalised, as the peer's first step
            torch.testing.assert_close(w / w.sum(), torch.tensor(c['first_probs'], dtype=torch.float64), atol=1e-9, rtol=1e-6)
        else: raise AssertionError(c['strategy'])
