"Consistent-mask MC dropout gives exactly the samples of a hand-written loop with the same masks (issue 15's speed work)"
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.modules.dropout import _DropoutNd
from fastai.callback.progress import ProgressCallback
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat
from fastai.vision.learner import add_head

from fastai_active.core import derive_seed, torch_generator
from fastai_active.uncertainty.mc_dropout import find_head_split, flat_chain
from fastai_active.models import gal_cnn

_channelwise = (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)


def keep_masks(layer, shape, K, seed, i):
    "The K masks of the i-th sampled dropout layer, as documented: `derive_seed(seed, 'mask', i)` on the CPU"
    if isinstance(layer, _channelwise): shape = (shape[0],) + (1,) * (len(shape) - 1)
    return torch.rand((K, *shape), generator=torch_generator(derive_seed(seed, 'mask', i))) >= layer.p


@torch.no_grad()
def reference(model, x, K, seed, bs):
    "The implementation before the speed work, written out: body once, an expanded copy of the features, then each dropout as `x * keep * scale`"
    chain = flat_chain(model)
    split = find_head_split(model)
    body, head = nn.Sequential(*chain[:split]).eval(), [m.eval() for m in chain[split:]]
    outs = []
    for b in range(0, len(x), bs):
        h = body(x[b:b+bs])
        n, rest = h.shape[0], h.shape[1:]
        h, i = h.unsqueeze(1).expand(n, K, *rest).reshape(n * K, *rest), 0
        for m in head:
            if isinstance(m, _DropoutNd):
                keep = keep_masks(m, tuple(h.shape[1:]), K, seed, i)
                h = (h.view(n, K, *h.shape[1:]) * keep.to(h.dtype)[None] * (1 / (1 - m.p))).reshape(h.shape)
                i += 1
            else: h = m(h)
        outs.append(F.log_softmax(h.float(), 1).view(n, K, -1))
    return torch.cat(outs)


@torch.no_grad()
def per_sample_loop(model, x, K, seed):
    "Sample k as its own network: the whole model with the k-th masks, one pass per sample (independent of batching)"
    model.eval()
    mods = [m for m in model.modules() if isinstance(m, _DropoutNd)]
    outs = []
    for k in range(K):
        def hook(m, inputs, output):
            i = mods.index(m)
            return inputs[0] * keep_masks(m, tuple(inputs[0].shape[1:]), K, seed, i)[k].to(inputs[0].dtype) / (1 - m.p)
        handles = [m.register_forward_hook(hook) for m in mods]
        try: outs.append(F.log_softmax(model(x).float(), 1))
        finally:
            for h in handles: h.remove()
    return torch.stack(outs, 1)


def fastai_head_model():
    "A small conv body with fastai's head (pooling, BatchNorm1d, dropout, linear, ...): dropout after some head layers"
    body = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU())
    return add_head(body, 8, 5)


def spatial_dropout_model():
    "Channel-wise dropout on feature maps, then a dense head"
    body = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU())
    return nn.Sequential(body, nn.Sequential(nn.Dropout2d(0.3), nn.Flatten(), nn.Linear(6 * 6 * 6, 16), nn.ReLU(),
                                             nn.Dropout(0.5), nn.Linear(16, 4)))


def learner_for(model, x, bs):
    dl = DataLoader([(xi,) for xi in x], bs=bs)
    learn = Learner(DataLoaders(dl, dl), model, loss_func=CrossEntropyLossFlat(), cbs=[])
    learn.remove_cbs([cb for cb in learn.cbs if isinstance(cb, ProgressCallback)])
    return learn, dl


