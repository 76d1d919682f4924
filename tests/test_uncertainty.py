"Posterior samples from fastai Learners: MC dropout (full and head-only), ensembles, snapshots and TTA."
import math, warnings

import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings, strategies as st

from fastai.callback.core import Callback, CancelFitException, CancelValidException
from fastai.callback.progress import ProgressCallback  # registers Learner.no_bar
from fastai.data.core import DataLoaders, Datasets
from fastai.data.load import DataLoader
from fastai.learner import Learner
from fastai.losses import BCEWithLogitsLossFlat, CrossEntropyLossFlat
from fastai.torch_core import TensorImage
from fastai.vision.augment import Flip

from fastai_active.core import check_log_probs, derive_seed, mean_log_probs, seeded
from fastai_active.uncertainty.core import DeepEnsemble, SinglePass, SnapshotEnsemble, TTASampler, train_ensemble
from fastai_active.uncertainty.mc_dropout import MCDropout, MCDropoutSampling, dropout_modules, find_head_split
from fastai_active.loop.learner import ActiveLearner, SimulatedOracle
from fastai_active.data.split import ActiveSplit


def bald(log_probs_N_K_C):
    "Mutual information H[mean p] - mean H[p], computed here from the closed form"
    p = log_probs_N_K_C.double().exp()
    mean_p = p.mean(1)
    return -(mean_p * mean_p.clamp_min(1e-300).log()).sum(-1) + (p * log_probs_N_K_C.double()).sum(-1).mean(1)


def make_model(p=0.5, C=4):
    body = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU())
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(p), nn.Linear(8, 16), nn.ReLU(),
                         nn.Dropout(p), nn.Linear(16, C))
    return nn.Sequential(body, head)


def make_learner(seed=0, n=64, model=None, bs=16):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, 4, (n,), generator=g)
    with seeded(seed):
        dls = DataLoaders(DataLoader(list(zip(x, y)), bs=bs, shuffle=True), DataLoader(list(zip(x, y)), bs=bs))
        learn = Learner(dls, make_model() if model is None else model, loss_func=CrossEntropyLossFlat(), cbs=[])
    learn.remove_cbs([cb for cb in learn.cbs if isinstance(cb, ProgressCallback)])
    return learn, x


def pool_of(x, bs=16): return DataLoader([(xi,) for xi in x], bs=bs)


def modes(model): return [m.training for m in model.modules()]


def test_samples_differ_and_dropout_is_back_in_eval():
    learn, x = make_learner()
    model = learn.model
    lp, targs = learn.get_mc_preds(pool_of(x), n_samples=6, seed=0)
    assert lp.shape == (64, 6, 4) and lp.dtype == torch.float32 and targs is None
    check_log_probs(lp)
    assert not torch.allclose(lp[:, 0], lp[:, 1])
    assert learn.model is model and not any(modes(model))
    # the validation set has labels: they come back as targets
    lp, targs = learn.get_mc_preds(n_samples=2, seed=0)
    assert lp.shape == (64, 2, 4) and targs.shape == (64,)


class Boom(Callback):
    "Raises in the middle of prediction, after `n` batches"
    def __init__(self, n=2): self.n, self.seen = n, 0
    def after_batch(self):
        self.seen += 1
        if self.seen == self.n: raise RuntimeError("boom")


@pytest.mark.parametrize("kwargs", [dict(), dict(head_only=False), dict(consistent_masks=True)])
def test_state_restored_after_an_exception_mid_prediction(kwargs):
    learn, x = make_learner()
    learn.add_cb(Boom(2))
    model = learn.model
    rng = torch.get_rng_state()
    with pytest.raises(RuntimeError, match="boom"):
        learn.get_mc_preds(pool_of(x), n_samples=4, seed=1, **kwargs)
    assert learn.model is model
    assert not any(modes(model))
    assert torch.equal(torch.get_rng_state(), rng)            # the seeded fork of the global RNG was undone
    assert all(not m._forward_hooks for m in model.modules())  # consistent-mask hooks removed
    learn.remove_cb(learn.boom)
    lp = learn.get_mc_preds(pool_of(x), n_samples=4, seed=1, **kwargs)[0]  # and it works again afterwards
    assert lp.shape == (64, 4, 4)


