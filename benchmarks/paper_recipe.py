"""What one round of the BatchBALD paper's MNIST recipe costs, variant by variant, before planning runs of it.

    .venv-bench/bin/python -m benchmarks.paper_recipe --out benchmarks/results/mnist_paper_recipe

Each variant adds one difference between this project's MNIST recipe and the paper's (Kirsch et al. 2019) to the one
before it, and trains, scores and picks one BatchBALD round of 10 on seed 0 with `benchmarks.label_efficiency run`
(one thread, as the committed MNIST runs). The paper scores the whole remaining pool (58,976 images here, with 1,024
held out to stop on): where a variant scores a subset, the table also gives the round's scoring time scaled to the
whole pool from the measured seconds per item and sample. Writes `round_costs.csv`, `round_costs.md` (with the machine
and its load) and keeps each run's ledger under OUT/runs/.
"""
from __future__ import annotations
import argparse, json, os, sqlite3, time
from pathlib import Path

import pandas as pd

from benchmarks import label_efficiency as le
from fastai_active.demo import machine_info

OURS = ['--sampler', 'mc', '--mc-samples', '20', '--pool-subset', '10000', '--epochs', '10', '--epoch-items', '2048',
        '--lr', '3e-3']
EARLY = ['--valid-size', '1024', '--early-stop', '3', '--epochs', '30', '--epoch-items', '5056', '--schedule', 'constant',
         '--lr', '1e-3', '--opt', 'adam-torch']
VARIANTS = {  # name: (options after OURS, what it adds)
    'ours': ([], "Gal CNN (dropout in the head), fixed 10 epochs of 2,048, one-cycle at 3e-3, K=20, 10,000 of the pool"),
    'early_stop': (EARLY, "+ early stopping (patience 3 on 1,024 held-out images, at most 30 epochs of 5,056, Adam 1e-3)"),
    'body_dropout': (EARLY + ['--model', 'paper'], "+ the paper's CNN, dropout after each convolution too"),
    'k100': (EARLY + ['--model', 'paper', '--mc-samples', '100'], "+ K=100 consistent MC-dropout samples"),
}
FULL_POOL = 60000 - 1024 - 20  # MNIST's training images less the held-out and the initial labels


def round_costs(out:Path, variants:list[str], seed:int=0)->pd.DataFrame:
    rows = []
    for name in variants:
        opts, what = VARIANTS[name]
        args = ['run', '--dataset', 'mnist', '--strategies', 'batchbald', '--seeds', str(seed), '--initial', '20',
                '--per-round', '10', '--budget', '10', '--threads', '1', '--variant', name, '--out', str(out)] + OURS + opts
        start = time.perf_counter()
        le.main(args)
        wall = time.perf_counter() - start
        db, = (out/'runs').glob(f'mnist-batchbald-mc-{name}-seed{seed}.db')
        con = sqlite3.connect(db)
        h = [json.loads(r[0]) for r in con.execute('SELECT record FROM history ORDER BY round')]
        con.close()
        meta = json.loads(db.with_suffix('.json').read_text())
        r0 = h[0]
        n_scored = meta['pool_subset'] or FULL_POOL
        per_item_sample = r0['score_s'] / (n_scored * meta['mc_samples'])
        rows.append(dict(variant=name, adds=what, fit_s=r0['fit_s'], epochs=r0.get('epochs_run', meta['epochs']),
                         score_s=r0['score_s'], items_scored=n_scored, K=meta['mc_samples'], acquire_s=r0['acquire_s'],
                         score_s_whole_pool=per_item_sample * FULL_POOL * meta['mc_samples'],
                         accuracy_round0=r0['accuracy'], wall_s=wall))
    return pd.DataFrame(rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', required=True)
    ap.add_argument('--variants', nargs='+', default=list(VARIANTS), choices=list(VARIANTS))
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    df = round_costs(out, args.variants)
    df.to_csv(out/'round_costs.csv', index=False)
    show = df.drop(columns=['wall_s']).copy()
    for c in ('fit_s', 'score_s', 'acquire_s', 'score_s_whole_pool'): show[c] = show[c].round(1)
    show['accuracy_round0'] = show['accuracy_round0'].round(3)
    text = ("## One BatchBALD round of MNIST (seed 0, 20 initial labels, 10 acquired), variant by variant\n\n"
            + le.markdown_table(show, 3) + "\n\n`score_s_whole_pool`: the round's scoring scaled to all "
            f"{FULL_POOL:,} pool images from the measured seconds per item and sample.\n\n"
            f"Machine: {json.dumps(machine_info())}; load average at the start {load[0]:.2f}, at the end {os.getloadavg()[0]:.2f}.\n")
    (out/'round_costs.md').write_text(text)
    print(text)


if __name__ == '__main__': main()
