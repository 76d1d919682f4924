"""What a round costs in the workflows of the how-to notebooks (nbs/20_howto_image_folder, nbs/24_howto_dataframe,
nbs/26_howto_multilabel, nbs/27_howto_regression).

Usage: .venv/bin/python -m benchmarks.workflow_costs [--rounds 4] [--only TEXT] [--out benchmarks/results/workflow_costs.md]

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


customers = customer_table  # the generated customer table of nbs/24_howto_dataframe.ipynb


def image_folder(work, item_cache=2**30):
    digits = digits_folder(work/'digits')
    split = ActiveSplit(digits_block(), digits/'train', path=work/f'images{item_cache}.db', vocab=[str(i) for i in range(10)],
                        valid_items=get_image_files(digits/'test'), min_epoch_items=384, item_cache=item_cache)
    split.label_random(20, balanced=True, seed=0)
    al = ActiveLearner(split, digits_learner, epochs=6, lr=1e-2, dl_kwargs=dict(num_workers=0), seed=0, show_progress=False)
    return al, 10, lambda picked: [parent_label(f) for f in picked['item']]


def image_arrays(work):
    "The same digits images as `image_folder`, decoded into arrays up front (`ArraySplit`): the floor for the folder"
    from PIL import Image
    digits = digits_folder(work/'digits')
    files, valid = get_image_files(digits/'train'), get_image_files(digits/'test')
    read = lambda fs: np.stack([np.asarray(Image.open(f))[None] for f in fs])
    labels = [parent_label(f) for f in files]
    split = ArraySplit(read(files), labels, vocab=[str(i) for i in range(10)], path=work/'arrays.db', valid_x=read(valid),
                       valid_y=[parent_label(f) for f in valid], min_epoch_items=384)
    split.label_random(20, balanced=True, seed=0)
    al = ActiveLearner(split, digits_learner, epochs=6, lr=1e-2, seed=0, show_progress=False)
    return al, 10, lambda picked: [labels[i] for i in split.positions(picked.ds_idx)]


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


def tickets(work):
    "The multi-label tickets of nbs/26_howto_multilabel.ipynb: 600 rows, 8 features, 4 tags, an MLP with dropout"
    from fastai.data.all import DataBlock, TransformBlock, MultiCategoryBlock, ColReader
    from fastai.learner import Learner
    from fastai.losses import BCEWithLogitsLossFlat
    from fastai.metrics import accuracy_multi
    tags, feats = ['billing', 'bug', 'login', 'refund'], [f'f{i}' for i in range(8)]
    def make(n, seed, start=0):
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(n, 8)).astype('float32')
        Y = X @ np.random.default_rng(42).normal(size=(8, 4)) + rng.normal(0, .7, (n, 4)) > 1.0
        df = pd.DataFrame(X, columns=feats, index=pd.Index([f't{i:05d}' for i in range(start, start + n)], name='ticket'))
        df['tags'] = [' '.join(t for t, b in zip(tags, row) if b) for row in Y]
        return df
    truth, valid = make(600, 0), make(200, 1, 90_000)
    dblock = DataBlock(blocks=(TransformBlock, MultiCategoryBlock(vocab=tags)), get_x=lambda r: torch.tensor(r[feats].to_numpy(dtype='float32')),
                       get_y=ColReader('tags', label_delim=' '))
    split = ActiveSplit(dblock, truth.drop(columns='tags'), path=work/'tickets.db', vocab=tags, valid_items=valid, min_epoch_items=256)
    split.label({k: truth.tags[k].split() for k in truth.index[:30]}, source='initial')
    def learner(dls):
        model = torch.nn.Sequential(torch.nn.Linear(8, 64), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(64, 4))
        return Learner(dls, model, loss_func=BCEWithLogitsLossFlat(), metrics=accuracy_multi)
    al = ActiveLearner(split, learner, acquisition='powerbald', sampler=MCDropout(n_samples=10, seed=0), epochs=4, lr=1e-2,
                       dl_kwargs=dict(num_workers=0), seed=0, show_progress=False)
    return al, 12, lambda picked: [truth.tags[k].split() for k in picked.key]


def compounds(work, gaussian):
    "The regression of nbs/27_howto_regression.ipynb: MC dropout K=10 'epistemic_variance', or a Gaussian-head ensemble of 3"
    from fastai.data.all import DataBlock, TransformBlock, RegressionBlock
    from fastai.learner import Learner
    from fastai.losses import MSELossFlat
    from fastai.metrics import rmse
    rng = np.random.default_rng(0)
    X = rng.normal(size=(800, 8)).astype('float32')
    y = (np.sin(X @ np.random.default_rng(7).normal(size=8) / 2) * 3 + X[:, 1] + rng.normal(0, 1, 800) * (0.1 + 0.5 * (X[:, 0] > 1))).astype('float32')
    dblock = DataBlock(blocks=(TransformBlock, RegressionBlock()), get_x=lambda i: torch.tensor(X[i]), get_y=lambda i: float(y[i]))
    split = ActiveSplit(dblock, list(range(600)), path=work/f'compounds{gaussian}.db', valid_items=list(range(600, 800)), min_epoch_items=256)
    split.label_random(20, seed=0)
    nn = torch.nn
    def learner(dls):
        drop = [] if gaussian else [nn.Dropout(0.2)]
        model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), *drop, nn.Linear(64, 64), nn.ReLU(), *drop, nn.Linear(64, 2 if gaussian else 1))
        return Learner(dls, model, loss_func=GaussianNLLLossFlat() if gaussian else MSELossFlat(), metrics=gaussian_rmse if gaussian else rmse)
    al = ActiveLearner(split, learner, acquisition='powervariance' if gaussian else 'epistemic_variance',
                       sampler=DeepEnsemble(3) if gaussian else MCDropout(n_samples=10, seed=0), epochs=5, lr=5e-3,
                       dl_kwargs=dict(num_workers=0), seed=0, show_progress=False)
    return al, 15, lambda picked: [float(y[i]) for i in picked['item']]


WORKFLOWS = {
    'image folder, a person (digits PNGs, CNN, 1 pass, power-entropy)': image_folder,
    'image folder without the item cache (item_cache=None)': lambda w: image_folder(w, None),
    'the same images as arrays (ArraySplit)': image_arrays,
    'DataFrame, a person (tabular_learner, MC dropout K=8, BatchBALD)': lambda w: dataframe(w, MCDropout(n_samples=8, seed=0), 'batchbald'),
    'DataFrame, a person (3 tabular_learners, ensemble, BALD)': lambda w: dataframe(w, DeepEnsemble(n_members=3), 'bald'),
    'multi-label table, a person (MLP, MC dropout K=10, power-BALD summed over 4 tags)': tickets,
    'regression, a person (MLP, MC dropout K=10, epistemic variance)': lambda w: compounds(w, False),
    'regression, a person (3 Gaussian-head MLPs, ensemble, power-variance)': lambda w: compounds(w, True),
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
    ap.add_argument('--only', default='', help="run the workflows whose name contains this text")
    args = ap.parse_args()
    torch.manual_seed(0)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for name, make in WORKFLOWS.items():
            if args.only not in name: continue
            rows.append(run(name, make, args.rounds, Path(d)))
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows).round(3)
    lines = ['| ' + ' | '.join(table.columns) + ' |', '|' + '---|' * len(table.columns)]
    lines += ['| ' + ' | '.join(str(v) for v in r) + ' |' for r in table.itertuples(index=False)]
    text = (f"Median per round over {args.rounds} rounds (seconds; wall-clock unless CPU; {os.cpu_count()} cores, "
            f"torch threads {torch.get_num_threads()}):\n\n" + '\n'.join(lines) + '\n')
    by = {r['workflow']: r['round_wall_s'] for r in rows}
    folder, arrays = by.get(next(iter(WORKFLOWS))), by.get('the same images as arrays (ArraySplit)')
    if folder and arrays: text += f"\nImage folder round / arrays round: {folder / arrays:.2f}x\n"
    text += f"Machine: {os.cpu_count()} CPU cores, load average at the end {os.getloadavg()[0]:.2f}.\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