def test_seeded_sampling_is_reproducible_and_leaves_global_rng_alone():
    learn, x = make_learner()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = learn.get_mc_preds(pool_of(x), n_samples=5, seed=7)[0]
    assert torch.equal(torch.rand(3), expected)
    b = learn.get_mc_preds(pool_of(x), n_samples=5, seed=7)[0]
    c = learn.get_mc_preds(pool_of(x), n_samples=5, seed=8)[0]
    assert torch.equal(a, b) and not torch.equal(a, c)


class CheckModes(Callback):
    "Records the modes of BatchNorm and dropout layers while predicting"
    def after_pred(self):
        mods = list(self.learn.model.modules())
        self.bn = [m.training for m in mods if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        self.dropout = [m.training for m in mods if isinstance(m, nn.Dropout)]


@pytest.mark.parametrize("head_only", [True, False])
@pytest.mark.parametrize("consistent", [True, False])
def test_batchnorm_stays_in_eval_mode(head_only, consistent):
    learn, x = make_learner()
    bn = learn.model[0][1]
    stats = bn.running_mean.clone(), bn.running_var.clone()
    check = CheckModes()
    learn.add_cb(check)
    learn.get_mc_preds(pool_of(x), n_samples=3, head_only=head_only, consistent_masks=consistent)
    # masks per item: dropout in train mode; consistent masks: dropout in eval mode, the hooks apply the masks
    assert check.bn == [False] and check.dropout == [not consistent] * 2
    assert torch.equal(bn.running_mean, stats[0]) and torch.equal(bn.running_var, stats[1])


def test_model_without_dropout_is_an_error():
    learn, x = make_learner(model=nn.Sequential(nn.Flatten(), nn.Linear(192, 4)))
    with pytest.raises(ValueError, match="needs dropout layers"):
        learn.get_mc_preds(pool_of(x), n_samples=3)
    assert isinstance(learn.model, nn.Sequential) and learn.model[1].out_features == 4


def test_dropout_found_by_type_not_name():
    class Noisy(nn.Dropout): pass      # a subclass with another name
    class DropoutLikeName(nn.Identity): pass
    m = nn.Sequential(nn.Linear(2, 2), Noisy(), DropoutLikeName(), nn.AlphaDropout(0.1), nn.Dropout3d(),
                      nn.FeatureAlphaDropout(0.1))
    assert [type(d).__name__ for d in dropout_modules(m)] == ['Noisy', 'AlphaDropout', 'Dropout3d', 'FeatureAlphaDropout']
    assert find_head_split(m) == 1


def test_head_only_matches_full_mc_in_distribution():
    "Mean and variance of the predictive over many samples agree between the head-only and the full path"
    learn, x = make_learner(n=8)
    with torch.no_grad(): learn.model[1][-1].weight.mul_(10)   # confident logits: samples that vary a lot
    K = 3000
    mc = dict(n_samples=K, consistent_masks=False)   # masks per item: the distribution of dropout itself
    fast = learn.get_mc_preds(pool_of(x), seed=0, head_only=True, **mc)[0].exp()
    full = learn.get_mc_preds(pool_of(x), seed=1, head_only=False, **mc)[0].exp()
    assert full.var(1).min() > 5e-3                   # there is variance to compare
    # standard error of a mean of K probabilities is below 0.5/sqrt(K) ~ 0.009; of a variance a few percent
    assert (fast.mean(1) - full.mean(1)).abs().max() < 0.035
    assert ((fast.var(1) - full.var(1)).abs() / full.var(1)).max() < 0.2
    # the test tells dropout rates apart: p=0.2 instead of 0.5 fails it
    learn.model[1][2].p = learn.model[1][5].p = 0.2
    low = learn.get_mc_preds(pool_of(x), seed=2, head_only=True, **mc)[0].exp()
    assert ((low.var(1) - full.var(1)).abs() / full.var(1)).max() > 0.2


def test_consistent_masks_head_only_equals_full_passes_and_masks_are_shared():
    learn, x = make_learner()
    x = x.clone()
    x[1] = x[0]                       # two identical pool items
    fast = learn.get_mc_preds(pool_of(x), n_samples=6, seed=3, consistent_masks=True)[0]
    full = learn.get_mc_preds(pool_of(x), n_samples=6, seed=3, consistent_masks=True, head_only=False)[0]
    assert torch.allclose(fast, full, atol=1e-5)
    assert torch.allclose(fast[0], fast[1], atol=1e-6)    # the same K networks for every item
    assert not torch.allclose(fast[:, 0], fast[:, 1])
    indep = learn.get_mc_preds(pool_of(x), n_samples=6, seed=3, consistent_masks=False)[0]
    assert not torch.allclose(indep[0], indep[1])          # independent masks per item only when asked for


@pytest.mark.parametrize("layer", [nn.Dropout(0.3), nn.AlphaDropout(0.3), nn.Dropout1d(0.3),
                                   nn.FeatureAlphaDropout(0.3)])
def test_consistent_masks_follow_the_layers_own_distribution(layer):
    "Hooked masks give the mean and variance of the layer's own train-mode output"
    feats = torch.randn(1, 4, 5)
    first = nn.Linear(5, 5)
    with torch.no_grad():
        first.weight.copy_(torch.eye(5))
        first.bias.zero_()
    model = nn.Sequential(first, layer, nn.Flatten())
    learn = Learner(DataLoaders(DataLoader([(feats[0], 0)], bs=1), DataLoader([(feats[0], 0)], bs=1)), model,
                    loss_func=CrossEntropyLossFlat(), cbs=[])
    learn.remove_cbs([cb for cb in learn.cbs if isinstance(cb, ProgressCallback)])
    K = 4000
    lp = learn.get_mc_preds(DataLoader([(feats[0],)], bs=1), n_samples=K, seed=0, consistent_masks=True,
                            head_only=False)[0]
    # the output is used as logits: compare the pre-softmax values through their log-softmax
    layer.train()
    with seeded(0): native = torch.stack([layer(feats.expand(1, 4, 5)).flatten(1).log_softmax(-1)[0] for _ in range(K)])
    layer.eval()
    assert (lp[0].mean(0) - native.mean(0)).abs().max() < 0.1
    assert (lp[0].std(0) - native.std(0)).abs().max() < 0.1


def test_identical_ensemble_members_give_bald_zero():
    members = []
    for _ in range(3):
        learn, x = make_learner(seed=0)
        with seeded(5): learn.fit(1, 1e-2)
        members.append(learn)
    lp = DeepEnsemble(3)(members, pool_of(x))
    for m, member in enumerate(members):   # column m is member m's own deterministic prediction
        torch.testing.assert_close(lp[:, m], member.get_log_probs(pool_of(x))[0].float())
    assert bald(lp).abs().max() < 1e-6
    def make(dls):
        learn = Learner(dls, make_model(), loss_func=CrossEntropyLossFlat(), cbs=[])
        learn.remove_cbs([cb for cb in learn.cbs if isinstance(cb, ProgressCallback)])
        return learn
    # fresh DataLoaders for each run: fastai's shuffling state lives in the DataLoader
    different = train_ensemble(make, make_learner(seed=0)[0].dls, n_members=3, fit=lambda l: l.fit(1, 1e-2), seed=1)
    again = train_ensemble(make, make_learner(seed=0)[0].dls, n_members=3, fit=lambda l: l.fit(1, 1e-2), seed=1)
    assert torch.equal(DeepEnsemble(3)(different, pool_of(x)), DeepEnsemble(3)(again, pool_of(x)))  # seeded
    assert bald(DeepEnsemble(3)(different, pool_of(x))).mean() > 1e-4
    with pytest.raises(ValueError, match="expected 3 trained members"): DeepEnsemble(3)(members[:2], pool_of(x))


class SegModel(nn.Module):
    "A tiny segmentation net: deterministic conv body, Dropout2d head, logits [bs, C, H, W]"
    def __init__(self, C):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout2d(0.3), nn.Conv2d(6, C, 1))
    def forward(self, x): return self.head(self.body(x))


