"""DataFrames the fastai tabular way: TabularPandas into a split, tabular_learner on its DataLoaders, MC dropout,
ensembles and BatchBALD; preprocessing statistics from the labelled training rows only (unless asked)."""
import numpy as np
import pandas as pd
import pytest
import torch
from fastai.tabular.all import (TabularPandas, Categorify, FillMissing, Normalize, tabular_learner, tabular_config,
                                accuracy, CategoryBlock, RegressionBlock)

from fastai_active.data.split import ActiveSplit
from fastai_active.data.tabular import TabularSplit
from fastai_active.loop.learner import ActiveLearner, SimulatedOracle
from fastai_active.uncertainty.core import DeepEnsemble
from fastai_active.uncertainty.mc_dropout import MCDropout

PROCS = [Categorify, FillMissing, Normalize]


def make_frame(n, seed=0, shift=0.):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({'age': rng.normal(40 + shift, 10, n), 'income': rng.lognormal(3, .5, n),
                       'city': rng.choice(['ams', 'ber', 'cph', 'dub'], n)})
    df.loc[rng.random(n) < .1, 'income'] = np.nan
    df['y'] = np.digitize(df.age - shift + 8 * (df.city == 'ams'), [35, 45])  # integer classes 0, 1, 2
    return df


def make_learner(dls): return tabular_learner(dls, layers=[32, 16], config=tabular_config(ps=0.2, embed_p=0.1), metrics=accuracy)


def test_tabular_pandas_to_tabular_learner_with_mc_dropout_and_batchbald():
    df, valid = make_frame(300), make_frame(100, seed=1)
    to = TabularPandas(df, procs=PROCS, cat_names=['city'], cont_names=['age', 'income'], y_names='y', do_setup=False)
    split = ActiveSplit(to, vocab=[0, 1, 2], valid_items=valid, min_epoch_items=64)
    assert isinstance(split, TabularSplit)
    split.label_random(12, balanced=True, seed=0)
    sampler = MCDropout(n_samples=8, seed=0)
    al = ActiveLearner(split, make_learner, acquisition='batchbald', sampler=sampler, oracle=SimulatedOracle.from_split(split),
                       epochs=3, lr=1e-2, dl_kwargs=dict(num_workers=0), show_progress=False)
    h = al.loop(rounds=2, n_per_round=4)
    assert h.n_labelled.tolist() == [12, 16, 20] and h.n_valid.tolist() == [100] * 3
    assert type(al.learn.model).__name__ == 'TabularModel' and al.dls.cat_names == ['city', 'income_na']
    assert al.log_probs.shape == (len(al.pool), 8, 3)
    assert (al.log_probs.exp().std(1) > 1e-4).any()  # the samples differ: dropout was on while scoring
    labels = split.ledger.labels()
    assert all(type(v) is int and v == df.y[d] for d, v in labels.items())  # ds_idx = row here; labels are the ints
    assert all(0 <= a <= 1 for a in h.accuracy) and [sum(c.values()) for c in h.class_counts] == [12, 16, 20]


def test_tabular_ensemble_and_a_person_labelling():
    df, valid = make_frame(200), make_frame(60, seed=1)
    split = TabularSplit(df.assign(y=np.nan), procs=PROCS, cat_names=['city'], cont_names=['age', 'income'], y_names='y',
                         vocab=[0, 1, 2], valid_items=valid)  # the pool's targets unknown, as in real use
    split.label(df.y.iloc[:10].to_dict(), source='initial')  # the labels the user has, by index value
    al = ActiveLearner(split, make_learner, acquisition='bald', sampler=DeepEnsemble(n_members=2), epochs=2, lr=1e-2,
                       dl_kwargs=dict(num_workers=0), show_progress=False)
    al.fit()
    al.evaluate()
    picked = al.acquire(5)
    assert picked.key.tolist() == picked.ds_idx.tolist() and picked['item'].tolist() == picked.key.tolist()
    with pytest.raises(ValueError, match="drop the rows that have no answer yet"): split.label_random(1)  # no truth to reveal
    al.label(picked.assign(label=df.y[picked.key].tolist()), annotator='ana')
    al.fit()
    al.evaluate()
    assert al.history.n_labelled.tolist() == [10, 15] and len(al.learns) == 2
    assert al.log_probs.shape[1:] == (2, 3)


def norm_of(dls):
    return next(p for p in dls.train_ds.procs.fs if hasattr(p, 'means'))