CASES = {'gal': (lambda: gal_cnn(10, c_in=1, size=12), (1, 12, 12)),
         'fastai head': (fastai_head_model, (3, 8, 8)),
         'spatial dropout': (spatial_dropout_model, (3, 8, 8))}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_samples_equal_the_reference_loop_bit_for_bit(case, dtype):
    make, shape = CASES[case]
    torch.manual_seed(0)
    model = make().to(dtype)
    x = torch.randn(21, *shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
    learn, dl = learner_for(model, x, bs=8)
    K, seed = 7, 11
    lp = learn.get_mc_preds(dl, n_samples=K, seed=seed)[0]
    ref = reference(model, x, K, seed, bs=8)
    assert lp.shape == ref.shape == (21, K, ref.shape[-1])
    assert torch.equal(lp, ref)
    # and, independently of how the rows are batched, sample k is the network with the k-th masks
    assert torch.allclose(lp, per_sample_loop(model, x, K, seed), atol=1e-5)
    # the masks matter: samples differ, and another seed gives other samples
    assert not torch.allclose(lp[:, 0], lp[:, 1])
    assert not torch.allclose(lp, learn.get_mc_preds(dl, n_samples=K, seed=seed + 1)[0])


def test_head_given_as_a_pair_and_full_passes_give_the_same_samples():
    "The paths that do not fuse the first dropout (a `(body, head)` pair, K full passes) sample the same networks"
    torch.manual_seed(0)
    model = gal_cnn(10, c_in=1, size=12)
    x = torch.randn(10, 1, 12, 12, generator=torch.Generator().manual_seed(2))
    learn, dl = learner_for(model, x, bs=4)
    fused = learn.get_mc_preds(dl, n_samples=5, seed=3)[0]
    pair = learn.get_mc_preds(dl, n_samples=5, seed=3, split=(model[0], model[1]))[0]
    full = learn.get_mc_preds(dl, n_samples=5, seed=3, head_only=False)[0]
    assert torch.equal(fused, pair)
    assert torch.allclose(fused, full, atol=1e-5)


def test_half_precision_keeps_the_two_multiplications():
    "In bfloat16 the scale is applied as before (`x * keep * s`, computed in float32), not as a rounded factor"
    torch.manual_seed(0)
    model = gal_cnn(10, c_in=1, size=12, p_conv=0.3, p_fc=0.3).to(torch.bfloat16)   # 1/0.7 is not exact in bfloat16
    x = torch.randn(6, 1, 12, 12, generator=torch.Generator().manual_seed(3)).to(torch.bfloat16)
    learn, dl = learner_for(model, x, bs=6)
    assert torch.equal(learn.get_mc_preds(dl, n_samples=4, seed=0)[0], reference(model, x, 4, 0, bs=6))


def test_a_pool_item_of_another_shape_is_still_refused():
    torch.manual_seed(0)
    # (a dropout after a shape-dependent layer sees it: Gal's CNN flattens the feature map)
    gal = gal_cnn(10, c_in=1, size=12)
    learn, _ = learner_for(gal, torch.randn(4, 1, 12, 12), bs=4)
    dl = DataLoader([(torch.randn(1, 12, 12),)] * 4 + [(torch.randn(1, 14, 14),)] * 4, bs=4)
    with pytest.raises(ValueError, match="same input shape"): learn.get_mc_preds(dl, n_samples=3, seed=0)
    assert learn.model is gal and all(not m._forward_hooks for m in gal.modules())


def test_hooks_on_the_first_head_dropout_still_run():
    "The first dropout of the head is still called (it makes the K copies in its hook): other hooks on it see its input"
    torch.manual_seed(0)
    model = gal_cnn(10, c_in=1, size=12)
    x = torch.randn(10, 1, 12, 12, generator=torch.Generator().manual_seed(4))
    learn, dl = learner_for(model, x, bs=4)
    seen = []
    handle = model[1][0].register_forward_hook(lambda m, inputs, output: seen.append(inputs[0].shape[0]))
    try: lp = learn.get_mc_preds(dl, n_samples=5, seed=0)[0]
    finally: handle.remove()
    assert seen == [4, 4, 2]   # once per batch, the features once per item
    assert torch.equal(lp, reference(model, x, 5, 0, bs=4))