@pytest.mark.parametrize("C, loss", [(3, CrossEntropyLossFlat(axis=1)), (1, BCEWithLogitsLossFlat())])
def test_segmentation_shapes(C, loss):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 3, 6, 5, generator=g)
    y = (torch.randint(0, 3, (20, 6, 5), generator=g) if C > 1 else torch.randint(0, 2, (20, 1, 6, 5), generator=g).float())
    dls = DataLoaders(DataLoader(list(zip(x, y)), bs=8), DataLoader(list(zip(x, y)), bs=8))
    learn = Learner(dls, SegModel(C), loss_func=loss, cbs=[])
    learn.remove_cbs([cb for cb in learn.cbs if isinstance(cb, ProgressCallback)])
    out_C = max(C, 2)
    lp, targs = learn.get_mc_preds(n_samples=4, seed=0)          # with labels: fastai computes the loss too
    assert lp.shape == (20, 4, out_C, 6, 5) and targs.shape == y.shape
    check_log_probs(lp, dense=True)
    # a custom Module is no chain: full passes, unless the split is named
    sampled = MCDropoutSampling(n_samples=4, seed=0, consistent_masks=True, split=(learn.model.body, learn.model.head))
    learn.get_preds(dl=pool_of(x, bs=8), cbs=sampled, with_preds=False)
    full = learn.get_mc_preds(pool_of(x, bs=8), n_samples=4, seed=0, consistent_masks=True)[0]
    assert sampled.used_head_only and torch.allclose(sampled.log_probs, full, atol=1e-5)
    for sampler in (MCDropout(3, seed=0), SinglePass()):
        out = sampler([learn], pool_of(x, bs=8))
        assert out.shape[2:] == (out_C, 6, 5) and out.device.type == 'cpu'


