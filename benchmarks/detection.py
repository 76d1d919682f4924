"""Label efficiency of object detection: mAP@0.5 learning curves of box acquisition strategies against random.

    python -m benchmarks.detection run --seeds 0 1 2 3 4 --out benchmarks/results/detection
    python -m benchmarks.detection report --out benchmarks/results/detection

The data is generated, never downloaded: `datasets.detection_folder` writes a pool of 96-128 px images with 0-6
shapes of three classes on cluttered backgrounds, and a second folder of other images as the fixed test set, each
with a COCO boxes file, read the way a user's folder is (`coco_get_y`, fastai's `ImageBlock`, `BBoxBlock`,
`BBoxLblBlock`). Every strategy trains the same detector with the same recipe (`detector.detection_learner`, a small
FCOS from scratch, `fit_one_cycle`), from the same balanced initial labels per seed; the oracle reveals the held boxes.
Each (strategy, seed) keeps its labels and history in its own ledger under OUT/runs/: a killed run goes on where it
stopped when the same command is run again. `report` draws the curves and writes the area under each curve paired
with random over seeds, the mAP at the end, the time per round, and the ceiling (every pool image labelled,
`ceiling`).
"""
from __future__ import annotations
import argparse, json, os, platform, time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from fastai.vision.all import DataBlock, ImageBlock, BBoxBlock, BBoxLblBlock, Resize, get_image_files
from fastprogress.fastprogress import progress_bar

from fastai_active.datasets import detection_folder, DETECTION_SHAPES
from fastai_active.data.boxes import BoxSplit, coco_get_y, read_coco
from fastai_active.detector import detection_learner
from fastai_active.uncertainty.detection import DetectionSampler
from fastai_active.loop.learner import ActiveLearner, SimulatedOracle
from fastai_active.loop.curves import plot_learning_curves
from benchmarks.label_efficiency import check_resume, run_histories, area_under_curves, common_range, markdown_table

def make_sampler(strategy:str, mc_samples:int, min_conf:float)->DetectionSampler:
    "The sampler a strategy reads: MC dropout for BALD and localisation, the flip for 'flip', one pass otherwise"
    if strategy.endswith('flip'): return DetectionSampler(flip=True, min_conf=min_conf)
    if 'bald' in strategy or 'localisation' in strategy: return DetectionSampler(n_samples=mc_samples, min_conf=min_conf)
    return DetectionSampler(min_conf=min_conf)   # strategies of the dense maps get maps: `DetectionSampler.for_acquisition`


def machine()->str:
    cpu = next((l.split(':', 1)[1].strip() for l in Path('/proc/cpuinfo').read_text().splitlines()
                if l.startswith('model name')), platform.processor()) if Path('/proc/cpuinfo').exists() else platform.processor()
    return f"{cpu}, {os.cpu_count()} cores, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"


def folders(data:Path, n_pool:int, n_test:int):
    "The pool and test folders (written once, reused), and the test images with their labels"
    pool = detection_folder(data/f'pool{n_pool}', n_pool, seed=0)
    test = detection_folder(data/f'test{n_test}', n_test, seed=1)
    files, labels, _ = read_coco(test/'annotations.json')
    label_of = dict(zip(files, labels))
    test_items = get_image_files(test/'images')
    return pool, test_items, [label_of[f.name] for f in test_items]


def make_split(args, name:str, seed:int)->BoxSplit:
    pool, test_items, test_labels = folders(Path(args.data), args.pool, args.test)
    dblock = DataBlock(blocks=(ImageBlock, BBoxBlock, BBoxLblBlock), get_items=get_image_files,
                       get_y=coco_get_y(pool/'annotations.json'), n_inp=1, item_tfms=Resize(args.size, method='squish'))
    return BoxSplit(dblock, pool/'images', path=Path(args.out)/'runs'/f'{name}.db', vocab=DETECTION_SHAPES,
                    valid_items=test_items, valid_labels=test_labels, min_epoch_items=args.epoch_items, seed=seed)


def active_learner(args, split, strategy:str, seed:int)->ActiveLearner:
    return ActiveLearner(split, lambda dls: detection_learner(dls), acquisition=strategy,
                         sampler=make_sampler(strategy, args.mc_samples, args.min_conf), oracle=SimulatedOracle.from_split(split),
                         epochs=args.epochs, lr=args.lr, bs=args.bs, pool_bs=64, dl_kwargs=dict(num_workers=0), seed=seed,
                         show_progress=False)


def meta_of(args, strategy, seed)->dict:
    return dict(strategy=strategy, seed=seed, pool=args.pool, test=args.test, size=args.size, initial=args.initial,
                per_round=args.per_round, epochs=args.epochs, epoch_items=args.epoch_items, lr=args.lr, bs=args.bs,
                mc_samples=args.mc_samples, min_conf=args.min_conf)


def run(args):
    out = Path(args.out)
    (out/'runs').mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, args.threads))
    for seed in args.seeds:
        for strategy in args.strategies:
            name = f"{strategy}-seed{seed}"
            meta = meta_of(args, strategy, seed)
            check_resume(out/'runs'/f'{name}.json', meta)
            split = make_split(args, name, seed)
            if split.ledger.n_labelled == 0: split.label_random(args.initial, balanced=True, seed=seed)
            (out/'runs'/f'{name}.json').write_text(json.dumps({**meta, 'machine': machine()}))
            al = active_learner(args, split, strategy, seed)
            start = time.perf_counter()
            h = al.loop(budget=args.budget, n_per_round=args.per_round)
            print(f"{name}: mAP@0.5 {h.map50.iloc[0]:.3f} -> {h.map50.iloc[-1]:.3f} at {h.n_acquired.iloc[-1]} acquired "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)