def test_preprocessing_is_fitted_on_the_training_rows_only():
    "Closed forms: Normalize's mean and std, FillMissing's median and Categorify's classes from the labelled training rows"
    df = pd.concat([make_frame(60), make_frame(240, seed=2, shift=100.)], ignore_index=True)  # the pool is far off
    df.loc[60:, 'city'] = 'pool_only'
    valid = make_frame(40, seed=1).assign(city='valid_only', age=-500.)
    kw = dict(procs=PROCS, cat_names=['city'], cont_names=['age', 'income'], y_names='y', vocab=[0, 1, 2], valid_items=valid)
    split = TabularSplit(df, **kw)
    split.ledger.label(list(range(20)), df.y[:20].tolist(), source='initial')
    dls = split.dataloaders(num_workers=0)
    train = df.iloc[:20]
    assert norm_of(dls).means['age'] == pytest.approx(train.age.mean(), rel=1e-5)
    assert norm_of(dls).stds['age'] == pytest.approx(train.age.std(ddof=0), rel=1e-4)
    fill = next(p for p in dls.train_ds.procs.fs if isinstance(p, FillMissing))
    assert fill.na_dict['income'] == pytest.approx(train.income.median(), rel=1e-5)
    cats = next(p for p in dls.train_ds.procs.fs if isinstance(p, Categorify)).classes['city']
    assert set(cats) == {'#na#'} | set(train.city)

    both = TabularSplit(df, procs_on='train+pool', **kw)
    both.ledger.label(list(range(20)), df.y[:20].tolist(), source='initial')
    seen = pd.concat([train, df.iloc[20:]])  # labelled training rows and every unlabelled row, never the validation ones
    dls2 = both.dataloaders(num_workers=0)
    assert norm_of(dls2).means['age'] == pytest.approx(seen.age.mean(), rel=1e-5)
    assert set(next(p for p in dls2.train_ds.procs.fs if isinstance(p, Categorify)).classes['city']) == {'#na#'} | set(seen.city)
    # a validation share of labelled rows is left out too
    share = TabularSplit(df, **{**kw, 'valid_items': None}, valid_pct=0.5)
    share.ledger.label(list(range(20)), df.y[:20].tolist(), source='initial')
    tr, va = share.train_valid_idxs()
    assert len(va) and norm_of(share.dataloaders(num_workers=0)).means['age'] == pytest.approx(df.age[tr.numpy()].mean(), rel=1e-5)


def test_gaps_in_pool_rows_only_are_filled():
    "fastai's FillMissing asserts when the pool has a gap in a column the training rows had none in; the split's fills it"
    df = make_frame(100)
    df.loc[:29, 'income'] = df.income[:30].fillna(20.)
    df.loc[50:, 'income'] = np.nan  # gaps in pool rows only
    split = TabularSplit(df, procs=PROCS, cat_names=['city'], cont_names=['age', 'income'], y_names='y', vocab=[0, 1, 2],
                         valid_items=make_frame(30, seed=1).assign(income=5.))
    split.ledger.label(list(range(30)), df.y[:30].tolist(), source='initial')
    dls = split.dataloaders(num_workers=0)
    xb_cat, xb_cont = dls.one_batch()[:2]
    assert torch.isfinite(xb_cont).all()
    pool = split.pool()
    cats, conts = [torch.cat(t) for t in zip(*[(c, x) for c, x in split.pool_dl(dls, pool, bs=16)])]
    assert torch.isfinite(conts).all()
    na_col = dls.cat_names.index('income_na')
    gap = torch.tensor(df.income.iloc[pool.ds_idxs.numpy()].isna().to_numpy())
    assert gap.any() and (cats[gap, na_col] != cats[~gap, na_col][0]).all()  # flagged as filled


def test_the_target_must_be_said_and_processed_tabulars_are_refused():
    df = make_frame(50)
    with pytest.raises(ValueError, match="`vocab=\\[...\\]` for classes"):
        TabularSplit(df.assign(y=df.y.where(df.index < 10)), cont_names=['age'], y_names='y')  # ints with gaps: floats
    reg = TabularSplit(df, procs=[Normalize], cont_names=['age'], y_names='income', y_block=RegressionBlock(), valid_pct=0.5)
    assert reg.vocab is None
    cat = TabularSplit(df, cont_names=['age'], y_names='y', y_block=CategoryBlock(vocab=[2, 0, 1], sort=False))
    assert cat.vocab == [2, 0, 1]  # the vocabulary's order is kept
    processed = TabularPandas(df, procs=PROCS, cat_names=['city'], cont_names=['age'], y_names='y')
    with pytest.raises(ValueError, match="made with `do_setup=False`"): ActiveSplit(processed, vocab=[0, 1, 2])
    with pytest.raises(TypeError, match="by keyword"):
        ActiveSplit(TabularPandas(df, cont_names=['age'], y_names='y', do_setup=False), 'ledger.db')
    with pytest.raises(TypeError, match="expected a fastai DataBlock"): ActiveSplit(df, df)