def test_float16_storage_and_chunks_on_disk_equal_memory(tmp_path):
    learn, x = make_learner(n=50)
    dl = pool_of(x, bs=16)         # 50 items: the last batch is short
    mem = learn.get_mc_preds(dl, n_samples=5, seed=0)[0]
    disk = learn.get_mc_preds(dl, n_samples=5, seed=0, path=tmp_path/'lp.npy')[0]
    assert torch.equal(disk, mem)
    assert np.array_equal(np.load(tmp_path/'lp.npy'), mem.numpy())
    half = learn.get_mc_preds(dl, n_samples=5, seed=0, dtype=torch.float16)[0]
    assert half.dtype == torch.float16 and torch.allclose(half.float(), mem, atol=1e-2)
    check_log_probs(half)
    half_disk = MCDropout(5, seed=0, dtype=torch.float16, path=tmp_path/'h.npy')([learn], dl)
    assert torch.equal(half_disk, half)


@settings(max_examples=10, deadline=None)
@given(st.integers(1, 40), st.integers(1, 17), st.integers(1, 6), st.booleans(), st.booleans())
def test_shapes_for_any_pool_and_batch_size(N, bs, K, head_only, consistent):
    learn, x = make_learner(n=N, bs=bs)
    lp = learn.get_mc_preds(pool_of(x, bs), n_samples=K, seed=0, head_only=head_only, consistent_masks=consistent)[0]
    assert lp.shape == (N, K, 4)
    check_log_probs(lp)


def test_snapshot_ensemble_restores_final_weights():
    learn, x = make_learner(seed=2)
    sampler = SnapshotEnsemble(n_snapshots=2)
    learn.add_cbs(sampler.fit_cbs())
    learn.fit(3, 1e-2)
    final = {k: v.clone() for k, v in learn.model.state_dict().items()}
    lp = sampler([learn], pool_of(x))
    assert lp.shape == (64, 2, 4)
    assert all(torch.equal(final[k], v) for k, v in learn.model.state_dict().items())
    assert torch.allclose(lp[:, 1], learn.get_log_probs(pool_of(x))[0], atol=1e-6)