def ceiling(args):
    "mAP@0.5 with every pool image labelled, the same recipe and test set, per seed"
    out = Path(args.out)
    torch.set_num_threads(max(1, args.threads))
    rows = []
    for seed in args.seeds:
        split = make_split(args, f'ceiling-seed{seed}', seed)
        if split.ledger.n_labelled < len(split):
            split.ledger.label(split.pool().ds_idxs, split.true_labels(split.pool().ds_idxs), source='initial')
        al = active_learner(args, split, 'random', seed)
        start = time.perf_counter()
        al.fit()
        rows.append(dict(seed=seed, n_labelled=split.ledger.n_labelled, **al.validate(),
                         fit_s=time.perf_counter() - start, machine=machine()))
        print(rows[-1], flush=True)
        done = pd.read_csv(out/'ceiling.csv') if (out/'ceiling.csv').exists() else pd.DataFrame(columns=['seed'])
        both = pd.concat([done[done.seed != seed], pd.DataFrame(rows[-1:])]).sort_values('seed')   # other seeds' rows kept
        both.to_csv(out/'ceiling.csv', index=False)


def _machines(df:pd.DataFrame)->str:
    "The machines of the runs and the range of their 1-minute load averages at the start of each run"
    m = df.drop_duplicates(['strategy', 'seed']).machine.dropna().str.extract(r'^(.*), load average ([\d.]+)')
    return (f"Machine: {'; '.join(sorted(set(m[0])))}; 1-minute load average at the start of a run "
            f"{m[1].astype(float).min():.1f} to {m[1].astype(float).max():.1f}")


def report(args):
    import matplotlib
    matplotlib.use('Agg')
    out = Path(args.out)
    df = run_histories(out)
    df.drop(columns=[c for c in ('class_counts', 'machine') if c in df]).to_csv(out/'curves.csv', index=False)
    curves = {s: [r for _, r in g.groupby('seed')] for s, g in df.groupby('strategy', sort=False)}
    ax = plot_learning_curves(curves, metric='map50', x='n_acquired',
                              title="generated shapes: test mAP@0.5 (median, quartiles over seeds)")
    ax.figure.savefig(out/'learning_curves.png', dpi=120, bbox_inches='tight')
    auc = area_under_curves(df.assign(accuracy=df.map50)).rename(columns={'auc_median': 'mean_map50_median'})
    last = df[df.n_acquired == common_range(df)].groupby('strategy').map50.median().rename(f'map50_at_{common_range(df)}')
    per_round = df.assign(round_s=df.fit_s + df.valid_s + df.score_s.fillna(0) + df.acquire_s.fillna(0))
    times = per_round[per_round.score_s.notna()].groupby('strategy')[['fit_s', 'score_s', 'round_s']].median()
    table = auc.set_index('strategy').join(last).join(times).reset_index()
    table.to_csv(out/'auc.csv', index=False)
    text = (f"## Generated shapes: area under the mAP@0.5 curve (mean over rounds), vs random, paired over seeds\n\n"
            f"Up to {common_range(df)} acquired labels after {int(df.n_labelled.min())} initial; seconds per round are medians "
            f"(fit, scoring the pool, whole round). {_machines(df)}.\n\n" + markdown_table(table, 4) + "\n")
    if (out/'ceiling.csv').exists():
        c = pd.read_csv(out/'ceiling.csv')
        text += (f"\nCeiling, every one of the {int(c.n_labelled.iloc[0])} pool images labelled: mAP@0.5 median "
                 f"{c.map50.median():.3f} over {len(c)} seed(s).\n")
    (out/'report.md').write_text(text)
    print(text)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest='cmd', required=True)
    for name in ('run', 'ceiling'):
        r = sub.add_parser(name)
        r.add_argument('--strategies', nargs='+', default=['random', 'box_entropy_sum', 'box_entropy_mean', 'box_entropy_max',
                                                          'box_bald_sum', 'pixel_local_bald', 'flip', 'powerbox_entropy_sum',
                                                          'diverse_box_entropy_sum'])
        r.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2, 3, 4])
        r.add_argument('--pool', type=int, default=600, help="images in the pool")
        r.add_argument('--test', type=int, default=200, help="images in the fixed test set")
        r.add_argument('--size', type=int, default=128, help="side the images are squished to")
        r.add_argument('--initial', type=int, default=20)
        r.add_argument('--per-round', type=int, default=20)
        r.add_argument('--budget', type=int, default=120)
        r.add_argument('--epochs', type=int, default=12)
        r.add_argument('--epoch-items', type=int, default=320, help="repeat the labelled images to at least this many per epoch")
        r.add_argument('--lr', type=float, default=2e-3)
        r.add_argument('--bs', type=int, default=16)
        r.add_argument('--mc-samples', type=int, default=8)
        r.add_argument('--min-conf', type=float, default=0.2, help="the least confidence of a box the box scores see")
        r.add_argument('--threads', type=int, default=1)
        r.add_argument('--data', default=str(Path.home()/'.cache'/'fastai_active'/'detection'), help="where the generated folders go")
        r.add_argument('--out', required=True)
    q = sub.add_parser('report')
    q.add_argument('--out', required=True)
    args = p.parse_args(argv)
    {'run': run, 'ceiling': ceiling, 'report': report}[args.cmd](args)


if __name__ == '__main__': main()
