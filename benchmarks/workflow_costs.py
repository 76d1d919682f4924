"""What a round costs in the workflows of the how-to notebooks (nbs/20_howto_image_folder, nbs/24_howto_dataframe).

Usage: .venv/bin/python benchmarks/workflow_costs.py [--rounds 4] [--out benchmarks/results/workflow_costs.md]

Each workflow runs as a person's project would (fit, evaluate, acquire, answer, label) for `--rounds` rounds, and the
script prints the median per round of the history's wall-clock `fit_s`, `score_s`, `acquire_s`, the whole round
(wall and CPU seconds of this process), and the load average of the machine while it ran (the machine is shared).
"""
import argparse, os, tempfile, time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from fastai.vision.all import get_image_files, parent_label
from fastai.tabular.all import TabularPandas, Categorify, FillMissing, Normalize, tabular_learner, tabular_config, accuracy

from fastai_active.all import *


def customers(n, seed, start=0):
    "The generated customer table of nbs/24_howto_dataframe.ipynb"
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({'tenure': rng.gamma(2, 12, n), 'spend': rng.lognormal(3, .6, n),
                       'plan': rng.choice(['basic', 'plus', 'pro'], n, p=[.5, .3, .2])},
                      index=pd.Index([f'c{i:05d}' for i in range(start, start + n)], name='customer'))
    df.loc[rng.random(n) < .08, 'spend'] = np.nan
    risk = -df.tenure / 10 + (df.plan == 'basic') * 1.5 + np.log(df.spend.fillna(20)) / 2 - 1
    df['left'] = (risk + rng.normal(0, .5, n) > 0.5).astype(int)
    return df


def image_folder(work):
    digits = digits_folder(work/'digits')
    split = ActiveSplit(digits_block(), digits/'train', path=work/'images.db', vocab=[str(i) for i in range(10)],
                        valid_items=get_image_files(digits/'test'), min_epoch_items=384)
    split.label_random(20, balanced=True, seed=0)
    al = ActiveLearner(split, digits_learner, epochs=6, lr=1e-2, dl_kwargs=dict(num_workers=0), seed=0, show_progress=False)
    return al, 10, lambda picked: [parent_label(f) for f in picked['item']]


def dataframe(work, sampler, acquisition):
    truth, valid = customers(1000, seed=0), customers(200, seed=1, start=90_000)
    table = truth.assign(left=np.nan)
    to = TabularPandas(table, procs=[Categorify, FillMissing, Normalize], cat_names=['plan'], cont_names=['tenure', 'spend'],
                       y_names='left', do_setup=False)
    split = ActiveSplit(to, path=work/f'{acquisition}.db', vocab=[0, 1], valid_items=valid, min_epoch_items=256)
    split.label(truth.left[:24].to_dict(), source='initial')
    make = lambda dls: tabular_learner(dls, layers=[64, 32], config=tabular_config(ps=0.2, embed_p=0.1), metrics=accuracy)
    al = ActiveLearner(split, make, acquisition=acquisition, sampler=sampler, epochs=8, lr=1e-2,
                       dl_kwargs=dict(num_workers=0), seed=0, show_progress=False)
    return al, 8, lambda picked: truth.left[picked.key].tolist()


WORKFLOWS = {
    'image folder, a person (digits PNGs, CNN, 1 pass, power-entropy)': image_folder,
    'DataFrame, a person (tabular_learner, MC dropout K=8, BatchBALD)': lambda w: dataframe(w, MCDropout(n_samples=8, seed=0), 'batchbald'),
    'DataFrame, a person (3 tabular_learners, ensemble, BALD)': lambda w: dataframe(w, DeepEnsemble(n_members=3), 'bald'),
}


def run(name, make, rounds, work):
    al, n, answer = make(work)
    cpu, wall, load = [], [], []
    for _ in range(rounds):
        c, w = time.process_time(), time.perf_counter()
        al.fit()
        al.evaluate()
        picked = al.acquire(n)
        al.label(picked.assign(label=answer(picked)), annotator='bench')
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
        load.append(os.getloadavg()[0])
    h = al.history
    return dict(workflow=name, pool=len(al.split.pool()), per_round=n, fit_s=h.fit_s.median(), score_s=h.score_s.median(),
                acquire_s=h.acquire_s.median(), round_wall_s=float(np.median(wall)), round_cpu_s=float(np.median(cpu)),
                load_avg=float(np.median(load)))


if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--rounds', type=int, default=4)
    ap.add_argument('--out', default='benchmarks/results/workflow_costs.md')
    args = ap.parse_args()
    torch.manual_seed(0)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for name, make in WORKFLOWS.items():
            rows.append(run(name, make, args.rounds, Path(d)))
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows).round(2)
    lines = ['| ' + ' | '.join(table.columns) + ' |', '|' + '---|' * len(table.columns)]
    lines += ['| ' + ' | '.join(str(v) for v in r) + ' |' for r in table.itertuples(index=False)]
    text = (f"Median per round over {args.rounds} rounds (seconds; wall-clock unless CPU; {os.cpu_count()} cores, "
            f"torch threads {torch.get_num_threads()}):\n\n" + '\n'.join(lines) + '\n')
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