def image_dls(seed=0, n=48, flip=True):
    g = torch.Generator().manual_seed(seed)
    imgs, labels = torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, 4, (n,), generator=g)
    dsets = Datasets(range(n), tfms=[[lambda i: TensorImage(imgs[i])], [lambda i: labels[i]]],
                     splits=[list(range(n//2)), list(range(n//2, n))])
    return dsets.dataloaders(bs=16, after_batch=[Flip(p=0.5)] if flip else [])


def test_tta_is_seeded_and_warns_without_augmentation():
    dls = image_dls()
    learn = Learner(dls, make_model(), loss_func=CrossEntropyLossFlat(), cbs=[])
    learn.remove_cbs([cb for cb in learn.cbs if isinstance(cb, ProgressCallback)])
    pool = dls.test_dl(range(48))
    a = TTASampler(4, seed=0)([learn], pool)
    assert a.shape == (48, 4, 4) and torch.equal(a, TTASampler(4, seed=0)([learn], pool))
    assert not torch.equal(a[:, 0], a[:, 1])
    plain_dls = image_dls(flip=False)
    learn.dls = plain_dls
    with pytest.warns(UserWarning, match="identical"):
        TTASampler(3, seed=0)([learn], plain_dls.test_dl(range(48)))
    with pytest.raises(TypeError, match="fastai Datasets"): TTASampler(2)([learn], pool_of(torch.randn(4, 3, 8, 8)))


@pytest.mark.parametrize("sampler", [MCDropout(4, seed=0), MCDropout(3, head_only=False, consistent_masks=True, seed=0),
                                     DeepEnsemble(2), SnapshotEnsemble(2), TTASampler(3, seed=0), SinglePass()],
                         ids=repr)
def test_samplers_follow_the_active_learner_contract(sampler):
    "As ActiveLearner uses them: M fresh learners with derived seeds and fit_cbs, then sampler(learns, test_dl)"
    dls = image_dls()
    learns = []
    for m in range(sampler.n_members):
        with seeded(derive_seed(0, 'fit', 1, m)):
            learn = Learner(dls, make_model(), loss_func=CrossEntropyLossFlat(), cbs=[])
            learn.remove_cbs([cb for cb in learn.cbs if isinstance(cb, ProgressCallback)])
            learn.add_cbs(sampler.fit_cbs())
            learn.fit(1, 1e-2)
        learns.append(learn)
    pool = dls.test_dl(range(10))
    lp = sampler(learns, pool)
    assert lp.device.type == 'cpu' and lp.is_floating_point() and lp.shape[0] == 10 and lp.shape[2] == 4
    assert sampler.K in (None, lp.shape[1])
    check_log_probs(lp, dense=True)
    if isinstance(sampler, (SinglePass, DeepEnsemble)):   # values, not only shapes: each member's own get_preds
        for m, learn in enumerate(learns):
            probs = learn.get_preds(dl=pool)[0]
            torch.testing.assert_close(lp[:, m].exp(), probs, atol=1e-6, rtol=1e-5)
    if isinstance(sampler, MCDropout):                    # the predictive mean is near the deterministic prediction
        assert (lp.exp().mean(1) - learns[0].get_preds(dl=pool)[0]).abs().max() < 0.25


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("kwargs", [dict(), dict(head_only=False), dict(consistent_masks=True)])
def test_cuda_results_come_back_on_cpu(kwargs):
    learn, x = make_learner()
    learn.dls.cuda()
    learn.model.cuda()
    pool = DataLoader([(xi,) for xi in x], bs=16, device='cuda')
    lp = learn.get_mc_preds(pool, n_samples=4, seed=0, **kwargs)[0]
    assert lp.device.type == 'cpu' and lp.shape == (64, 4, 4)
    assert not any(modes(learn.model)) and next(learn.model.parameters()).is_cuda
    again = learn.get_mc_preds(pool, n_samples=4, seed=0, **kwargs)[0]
    assert torch.equal(lp, again)                                # seeded on CUDA too
    if kwargs.get('consistent_masks'):                           # masks drawn on the CPU: same samples as on CPU
        learn.model.cpu()
        learn.dls.cpu()
        on_cpu = learn.get_mc_preds(pool_of(x), n_samples=4, seed=0, **kwargs)[0]
        assert torch.allclose(lp, on_cpu, atol=1e-4)


def test_every_sampler_drives_active_learner():
    "The samplers as ActiveLearner's uncertainty source, with no other change (runs where the loop exists)"
    import fastai_active.loop.learner as learner_mod, fastai_active.data.split as data_mod   # a broken import must fail
    import pandas as pd
    from fastai.data.block import CategoryBlock, DataBlock, TransformBlock
    from fastai.data.transforms import ColReader
    from fastai.data.core import Transform
    from fastai_active.acquisition.scores import entropy

    class Noise(Transform):
        "Feature jitter, training split only (like every fastai augmentation)"
        split_idx, order = 0, 10
        def encodes(self, x: torch.Tensor): return x + 0.3 * torch.randn_like(x) if x.is_floating_point() else x

    def frame(n, seed):
        rng = np.random.default_rng(seed)
        df = pd.DataFrame({'x0': rng.normal(size=n), 'x1': rng.normal(size=n)})
        df['y'] = np.where(df.x0 - df.x1 > 0, 'a', 'b')
        return df

    def features(row): return torch.tensor([row.x0, row.x1], dtype=torch.float32)
    def make(dls):
        model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, dls.c))
        return Learner(dls, model, loss_func=CrossEntropyLossFlat())

    for sampler, K in [(MCDropout(4, seed=0), 4), (MCDropout(3, consistent_masks=True, seed=0), 3),
                       (DeepEnsemble(2), 2), (SnapshotEnsemble(2), 2), (TTASampler(3, seed=0), 3)]:
        dblock = DataBlock(blocks=(TransformBlock, CategoryBlock), get_x=features, get_y=ColReader('y'),
                           batch_tfms=[Noise()])
        split = data_mod.ActiveSplit(dblock, frame(80, 0), vocab=['a', 'b'], valid_items=frame(20, 1), min_epoch_items=16)
        split.label_random(6, balanced=True, seed=0)
        al = learner_mod.ActiveLearner(split, make, acquisition=entropy, sampler=sampler, epochs=2, lr=1e-2,
                                       oracle=learner_mod.SimulatedOracle.from_split(split), show_progress=False,
                                       dl_kwargs=dict(num_workers=0))
        al.loop(rounds=2, n_per_round=4)
        assert al.ledger.n_labelled == 14
        assert al.log_probs.shape == (len(al.pool), K, 2)


# ---------------------------------------------------------------- issue 9, items 1-3: MC dropout never leaves the learner wrapped
class RaiseAt(Callback):
    "Raise `make()` before batch `at` of a pass"
    order = 2
    def __init__(self, make, at=1): self.make, self.at = make, at
    def before_batch(self):
        if self.iter == self.at: raise self.make()


FAILURES = {'exception in a batch': lambda: RuntimeError('boom'), 'KeyboardInterrupt': KeyboardInterrupt,
            'CancelFitException': CancelFitException}


def assert_learner_usable(learn, x, cbs_before, tmp_path):
    "A plain get_preds gives [N, C], fit works, save writes the model's own keys, callbacks and modes are as before"
    assert type(learn.model) is nn.Sequential and not any(modes(learn.model))
    assert all(not m._forward_hooks for m in learn.model.modules())
    assert learn.cbs == cbs_before
    assert learn.get_preds(dl=pool_of(x))[0].shape == (len(x), 4)
    with learn.no_logging(): learn.fit(1, 1e-3)
    learn.path = tmp_path
    keys = torch.load(learn.save('after', with_opt=False), weights_only=True).keys()
    assert keys == make_model().state_dict().keys() and not any(k.startswith('model.') for k in keys)


@pytest.mark.parametrize("failure", FAILURES, ids=str)
@pytest.mark.parametrize("path", ['get_preds(cbs=[MCDropoutSampling])', 'get_mc_preds', 'Learner(cbs=[MCDropoutSampling])'])
def test_learner_restored_after_any_failure_during_mc_scoring(failure, path, tmp_path):
    "Item 1: after a failure mid-scoring the model, dropout modes, callbacks and RNG state are the user's again"
    learn, x = make_learner()
    mc = MCDropoutSampling(n_samples=4, seed=0)
    if path.startswith('Learner'): learn.add_cb(mc)
    learn.model.eval()
    cbs_before, rng = list(learn.cbs), torch.get_rng_state()
    boom = RaiseAt(FAILURES[failure])
    expected = type(FAILURES[failure]())
    with pytest.raises(expected):
        if path == 'get_mc_preds':
            with learn.added_cbs(boom): learn.get_mc_preds(pool_of(x), n_samples=4, seed=0)
        elif path.startswith('Learner'): learn.get_preds(dl=pool_of(x), cbs=boom)
        else: learn.get_preds(dl=pool_of(x), cbs=[mc, boom])
    assert torch.equal(torch.get_rng_state(), rng)
    assert learn.cbs == cbs_before
    learn.remove_cbs([mc])   # (a carried sampler would make the plain get_preds below an MC one)
    assert_learner_usable(learn, x, [c for c in cbs_before if c is not mc], tmp_path)


@pytest.mark.parametrize("path", ['get_preds(cbs=[MCDropoutSampling])', 'Learner(cbs=[MCDropoutSampling])'])
def test_cancelled_validation_restores_and_keeps_no_partial_samples(path, tmp_path):
    learn, x = make_learner()
    mc = MCDropoutSampling(n_samples=4, seed=0)
    if path.startswith('Learner'): learn.add_cb(mc)
    learn.model.eval()
    cbs_before = list(learn.cbs)
    # (reorder=False: fastai's own reordering fails on the partial predictions of a cancelled pass)
    learn.get_preds(dl=pool_of(x), reorder=False, cbs=[RaiseAt(CancelValidException)] + ([] if path.startswith('Learner') else [mc]))
    assert mc.log_probs is None and mc.cancelled == 16   # one batch of 16 had been seen
    assert learn.cbs == cbs_before
    learn.remove_cbs([mc])
    assert_learner_usable(learn, x, [c for c in cbs_before if c is not mc], tmp_path)
    with learn.added_cbs(RaiseAt(CancelValidException)):
        with pytest.raises(RuntimeError, match="cancelled after 16 of 64 items"): learn.get_mc_preds(pool_of(x), n_samples=2)


def test_mc_dropout_sampling_in_learner_cbs_is_idle_while_training():
    "Item 2: as a Learner callback it used to crash `fit` ('... has no attribute n_seen'); it samples only when predicting"
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 3, 8, 8, generator=g), torch.randint(0, 4, (64,), generator=g)
    dls = DataLoaders(DataLoader(list(zip(x, y)), bs=16, shuffle=True), DataLoader(list(zip(x, y)), bs=16))
    mc = MCDropoutSampling(n_samples=5, seed=0)
    learn = Learner(dls, make_model(), loss_func=CrossEntropyLossFlat(), cbs=[mc])
    learn.remove_cbs([cb for cb in learn.cbs if isinstance(cb, ProgressCallback)])
    with seeded(0): learn.fit(2, 1e-2)                       # trains, with its usual validation
    assert mc.log_probs is None and type(learn.model) is nn.Sequential
    assert len(learn.recorder.values) == 2 and all(np.isfinite(v).all() for v in learn.recorder.values)  # validated each epoch
    probs = learn.get_preds(dl=pool_of(x))[0]                # predicts: the MC predictive
    assert probs.shape == (64, 4) and mc.log_probs.shape == (64, 5, 4)
    torch.testing.assert_close(probs.log(), mean_log_probs(mc.log_probs), atol=1e-5, rtol=1e-5)
    # `validate` outside training also samples: its loss is the MC predictive's
    loss = learn.validate()[0]
    nll = -mean_log_probs(mc.log_probs).gather(1, y[:, None]).mean()
    assert loss == pytest.approx(nll.item(), rel=1e-4)
    # `get_mc_preds` on a learner that carries one: one sampler at a time, the carried one sits it out
    assert learn.get_mc_preds(pool_of(x), n_samples=3, seed=0)[0].shape == (64, 3, 4)
    assert mc.run and mc.log_probs.shape == (64, 5, 4)


@pytest.mark.parametrize("entry", ['MCDropout', 'MCDropoutSampling', 'get_mc_preds'])
def test_consistent_masks_are_the_default_everywhere(entry):
    "Item 3: sample k is one network for every item unless `consistent_masks=False` is asked for by name"
    learn, x = make_learner()
    x = x.clone()
    x[5] = x[0]                                              # copies of one image, in the same batch and in another
    x[20] = x[0]
    if entry == 'MCDropout': lp = MCDropout(6, seed=0)([learn], pool_of(x))
    elif entry == 'get_mc_preds': lp = learn.get_mc_preds(pool_of(x), n_samples=6, seed=0)[0]
    else:
        cb = MCDropoutSampling(n_samples=6, seed=0)
        learn.get_preds(dl=pool_of(x), cbs=cb)
        lp = cb.log_probs
    torch.testing.assert_close(lp[5], lp[0], atol=1e-5, rtol=0)    # copies get the same K samples
    torch.testing.assert_close(lp[20], lp[0], atol=1e-5, rtol=0)
    assert MCDropout().consistent and MCDropoutSampling().consistent_masks
    indep = learn.get_mc_preds(pool_of(x), n_samples=6, seed=0, consistent_masks=False)[0]
    assert (indep[5] - indep[0]).abs().max() > 1e-3


def test_mc_dropout_names_come_from_all_and_their_module():
    "The flat module's shim (MC dropout names through `uncertainty`) went with the layers: `all` and `uncertainty.mc_dropout` give them"
    import fastai_active.all as a, fastai_active.uncertainty.mc_dropout as mcd, fastai_active.uncertainty.core as u
    assert a.MCDropout is mcd.MCDropout and a.MCDropoutSampling is mcd.MCDropoutSampling
    assert not hasattr(u, 'MCDropout')  # the lower module does not reach up for it
