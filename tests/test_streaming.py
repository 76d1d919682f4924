"Streaming selection: the same picks as the in-memory top_k and stochastic_batch, for any chunking and chunk order."
import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

from fastai_active.core import torch_generator
from fastai_active.acquisition.selection import stochastic_batch, top_k
from fastai_active.scale.streaming import StreamingSample, StreamingTopK


@st.composite
def chunked_pool(draw):
    "Scores with ties and zeros, cut into chunks that arrive in a random order"
    N = draw(st.integers(1, 300))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    scores = rng.random(N)
    scores[rng.random(N) < 0.3] = 0.
    scores = np.round(scores, draw(st.sampled_from([1, 3, 8])))  # coarse rounding: many exact ties
    cuts = sorted(set(rng.integers(0, N, size=draw(st.integers(0, 10))).tolist()) | {0, N})
    chunks = list(zip(cuts, cuts[1:]))
    order = rng.permutation(len(chunks)).tolist()
    n = draw(st.integers(1, N))
    return torch.tensor(scores, dtype=draw(st.sampled_from([torch.float32, torch.float64]))), [chunks[i] for i in order], n, seed


@given(chunked_pool())
def test_streaming_top_k_equals_top_k(pool):
    scores, chunks, n, _ = pool
    stream = StreamingTopK(n)
    for a, b in chunks: stream.update(torch.arange(a, b), scores[a:b], payload={'twice': scores[a:b] * 2})
    ref = top_k(scores, n)
    assert stream.result().idxs.tolist() == ref.idxs.tolist()
    assert torch.equal(stream.result().scores, ref.scores)
    assert torch.equal(stream.payload['twice'], ref.scores * 2)


@given(chunked_pool(), st.sampled_from(['power', 'softmax']), st.sampled_from([0., 0.5, 1., 8.]))
def test_streaming_sample_equals_stochastic_batch(pool, mode, beta):
    scores, chunks, n, seed = pool
    stream = StreamingSample(n, mode=mode, beta=beta, seed=seed)
    for a, b in chunks: stream.update(a, scores[a:b])
    ref = stochastic_batch(scores, n, mode=mode, beta=beta, seed=seed)
    # keys are -inf only for a score of 0 (power): both then order those items by their noise alone
    assert stream.result().idxs.tolist() == ref.idxs.tolist()
    assert torch.equal(stream.result().scores, ref.scores)


def test_a_million_scores_in_chunks_keep_memory_small():
    "The running state is the best n, whatever the pool size"
    stream, g = StreamingSample(100, seed=0), torch_generator(0)
    whole = []
    for start in range(0, 1_000_000, 65_536):
        s = torch.rand(min(65_536, 1_000_000 - start), generator=g)
        whole.append(s)
        stream.update(start, s)
    assert len(stream.top.idxs) == 100 and not stream._waiting
    assert stream.result().idxs.tolist() == stochastic_batch(torch.cat(whole), 100, seed=0).idxs.tolist()


def test_refuses_softrank_and_gaps():
    with pytest.raises(ValueError, match="cannot be streamed"): StreamingSample(3, mode='softrank')
    with pytest.raises(ValueError, match="none at 3"): StreamingSample(1).update(0, [1., 2., 3.]).update(5, [1.]).result()
