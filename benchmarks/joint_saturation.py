"""BatchBALD and the log K ceiling: copies picked into one batch on Repeated-digits, against the number of samples K.

K posterior samples tell apart at most log K nats (`I[y_B; w] <= H[w] = log K`); once a batch's joint mutual
information approaches it, the remaining picks are ranked by noise and near-copies of items already in the batch come
back. This benchmark measures it apart from training noise: for each seed and labelled-set size, one model (the
label-efficiency recipe: the demo's CNN, 10 epochs of at least 512 items, lr 1e-2, random labelled items) scores the
whole Repeated-digits pool with K_max consistent MC-dropout masks; the BatchBALD batch of `n` is then taken from the
first K masks for each K (the first K of K_max consistent masks are K consistent masks), and counted: picks that are a
copy of an image already in the same batch, the pick at which the joint MI passed 0.8 log K, and the seconds.

    python -m benchmarks.joint_saturation --seeds 0 1 2 3 4 --labelled 20 120 --ks 20 50 100 200 \
        --out benchmarks/results/joint_saturation
"""
from __future__ import annotations
import argparse, json, math, tempfile, time, warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmarks import label_efficiency as le
from fastai_active.acquisition.joint import batchbald, SATURATION
from fastai_active.loop.learner import ActiveLearner
from fastai_active.uncertainty.mc_dropout import MCDropout


def batch_stats(lp_N_K_C, pool, n, seed, n_unique):
    "Copies of an image already in the batch, the pick that passed SATURATION log K (0: none), final MI / log K, seconds"
    K = lp_N_K_C.shape[1]
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')   # the saturation warning: measured here from the scores
        cb = batchbald(lp_N_K_C, n, seed=seed)
    secs = time.perf_counter() - start
    images = (pool.to_ds(cb.idxs) % n_unique).tolist()
    copies = len(images) - len(set(images))
    passed = [m + 1 for m, s in enumerate(cb.scores.tolist()) if s > SATURATION * math.log(K)]
    return dict(copies=copies, saturated_at=passed[0] if passed else 0, mi_over_log_k=cb.scores[-1].item() / math.log(K),
                seconds=secs)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2, 3, 4])
    p.add_argument('--labelled', type=int, nargs='+', default=[20, 120], help="labelled-set sizes (random, balanced)")
    p.add_argument('--ks', type=int, nargs='+', default=[20, 50, 100, 200])
    p.add_argument('--n', type=int, default=10, help="batch size")
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--out', required=True)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for n_labelled in args.labelled:
                split, size, _ = le.make_split('repeated_digits', Path(tmp), f'sat-{seed}-{n_labelled}', seed, n_labelled)
                n_unique = split.ledger.n_items // le.REPEATS
                al = ActiveLearner(split, le.make_learner_for('repeated_digits', size), acquisition='batchbald',
                                   sampler=MCDropout(max(args.ks), seed=seed), epochs=10, lr=1e-2, pool_bs=512,
                                   dl_kwargs=dict(num_workers=0), seed=seed, show_progress=False)
                al.fit()
                pool = al._pool()
                lp = al.score(pool)
                accuracy = al.validate().get('accuracy', float('nan'))
                for K in args.ks:
                    row = dict(seed=seed, labelled=n_labelled, accuracy=accuracy, K=K,
                               **batch_stats(lp[:, :K], pool, args.n, seed, n_unique))
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    df = pd.DataFrame(rows)
    df.to_csv(out/'batches.csv', index=False)
    table = df.groupby('K').agg(batches=('copies', 'size'), copies_total=('copies', 'sum'),
                                batches_with_copies=('copies', lambda c: int((c > 0).sum())),
                                saturated_batches=('saturated_at', lambda s: int((s > 0).sum())),
                                saturated_at_median=('saturated_at', lambda s: float(np.median(s[s > 0])) if (s > 0).any() else float('nan')),
                                mi_over_log_k_median=('mi_over_log_k', 'median'), seconds_median=('seconds', 'median'))
    text = (f"BatchBALD batches of {args.n} on Repeated-digits from one K_max={max(args.ks)} MC-dropout pass per model; "
            f"seeds {args.seeds}, labelled {args.labelled}\n\n" + le.markdown_table(table.reset_index(), 2) + "\n")
    (out/'report.md').write_text(text)
    print(text)


if __name__ == '__main__': main()