def test_fixmatch_on_a_table_trains_on_the_features_of_the_pool_never_its_target():
    "FixMatch in the loop on a TabularSplit: the unlabelled rows reach the callback without the target column, the views"
    " change the continuous features (not the category codes), and the confident pseudo-labels are mostly right"
    from fastai_active.semi.fixmatch import FixMatch
    from fastai_active.semi.augment import FeatureNoise
    df, valid = make_frame(400), make_frame(100, seed=1)
    split = TabularSplit(df, procs=PROCS, cat_names=['city'], cont_names=['age', 'income'], y_names='y', vocab=[0, 1, 2],
                         valid_items=valid)
    split.label_random(30, balanced=True, seed=0)
    fm = FixMatch(mu=2, threshold=0.8, weak=FeatureNoise(0.1), strong=FeatureNoise(0.3, drop=0.2))
    al = ActiveLearner(split, make_learner, oracle=SimulatedOracle.from_split(split), epochs=10, lr=1e-2, seed=0,
                       dl_kwargs=dict(num_workers=0), show_progress=False, semi=fm)
    h = al.loop(rounds=1, n_per_round=10)
    unlabelled = fm._cb.unlabelled
    assert list(unlabelled.columns) == ['city', 'age', 'income'] and len(unlabelled) == len(split.pool()) == 360
    assert (h.n_confident > 20).all() and (h.confident_accuracy > 0.8).all(), h
    # the scoring loader reads the same columns
    assert list(split.unlabelled_items(al.pool).columns) == ['city', 'age', 'income']


def test_label_spreading_and_flexmatch_on_a_table_read_its_targets_as_one_class_per_row():
    "fastai's tabular targets are [B, 1]: one class per row, not a mask (before: spreading crashed, FlexMatch was refused)"
    from fastai_active.semi.fixmatch import FixMatch
    from fastai_active.semi.spreading import LabelSpreadingStep, spread_labels
    from fastai_active.semi.augment import FeatureNoise
    df, valid = make_frame(400), make_frame(100, seed=1)
    kw = dict(procs=PROCS, cat_names=['city'], cont_names=['age', 'income'], y_names='y', vocab=[0, 1, 2], valid_items=valid)
    # FlexMatch lowers its thresholds early on (every class starts unlearned): more pass, fewer right, still above chance
    for semi, right in ((LabelSpreadingStep(threshold=0.8), 0.7),
                        (FixMatch(mu=2, threshold=0.8, flex=True, weak=FeatureNoise(0.1), strong=FeatureNoise(0.3, drop=0.2)), 0.4)):
        split = TabularSplit(df, **kw)
        split.label_random(30, balanced=True, seed=0)
        al = ActiveLearner(split, make_learner, oracle=SimulatedOracle.from_split(split), epochs=10, lr=1e-2, seed=0,
                           dl_kwargs=dict(num_workers=0), show_progress=False, semi=semi)
        h = al.loop(rounds=1, n_per_round=10)
        assert (h.n_confident > 20).all() and (h.confident_accuracy > right).all(), (semi, h)
    # the labelled rows, once each and as processed for training (not processed a second time: codes, scaling, _na)
    from fastai_active.semi.spreading import _labelled_once_dl
    split = TabularSplit(df, min_epoch_items=100, **kw)
    split.label_random(30, balanced=True, seed=0)
    dls = split.dataloaders(num_workers=0)
    assert len(dls.train_ds) == 120  # repeated up to min_epoch_items
    cats, conts, ys = [torch.cat(t) for t in zip(*_labelled_once_dl(dls))]
    ds = dls.train_ds
    torch.testing.assert_close(conts, torch.tensor(ds.conts.values[:30], dtype=torch.float32))
    assert torch.equal(cats, torch.tensor(ds.cats.values[:30]).long()) and torch.equal(ys.flatten().long(), torch.tensor(ds.ys.values[:30, 0]).long())
    assert ds.items.income_na.any()  # the case that failed when the rows were processed again
    with pytest.raises(ValueError, match=r"one class per item \[L\], got shape \(2, 1\)"):
        spread_labels(torch.randn(2, 3), torch.tensor([[0], [1]]), torch.randn(5, 3), 2)
