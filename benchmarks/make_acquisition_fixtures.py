"""Write tests/fixtures/batchbald_redux.json: inputs with batchbald_redux 2.0.5's BatchBALD picks and scores, and baal's BALD.

Run once in the bench venv (peers are not dependencies of fastai_active; the tests read only the JSON):
    .venv-bench/bin/python -m benchmarks.make_acquisition_fixtures
Every case keeps the joint exact in batchbald_redux (C^(n-1) <= num_samples), where the picks and scores are
deterministic, so they can be compared to the last digits.
"""
import json, pathlib
import numpy as np
import torch
import batchbald_redux, baal
from batchbald_redux.batchbald import get_batchbald_batch
from baal.active.heuristics import BALD

OUT = pathlib.Path(__file__).resolve().parents[1] / 'tests' / 'fixtures' / 'batchbald_redux.json'


def mixture_example(K=20):
    "The four-item, four-class example of batchbald_redux's notebooks: each item mixes two distributions over K samples"
    def mix(p1, p2): return [(1 - m) * np.asarray(p1) + m * np.asarray(p2) for m in np.linspace(0, 1, K)]
    ys = [mix([0.7, 0.1, 0.1, 0.1], [0.3, 0.3, 0.2, 0.2]), mix([0.1, 0.7, 0.1, 0.1], [0.2, 0.3, 0.3, 0.2]),
          mix([0.1, 0.1, 0.7, 0.1], [0.2, 0.2, 0.3, 0.3]), mix([0.1, 0.1, 0.1, 0.7], [0.3, 0.2, 0.2, 0.3])]
    return torch.tensor(np.array(ys)).log()


def random_case(seed, N, K, C, scale, dtype):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(N, 1, C, generator=g, dtype=torch.float64) * scale
    logits = logits + torch.randn(N, K, C, generator=g, dtype=torch.float64) * scale / 2
    return logits.log_softmax(-1).to(dtype)


def run_case(name, lp, n, num_samples):
    dtype = lp.dtype
    cb = get_batchbald_batch(lp, n, num_samples, dtype=torch.double if dtype == torch.float64 else None)
    probs_N_C_K = lp.double().exp().permute(0, 2, 1).numpy()
    return dict(name=name, dtype=str(dtype).replace('torch.', ''), n=n, num_samples=num_samples,
                log_probs=lp.double().tolist(), picks=list(map(int, cb.indices)), scores=list(map(float, cb.scores)),
                baal_bald=BALD().compute_score(probs_N_C_K).tolist())


cases = [run_case('redux_mixture_example', mixture_example(), 4, 1000)]
for seed, (N, K, C, scale, n, num_samples, dtype) in enumerate([
        (50, 8, 3, 2.0, 5, 100, torch.float64), (80, 10, 4, 3.0, 4, 100, torch.float64),
        (60, 5, 2, 1.0, 6, 64, torch.float64), (100, 12, 10, 3.0, 3, 100, torch.float64),
        (120, 20, 5, 2.0, 4, 200, torch.float32), (40, 6, 6, 4.0, 3, 1000, torch.float32)]):
    cases.append(run_case(f'random_{seed}_N{N}_K{K}_C{C}_{str(dtype)[6:]}', random_case(seed, N, K, C, scale, dtype), n, num_samples))
meta = dict(generator='benchmarks/make_acquisition_fixtures.py', batchbald_redux=getattr(batchbald_redux, '__version__', '2.0.5'),
            baal=getattr(baal, '__version__', '?'), torch=torch.__version__)
OUT.parent.mkdir(parents=True, exist_ok=True)
OUT.write_text(json.dumps(dict(meta=meta, cases=cases)))
print(f"wrote {OUT} ({OUT.stat().st_size / 1e3:.0f} kB): " + ', '.join(f"{c['name']}: {c['picks']}" for c in cases))
