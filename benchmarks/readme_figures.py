"""The figures README.md, benchmarks/README.md and two docs pages quote, recomputed from the committed result files.

    python benchmarks/readme_figures.py           # check: exit 1 and name each quoted figure its file no longer gives
    python benchmarks/readme_figures.py --write   # regenerate the generated blocks from the files, then README.md
    python benchmarks/readme_figures.py --list    # each figure: where it is quoted, its file, the text it expects
    python benchmarks/readme_figures.py --sources # the result files, one a line

The docs pages are notebooks whose Markdown cells hold the sections that moved out of the README:
nbs/28_explain_tour.ipynb (A tour of the library) and nbs/34_results_overview.ipynb (Results overview).

Three kinds of figure. A *block* is generated whole: the text between `<!-- figures:NAME -->` and
`<!-- /figures:NAME -->` (README.md's blocks live in nbs/index.ipynb, from which .ci/readme.py writes README.md; a
notebook page's in its own Markdown cells).
A *quote* is a phrase in running prose, recomputed from its file and looked for in the document (line breaks and
runs of spaces count as one space). *Cells* of a hand-written table are read back and compared by value, to the
digits they show. Either way the document says what the file says, or the check fails. `tests/test_figures.py` runs
the check; nothing here trains a model, and nothing is read but `benchmarks/results/` and, for two figures, the
saved outputs of `nbs/30_uncertainty_vs_error.ipynb`.
"""
from __future__ import annotations
import argparse, json, math, re, subprocess, sys, textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
RESULTS = 'benchmarks/results'
README, BENCH_README = 'README.md', 'benchmarks/README.md'
# the docs pages the README's longer sections moved to (their Markdown cells are the text checked)
TOUR, OVERVIEW = 'nbs/28_explain_tour.ipynb', 'nbs/34_results_overview.ipynb'


@dataclass
class Figure:
    doc: str          # the document that quotes it, relative to the repository root
    name: str
    sources: tuple    # the result files it is computed from, relative to benchmarks/results
    text: Callable    # root -> the text (or texts, or `Cells`) the document must hold
    block: bool = False


FIGURES: list[Figure] = []

def figure(doc:str|tuple, name:str, *sources:str, block:bool=False):
    "Register `fn(root)->str` as a figure quoted in `doc` (or in each of several docs)"
    def register(fn):
        for d in (doc if isinstance(doc, tuple) else (doc,)): FIGURES.append(Figure(d, name, sources, fn, block))
        return fn
    return register

def _read_csv(root:Path, source:str)->pd.DataFrame: return pd.read_csv(root/RESULTS/source)
def _f2(x:float)->str: return f"{x:.2f}".replace('-0.00', '0.00')
def _signed(x:float, digits:int=3)->str: return f"{x:+.{digits}f}"
def _p(p:float)->str: return f"{p:.2f}" if p >= 0.095 else f"{p:.1g}"


# --- the demo (`make demo` writes benchmarks/results/demo/) --------------------------------------------------

def demo_table(root:Path)->pd.DataFrame:
    "The demo's median test accuracy by number of labels, recomputed from every run in `results.csv`"
    df = _read_csv(root, 'demo/results.csv')
    return df.pivot_table(index='n_labelled', columns='strategy', values='accuracy', aggfunc='median')[['entropy', 'random']]

@figure(OVERVIEW, 'demo', 'demo/results.csv', 'demo/run.json', block=True)
def demo_block(root:Path)->str:
    run = json.loads((root/RESULTS/'demo'/'run.json').read_text())
    s, e = run['load_average_start'], run['load_average_end']
    table = demo_table(root)
    df = _read_csv(root, 'demo/results.csv')
    per_run = df[['fit_s', 'valid_s', 'score_s', 'acquire_s']].fillna(0).sum(axis=1).groupby([df.strategy, df.seed]).sum()
    lines = [f"The recorded run (`benchmarks/results/demo/`: `results.csv` every run, `run.json` the time and the "
             f"machine; finished {run['date']}) took {run['wall_s']:.0f} s on {run['cpu_count']} CPU cores "
             f"({run['cpu']}, {run['torch_threads']} torch threads) shared with other jobs: load average {s[0]:.2f} at "
             f"the start, {e[0]:.2f} at the end. Its {len(per_run)} runs took {per_run.min():.0f} to {per_run.max():.0f} s "
             f"each (fit, scoring and acquisition) as the load changed: the time says more about the machine's load than "
             f"about the library. It printed:"]
    lines = textwrap.wrap(lines[0], width=116, break_long_words=False, break_on_hyphens=False) + ['',
             '| labels | entropy | random |', '|---:|---:|---:|']
    lines += [f"| {n} | {r.entropy:.3f} | {r.random:.3f} |" for n, r in table.iterrows()]
    return '\n'.join(lines)


# --- label efficiency (benchmarks/label_efficiency.py) ---------------------------------------------------------

LE_DATASETS = {'digits': 'digits', 'Repeated-digits': 'repeated_digits', 'MNIST-1D, MLP': 'mnist1d', 'MNIST-1D, CNN': 'mnist1d_cnn'}
LE_ROWS = {'power-entropy, one deterministic pass (the default)': 'powerentropy (single)',
           'top-k entropy, one deterministic pass': 'entropy (single)', 'BALD, MC dropout': 'bald (mc)',
           'BatchBALD, MC dropout': 'batchbald (mc)', 'PowerBALD, MC dropout': 'powerbald (mc)'}

@figure((README, OVERVIEW), 'label_efficiency_auc', *(f'{d}/auc.csv' for d in LE_DATASETS.values()), block=True)
def label_efficiency_block(root:Path)->str:
    aucs = {name: _read_csv(root, f'{d}/auc.csv').set_index('strategy') for name, d in LE_DATASETS.items()}
    lines = ['| strategy | ' + ' | '.join(LE_DATASETS) + ' |', '|---|' + '---|' * len(LE_DATASETS)]
    for label, strategy in LE_ROWS.items():
        cells = [f"{_signed(a.loc[strategy, 'vs_random_median'])} ({_p(a.loc[strategy, 'paired_t_p'])})" for a in aucs.values()]
        lines.append(f"| {label} | " + ' | '.join(cells) + ' |')
    return '\n'.join(lines)

@figure(BENCH_README, 'paper_round_costs', 'mnist_paper_recipe/round_costs.csv', block=True)
def paper_round_costs(root:Path)->str:
    "One BatchBALD round of MNIST per step toward the paper's recipe (`python -m benchmarks.paper_recipe`)"
    df = _read_csv(root, 'mnist_paper_recipe/round_costs.csv')
    lines = ['| variant | adds | fit s (epochs) | scoring s (items x K) | picking s | scoring s, whole pool | accuracy, 20 labels |',
             '|---|---|---|---|---|---|---|']
    for r in df.itertuples():
        lines.append(f"| {r.variant} | {r.adds} | {r.fit_s:.0f} ({r.epochs}) | {r.score_s:.0f} ({r.items_scored:,} x {r.K}) | "
                     f"{r.acquire_s:.1f} | {r.score_s_whole_pool:,.0f} | {r.accuracy_round0:.3f} |")
    return '\n'.join(lines)

PAPER_PUBLISHED = {('batchbald', '90%'): '80', ('batchbald', '95%'): '190', ('random', '90%'): '255', ('random', '95%'): '835',
                   ('bald', '90%'): '110', ('bald', '95%'): '240'}

@figure(BENCH_README, 'paper_recipe_reach', 'mnist_paper/labels_to_reach.csv', block=True)
def paper_recipe_reach(root:Path)->str:
    "Labels to 90% / 95% under the paper's training and model (`results/mnist_paper/`), beside the published figures"
    df = _read_csv(root, 'mnist_paper/labels_to_reach.csv')
    lines = ['| strategy | target | acquired: median [q25, q75], runs that reached it | published (Kirsch et al. 2019) |',
             '|---|---|---|---|']
    for r in df.itertuples():
        lines.append(f"| {r.strategy} | {r.target} | {_reach(root, 'mnist_paper', r.strategy, r.target, runs=True)} | "
                     f"{PAPER_PUBLISHED.get((r.strategy, r.target), '')} |")
    return '\n'.join(lines)

DETECTION_ROWS = {'random': 'random', 'box_entropy_sum': 'box entropy, summed over boxes',
                  'box_entropy_mean': 'box entropy, mean over boxes', 'box_entropy_max': 'box entropy, max over boxes',
                  'powerbox_entropy_sum': 'box entropy summed, power batch', 'box_bald_sum': 'box BALD summed, MC dropout (K=8)',
                  'pixel_local_bald': 'pixel-level local BALD (Aghdam et al.), MC dropout (K=8)',
                  'flip': 'flip inconsistency, summed',
                  'diverse_box_entropy_sum': 'box entropy summed among 5n k-means candidates of the embeddings (diversity hybrid)'}

@figure(BENCH_README, 'detection_auc', 'detection/auc.csv', 'detection/ceiling.csv', block=True)
def detection_auc(root:Path)->str:
    "Object detection: the mean mAP@0.5 over the rounds against random, per strategy (`python -m benchmarks.detection report`)"
    df = _read_csv(root, 'detection/auc.csv').set_index('strategy')
    end = next(c for c in df.columns if c.startswith('map50_at_'))
    lines = [f"| strategy | mean mAP@0.5 over the rounds (median over seeds) | vs random: median difference (paired t p) | seeds | "
             f"mAP@0.5 at {end[len('map50_at_'):]} acquired | seconds a round: fit, scoring (medians) |", '|---|---|---|---|---|---|']
    for strategy, label in DETECTION_ROWS.items():
        if strategy not in df.index: continue
        r = df.loc[strategy]
        vs = '' if strategy == 'random' or pd.isna(r.get('vs_random_median')) else _signed(r['vs_random_median'])
        if vs and not pd.isna(r.get('paired_t_p', float('nan'))): vs += f" ({_p(r['paired_t_p'])})"
        seeds = '' if pd.isna(r.get('seeds', float('nan'))) else str(int(r['seeds']))
        lines.append(f"| {label} | {r['mean_map50_median']:.3f} | {vs} | {seeds} | {r[end]:.3f} | {r['fit_s']:.0f}, {r['score_s']:.0f} |")
    c = _read_csv(root, 'detection/ceiling.csv')
    lines.append(f"| every one of the {int(c.n_labelled.iloc[0])} pool images labelled (the ceiling) | | | {len(c)} | "
                 f"{c.map50.median():.3f} | {c.fit_s.median():.0f}, |")
    return '\n'.join(lines)

MODEL_ROWS = [('BatchBALD', 'mnist_paper_ablation', 'batchbald [body_dropout]', 'batchbald'),
              ('BALD', 'mnist_paper_model', 'bald', 'bald'), ('power-entropy (MC mean)', 'mnist_paper_model', 'powerentropy', None),
              ('random', 'mnist_paper_model', 'random', 'random')]

def _round_s(root:Path, d:str, strategy:str)->float:
    "Median seconds of an acquisition round (fit, validation, scoring, picking) over every round of every seed"
    c = _curves(root, d)
    c = c[(c.strategy == strategy) & (c['round'] > 0)]
    return float((c.fit_s + c.valid_s + c.score_s.fillna(0) + c.acquire_s.fillna(0)).median())

@figure(BENCH_README, 'paper_model_rows', 'mnist_paper_ablation/labels_to_reach.csv', 'mnist_paper_model/labels_to_reach.csv',
        'mnist_paper_ablation/curves.csv', 'mnist_paper_model/curves.csv', block=True)
def paper_model_rows(root:Path)->str:
    "Every strategy under the recipe that reproduces the paper's BatchBALD (its CNN, our training), beside the published figures"
    lines = ['| strategy | to 90%: median [q25, q75], runs | to 95% | published (Kirsch et al. 2019), 90% / 95% | s a round (median) |',
             '|---|---|---|---|---|']
    for label, d, strategy, published in MODEL_ROWS:
        pub = f"{PAPER_PUBLISHED[(published, '90%')]} / {PAPER_PUBLISHED[(published, '95%')]}" if published else '-'
        lines.append(f"| {label} | {_reach(root, d, strategy, '90%', runs=True)} | {_reach(root, d, strategy, '95%', runs=True)} | "
                     f"{pub} | {_round_s(root, d, strategy):.0f} |")
    return '\n'.join(lines)

@figure(BENCH_README, 'paper_model_prose', 'mnist_paper_ablation/labels_to_reach.csv', 'mnist_paper_model/labels_to_reach.csv',
        'mnist_paper_model/auc.csv', 'mnist_paper_model/curves.csv', block=True)
def paper_model_prose(root:Path)->str:
    "The paper's rows in words: medians beside the published figures, BatchBALD against BALD at 95%, the areas against random"
    m = {(label, t): _reach(root, d, s, t, quartiles=False) for label, d, s, _ in MODEL_ROWS for t in ('90%', '95%')}
    median95 = {label: _read_csv(root, f'{d}/labels_to_reach.csv').set_index(['strategy', 'target']).loc[(s, '95%'), 'median']
                for label, d, s, _ in MODEL_ROWS[:2]}   # NaN where no run reached it
    pub = lambda s: f"{PAPER_PUBLISHED[(s, '90%')]} / {PAPER_PUBLISHED[(s, '95%')]}"
    auc = _read_csv(root, 'mnist_paper_model/auc.csv').set_index('strategy')
    curves = _curves(root, 'mnist_paper_model')
    seeds = lambda df, s: df[df.strategy == s].seed.nunique()
    bb_seeds = seeds(_curves(root, 'mnist_paper_ablation'), 'batchbald [body_dropout]')
    lead = ('BatchBALD needs fewer labels than BALD to 95%' if median95['BatchBALD'] < median95['BALD']
            else 'BatchBALD does not need fewer labels than BALD to 95%')
    text = (f"Medians of acquired labels to 90% / 95%, against the paper's runs: BatchBALD {m[('BatchBALD', '90%')]} / "
            f"{m[('BatchBALD', '95%')]} (published {pub('batchbald')}), BALD {m[('BALD', '90%')]} / {m[('BALD', '95%')]} "
            f"(published {pub('bald')}), power-entropy {m[('power-entropy (MC mean)', '90%')]} / "
            f"{m[('power-entropy (MC mean)', '95%')]}, random {m[('random', '90%')]} / {m[('random', '95%')]} (published "
            f"{pub('random')}: our training is stronger). {lead} ({m[('BatchBALD', '95%')]} against {m[('BALD', '95%')]}; "
            f"published 190 against 240). Area under the curve up to {_common_range(curves)} acquired (the range every run "
            f"covers), against random, paired over the {int(auc.loc['bald', 'seeds'])} seeds: BALD "
            f"{_signed(auc.loc['bald', 'vs_random_median'])} (paired t p = {auc.loc['bald', 'paired_t_p']:.3f}), power-entropy "
            f"{_signed(auc.loc['powerentropy', 'vs_random_median'])} (p = {auc.loc['powerentropy', 'paired_t_p']:.3f}) "
            f"(`results/mnist_paper_model/report.md`). Seeds: BatchBALD {bb_seeds}, BALD {seeds(curves, 'bald')}, "
            f"power-entropy {seeds(curves, 'powerentropy')}, random {seeds(curves, 'random')}.")
    return textwrap.fill(text, 118)

ABLATION_ROWS = [('the default recipe (fixed epochs, the Gal CNN: dropout in the head only)', 'mnist_consistent', 'batchbald'),
                 ("+ the paper's training alone (Adam 1e-3, early stopping on 1,024 held-out images)", 'mnist_paper_ablation', 'batchbald [early_stop]'),
                 ("+ the paper's CNN alone (dropout after each convolution too)", 'mnist_paper_ablation', 'batchbald [body_dropout]'),
                 ('+ both: the paper\'s training and model', 'mnist_paper', 'batchbald')]

@figure(BENCH_README, 'paper_ablation', 'mnist_consistent/labels_to_reach.csv', 'mnist_paper_ablation/labels_to_reach.csv',
        'mnist_paper/labels_to_reach.csv', block=True)
def paper_ablation(root:Path)->str:
    "BatchBALD (K=20, 10,000-item subset) on MNIST: which of the paper's two differences moves it to the published figures"
    lines = ['| BatchBALD with | to 90%: median [q25, q75], runs | to 95% |', '|---|---|---|']
    for label, d, strategy in ABLATION_ROWS:
        lines.append(f"| {label} | {_reach(root, d, strategy, '90%', runs=True)} | {_reach(root, d, strategy, '95%', runs=True)} |")
    lines.append(f"| published (Kirsch et al. 2019) | {PAPER_PUBLISHED[('batchbald', '90%')]} | {PAPER_PUBLISHED[('batchbald', '95%')]} |")
    return '\n'.join(lines)

@figure(BENCH_README, 'cold start on MNIST: classes covered', 'cold_start_mnist/cold_start.csv')
def cold_start_mnist_classes(root):
    c = _read_csv(root, 'cold_start_mnist/cold_start.csv')
    k = c[(c.strategy == 'kmeans') & (c.n == 20)]
    return f"on MNIST it covered all 10 classes on {int((k.classes_labelled == 10).sum())} of {len(k)} seeds"

FORTY_ROWS = {'kmeans cold start, powerentropy + fixmatch-align final fit [mu7]':
                  '20 by k-means cold start, 20 by power-entropy in supervised rounds, then one FixMatch fit',
              'random + fixmatch-align [mu7]': '40 balanced random (4 a class: needs the labels to balance), one FixMatch fit'}

@figure((README, BENCH_README), 'forty_labels', 'semi_mnist40/semi_recipes.csv', block=True)
def forty_labels(root:Path)->str:
    "MNIST with 40 labels in all: each recipe's final fit over seeds, the supervised fit of the same labels, CPU seconds"
    r = _read_csv(root, 'semi_mnist40/semi_recipes.csv').set_index('recipe')
    lines = ['| the 40 labels | test accuracy: median [q25, q75] | each seed | seeds at 95% | supervised, same labels (median) | '
             'confident pool items, right (medians) | CPU s a run: median [min, max] |', '|---|---|---|---|---|---|---|']
    for recipe, label in FORTY_ROWS.items():
        if recipe not in r.index: continue
        x = r.loc[recipe]
        sup = '-' if math.isnan(x.supervised_median) else f"{x.supervised_median:.3f}"
        lines.append(f"| {label} | {x.accuracy_median:.3f} [{x.q25:.3f}, {x.q75:.3f}] | {x.by_seed.replace(' ', ' / ')} | "
                     f"{x['seeds_at_0.95']} | {sup} | {x.confident_median:,.0f} of 10,000, {x.confident_accuracy_median:.1%} | "
                     f"{x.total_s_median:,.0f} [{x.total_s_min:,.0f}, {x.total_s_max:,.0f}] |")
    return '\n'.join(lines)

BENCH_ROWS = {'random': 'random', 'entropy, single pass (top-k)': 'entropy (single)',
              'power-entropy, single pass (default)': 'powerentropy (single)', 'entropy, MC': 'entropy (mc)',
              'BALD, MC': 'bald (mc)', 'BALD, MC with independent masks': 'bald (mc-independent)',
              'BatchBALD, MC': 'batchbald (mc)', 'PowerBALD, MC': 'powerbald (mc)'}

def _auc_cells(root:Path, d:str)->tuple:
    "The first two cells of each row of a dataset's table in benchmarks/README.md: the strategy and its AUC vs random (p)"
    auc = _read_csv(root, f'{d}/auc.csv').set_index('strategy')
    cells = []
    for label, strategy in BENCH_ROWS.items():
        if strategy not in auc.index: continue
        a = auc.loc[strategy]
        cell = f"{a.auc_median:.3f}" if strategy == 'random' else f"{_signed(a.vs_random_median)} ({_p(a.paired_t_p)})"
        cells.append(f"| {label} | {cell} |")
    return tuple(cells)

for _d in ('digits', 'repeated_digits', 'mnist1d_cnn'):
    figure(BENCH_README, f'{_d}: area under the curve vs random', f'{_d}/auc.csv')(lambda root, d=_d: _auc_cells(root, d))

@figure(BENCH_README, 'MNIST-1D, MLP: area under the curve vs random', 'mnist1d/auc.csv')
def mlp_auc(root):
    a = _read_csv(root, 'mnist1d/auc.csv').set_index('strategy')
    f = lambda s: (_signed(a.loc[s, 'vs_random_median']), _p(a.loc[s, 'paired_t_p']))
    return (f"top-k entropy {f('entropy (single)')[0]} (single pass, p = {f('entropy (single)')[1]}), "
            + ', '.join(f"{label} {f(s)[0]} (p = {f(s)[1]})" for label, s in
                        [('BALD', 'bald (mc)'), ('BatchBALD', 'batchbald (mc)'), ('power-entropy', 'powerentropy (single)'),
                         ('PowerBALD', 'powerbald (mc)')]))

def _curves(root:Path, d:str)->pd.DataFrame: return _read_csv(root, f'{d}/curves.csv')

def _run_seconds(root:Path, d:str, pseudo:bool|None=False)->tuple:
    "Per run (strategy, seed): fit, scoring and acquisition seconds summed over its rounds; the smallest and largest"
    df = _curves(root, d)
    if pseudo is not None: df = df[df.strategy.str.contains('pseudo') == pseudo]
    t = df[[c for c in ('fit_s', 'valid_s', 'score_s', 'acquire_s') if c in df]].fillna(0).sum(axis=1)
    per_run = t.groupby([df.strategy, df.seed]).sum()
    return round(per_run.min()), round(per_run.max())

RUN_TIME_NOTE = 'fit, scoring and acquisition summed from `curves.csv`'

@figure(BENCH_README, 'digits: seconds per run', 'digits/curves.csv')
def digits_seconds(root):
    lo, hi = _run_seconds(root, 'digits')
    return f"{lo} to {hi} s per run of 16 rounds, {RUN_TIME_NOTE}"

@figure(BENCH_README, 'digits with pseudo-labels: seconds per run', 'digits/curves.csv')
def digits_pseudo_seconds(root):
    lo, hi = _run_seconds(root, 'digits', pseudo=True)
    return f"{lo} to {hi} s per run)"

@figure(BENCH_README, 'Repeated-digits: seconds per run', 'repeated_digits/curves.csv')
def repeated_digits_seconds(root):
    lo, hi = _run_seconds(root, 'repeated_digits')
    return f"{lo} to {hi} s per run, {RUN_TIME_NOTE}"

@figure(BENCH_README, 'MNIST-1D, MLP: seconds per run', 'mnist1d/curves.csv')
def mnist1d_seconds(root):
    lo, hi = _run_seconds(root, 'mnist1d')
    return f"{lo} to {hi} s per run, {RUN_TIME_NOTE}"

@figure(BENCH_README, 'MNIST-1D, CNN: seconds per run', 'mnist1d_cnn/curves.csv')
def mnist1d_cnn_seconds(root):
    lo, hi = _run_seconds(root, 'mnist1d_cnn')
    return f"{lo} to {hi} s per run, {RUN_TIME_NOTE}, two processes on the 2 cores"

def _mlp_ceiling(root:Path)->str:
    best = _curves(root, 'mnist1d').accuracy.max()
    return f"stays below {math.ceil(best * 100)}% test accuracy (its best round in any run: {best:.1%})"

@figure((README, OVERVIEW), 'MNIST-1D MLP: best accuracy', 'mnist1d/curves.csv')
def mlp_ceiling_readme(root): return _mlp_ceiling(root)

@figure(BENCH_README, 'MNIST-1D MLP: best accuracy', 'mnist1d/curves.csv')
def mlp_ceiling_bench(root): return _mlp_ceiling(root)


@figure((README, OVERVIEW), 'MNIST-1D, CNN: acquired labels to 40% and 50%', 'mnist1d_cnn/labels_to_reach.csv')
def mnist1d_cnn_reach(root):
    r = _read_csv(root, 'mnist1d_cnn/labels_to_reach.csv').set_index(['strategy', 'target'])
    bb40, rnd40, bb50, rnd50 = (r.loc[k] for k in [('batchbald (mc)', '40%'), ('random', '40%'), ('batchbald (mc)', '50%'), ('random', '50%')])
    assert bb50.reached.split('/')[0] == bb50.reached.split('/')[1], "BatchBALD no longer reaches 50% in every run"
    return (f"BatchBALD needs {bb40['median']:.0f} acquired labels to 40% accuracy against random's {rnd40['median']:.0f} "
            f"({bb50['median']:.0f} to 50% in all {bb50.reached.split('/')[1]} runs, random {rnd50.reached.replace('/', ' of ')})")

@figure(TOUR, 'cold start on digits', 'cold_start_digits/cold_start_report.csv')
def cold_start(root):
    r = _read_csv(root, 'cold_start_digits/cold_start_report.csv')
    r = r[r.n == 10]
    chosen = r[r.strategy.isin(['typiclust', 'kmeans']) & r.features.isin(['pca', 'simclr'])].accuracy_median
    rnd = r[r.strategy == 'random'].accuracy_median.iloc[0]
    return (f"10 labels chosen this way (TypiClust or k-means, on PCA or contrastive features; 5 seeds, medians) gave "
            f"{chosen.min():.0%} to {chosen.max():.0%} test accuracy against {rnd:.0%} for 10 random ones")


def _reach_cell(root:Path, d:str, strategy:str, target:str)->dict:
    r = _read_csv(root, f'{d}/labels_to_reach.csv').set_index(['strategy', 'target']).loc[(strategy, target)]
    return dict(median=r['median'], q25=r.q25, q75=r.q75, reached=r.reached)

def _auc_cell(root:Path, d:str, strategy:str, baseline:str='random'):
    f = 'auc.csv' if baseline == 'random' else 'auc_vs_batchbald.csv'
    a = _read_csv(root, f'{d}/{f}').set_index('strategy').loc[strategy]
    col = 'vs_random_median' if baseline == 'random' else 'vs_batchbald_median'
    return a.auc_median if baseline == 'random' and strategy == 'random' else (a[col], a.paired_t_p)

def _copies_cell(root:Path, d:str, strategy:str, col:str='in_same_batch_median')->float:
    return _read_csv(root, f'{d}/redundancy.csv').set_index('strategy').loc[strategy, col]

@figure(BENCH_README, 'digits: labels to 90% and 95%', 'digits/labels_to_reach.csv')
def digits_table(root):
    rows = {l: s for l, s in BENCH_ROWS.items() if l != 'BALD, MC with independent masks'}
    return Cells('| strategy | AUC vs random (p) | acquired to 90% | to 95% (runs reaching it) |',
                 {**{(l, 2): _reach_cell(root, 'digits', s, '90%') for l, s in rows.items()},
                  **{(l, 3): _reach_cell(root, 'digits', s, '95%') for l, s in rows.items()}})

@figure(BENCH_README, 'Repeated-digits: labels to 90% and 95%, copies in a batch', 'repeated_digits/labels_to_reach.csv',
        'repeated_digits/redundancy.csv')
def repeated_digits_table(root):
    return Cells('| strategy | AUC vs random (p) | acquired to 90% | to 95% (runs) | in-batch copies / 150 |',
                 {**{(l, 2): _reach_cell(root, 'repeated_digits', s, '90%') for l, s in BENCH_ROWS.items()},
                  **{(l, 3): _reach_cell(root, 'repeated_digits', s, '95%') for l, s in BENCH_ROWS.items()},
                  **{(l, 4): _copies_cell(root, 'repeated_digits', s) for l, s in BENCH_ROWS.items()}})

@figure(BENCH_README, 'MNIST-1D, CNN: labels to 40% and 50%', 'mnist1d_cnn/labels_to_reach.csv')
def mnist1d_cnn_table(root):
    rows = {l: s for l, s in BENCH_ROWS.items() if l != 'BALD, MC with independent masks'}
    return Cells('| strategy | AUC vs random (p) | acquired to 40% (runs) | to 50% (runs) |',
                 {**{(l, 2): _reach_cell(root, 'mnist1d_cnn', s, '40%') for l, s in rows.items()},
                  **{(l, 3): _reach_cell(root, 'mnist1d_cnn', s, '50%') for l, s in rows.items()}})

DIVERSITY_ROWS = {'random': 'random', 'BatchBALD': 'batchbald', 'core-set': 'coreset', 'BADGE': 'badge',
                  'TypiClust': 'typiclust', 'ProbCover': 'probcover', 'Cluster-Margin': 'cluster_margin',
                  'BatchBALD on 5n k-means reps': 'diverse_batchbald', 'PowerBALD on 5n k-means reps': 'diverse_powerbald'}

@figure(BENCH_README, 'diversity strategies on digits and Repeated-digits', 'digits_diversity/auc.csv',
        'digits_diversity/auc_vs_batchbald.csv', 'digits_diversity/labels_to_reach.csv', 'repeated_digits_diversity/auc.csv',
        'repeated_digits_diversity/auc_vs_batchbald.csv', 'repeated_digits_diversity/labels_to_reach.csv',
        'repeated_digits_diversity/redundancy.csv')
def diversity_table(root):
    expect = {}
    for l, s in DIVERSITY_ROWS.items():
        for d, col, target in (('digits_diversity', 1, '95%'), ('repeated_digits_diversity', 4, '90%')):
            expect[(l, col)] = _auc_cell(root, d, s)
            if s != 'batchbald': expect[(l, col + 1)] = _auc_cell(root, d, s, 'batchbald')
            expect[(l, col + 2)] = _reach_cell(root, d, s, target)
        expect[(l, 7)] = _copies_cell(root, 'repeated_digits_diversity', s, 'copies_median')
    return Cells('| strategy | digits: AUC vs random | vs BatchBALD | to 95% (runs) | Repeated-digits: AUC vs random | '
                 'vs BatchBALD | to 90% (runs) | copies / 150 |', expect)

@figure(BENCH_README, 'diversity strategies on MNIST-1D with the CNN', 'mnist1d_cnn_diversity/auc.csv',
        'mnist1d_cnn_diversity/auc_vs_batchbald.csv', 'mnist1d_cnn_diversity/labels_to_reach.csv')
def diversity_mnist1d_table(root):
    d, expect = 'mnist1d_cnn_diversity', {}
    for l, s in DIVERSITY_ROWS.items():
        expect[(l, 1)] = _auc_cell(root, d, s)
        if s != 'batchbald': expect[(l, 2)] = _auc_cell(root, d, s, 'batchbald')
        expect[(l, 3)] = _reach_cell(root, d, s, '40%')
        expect[(l, 4)] = _reach_cell(root, d, s, '50%')
    return Cells('| strategy | AUC vs random | vs BatchBALD | to 40% (runs) | to 50% (runs) |', expect)


# --- MNIST: power-entropy against BatchBALD, K=100 against K=20 -------------------------------------------------

def _paired_auc(a:pd.DataFrame, b:pd.DataFrame, cut:int)->tuple:
    "Median paired difference of the area under the curve (mean accuracy up to `cut` acquired) of a minus b, t-test p"
    from scipy import stats
    auc = lambda df: df[df.n_acquired <= cut].groupby('seed').accuracy.mean()
    x, y = auc(a), auc(b)
    seeds = x.index.intersection(y.index)
    return float((x[seeds] - y[seeds]).median()), float(stats.ttest_rel(x[seeds], y[seeds]).pvalue)

def _common_range(*dfs)->int: return int(min(df.groupby(['strategy', 'seed']).n_acquired.max().min() for df in dfs))

@figure(BENCH_README, 'MNIST: power-entropy vs BatchBALD, area under the curve', 'mnist_consistent/curves.csv')
def pe_vs_bb_auc(root):
    df = _curves(root, 'mnist_consistent')
    cut = _common_range(df)
    d, p = _paired_auc(df[df.strategy == 'powerentropy'], df[df.strategy == 'batchbald'], cut)
    return f"area under the curve up to {cut} acquired (the range every run covers) {_signed(d)} against BatchBALD (p = {_p(p)})"

@figure(BENCH_README, 'MNIST: BatchBALD K=100 vs K=20, area under the curve', 'mnist_k100/curves.csv', 'mnist_consistent/curves.csv')
def k100_vs_k20_auc(root):
    k20, k100 = _curves(root, 'mnist_consistent'), _curves(root, 'mnist_k100')
    k20 = k20[k20.strategy == 'batchbald']
    cut = _common_range(k20, k100)
    d, p = _paired_auc(k100, k20, cut)
    return f"area under the curve up to {cut} acquired {_signed(d)} against K=20, paired t p = {_p(p)}"

def _round_seconds(df:pd.DataFrame)->pd.Series:
    "Seconds of each acquisition round: fit, validation, scoring and acquisition (the last round, not acquired, left out)"
    df = df[df.score_s.notna()]
    return df[['fit_s', 'valid_s', 'score_s', 'acquire_s']].fillna(0).sum(axis=1)

def _round_times(root:Path)->dict:
    con, k100 = _curves(root, 'mnist_consistent'), _curves(root, 'mnist_k100')
    return dict(pe=_round_seconds(con[con.strategy == 'powerentropy']).median(),
                k20=_round_seconds(con[con.strategy == 'batchbald']).median(), k100=_round_seconds(k100).median(),
                k100_score=np.percentile(k100.score_s.dropna(), [25, 75]), k100_acquire=np.percentile(k100.acquire_s.dropna(), [25, 75]))

@figure(BENCH_README, 'MNIST: seconds per round', 'mnist_consistent/curves.csv', 'mnist_k100/curves.csv')
def round_times_bench(root):
    t = _round_times(root)
    (s0, s1), (a0, a1) = t['k100_score'], t['k100_acquire']
    return (f"power-entropy {t['pe']:.0f} s, BatchBALD K=100 {t['k100']:.0f} s (its K=100 scoring {s0:.0f}-{s1:.0f} s, "
            f"BatchBALD {a0:.1f}-{a1:.1f} s, quartiles over rounds); the K=20 BatchBALD runs ({t['k20']:.0f} s a round)")

@figure(OVERVIEW, 'MNIST: power-entropy against BatchBALD, time per round', 'mnist_consistent/curves.csv', 'mnist_k100/curves.csv')
def round_times_readme(root):
    t = _round_times(root)
    return (f"at {t['pe'] / t['k100']:.1f}x the time per round of BatchBALD at K=100 with the cores shared the same way "
            f"({t['pe']:.0f} s against {t['k100']:.0f} s, median")


# --- MNIST and Repeated-MNIST: acquired labels to a target --------------------------------------------------------

def _reach(root:Path, d:str, strategy:str, target:str, runs:bool=False, quartiles:bool=True)->str:
    "'median [q25, q75]' acquired labels to `target` ('90%'), from labels_to_reach.csv; ', 3/3' with `runs`; the median alone without `quartiles`"
    r = _read_csv(root, f'{d}/labels_to_reach.csv').set_index(['strategy', 'target']).loc[(strategy, target)]
    n_reached, n_runs = (int(x) for x in r.reached.split('/'))
    if n_reached == 0:
        return f"not within {int(_curves(root, d).n_acquired.max())}" + (f" ({r.reached} runs)" if quartiles else '')
    return f"{r['median']:.0f}" + (f" [{r.q25:.0f}, {r.q75:.0f}]" if quartiles else '') + (f", {r.reached}" if runs else '')

MNIST_ROWS = {'BatchBALD, K=20 (consistent masks, CPU)': ('mnist_consistent', 'batchbald'),
              'BatchBALD, K=100 (consistent masks, CPU)': ('mnist_k100', 'batchbald'),
              'power-entropy, MC mean of K=20 (CPU)': ('mnist_consistent', 'powerentropy'),
              'BatchBALD (independent masks: not valid)': ('mnist', 'batchbald'), 'BALD': ('mnist', 'bald'),
              'random': ('mnist', 'random')}

@figure(OVERVIEW, 'MNIST: acquired labels to 90% and 95%', 'mnist/labels_to_reach.csv', 'mnist_consistent/labels_to_reach.csv',
        'mnist_k100/labels_to_reach.csv', 'mnist/curves.csv')
def mnist_reach(root):
    return tuple(f"| {label} | {_reach(root, d, s, '90%')} | {_reach(root, d, s, '95%')} |" for label, (d, s) in MNIST_ROWS.items())

@figure(OVERVIEW, 'MNIST: area under the curve against random', 'mnist/auc.csv')
def mnist_auc(root):
    a = _read_csv(root, 'mnist/auc.csv').set_index('strategy').vs_random_median
    return f"Both beat random sampling (area under the curve {_signed(a['bald'])} and {_signed(a['batchbald'])})"

# the paper's figures (Kirsch et al. 2019), quoted beside ours: constants, not results of ours
REPEATED_MNIST_ROWS = {'BatchBALD, K=20': ('batchbald', '110'), 'power-entropy': ('powerentropy', ''),
                       'random': ('random', '180'), 'BALD (top-k)': ('bald', '270')}

def _copies(root:Path, strategy:str)->str:
    r = _read_csv(root, 'repeated_mnist/redundancy.csv').set_index('strategy').loc[strategy]
    return f"{r.in_same_batch_median:.0f} of {r.acquired:.0f}"

@figure(OVERVIEW, 'Repeated-MNIST: to 90% and copies in a batch', 'repeated_mnist/labels_to_reach.csv', 'repeated_mnist/redundancy.csv')
def repeated_mnist_readme(root):
    return tuple(f"| {label} | {_reach(root, 'repeated_mnist', s, '90%')} | {pub} | {_copies(root, s)} |"
                 for label, (s, pub) in REPEATED_MNIST_ROWS.items())

@figure(BENCH_README, 'Repeated-MNIST: to 90%, copies in a batch, seconds per round', 'repeated_mnist/labels_to_reach.csv',
        'repeated_mnist/redundancy.csv', 'repeated_mnist/curves.csv')
def repeated_mnist_bench(root):
    df = _curves(root, 'repeated_mnist')
    label = {'power-entropy': 'power-entropy (MC mean)'}
    return tuple(f"| {label.get(l, l)} | {_reach(root, 'repeated_mnist', s, '90%', runs=True)} | {pub} | {_copies(root, s)} | "
                 f"{_round_seconds(df[df.strategy == s]).median():.0f} |" for l, (s, pub) in REPEATED_MNIST_ROWS.items())

def _ttr(root:Path)->tuple:
    "The time-to-result run: the round that first reached 95%, and the seconds of every round up to its validation"
    df = _curves(root, 'mnist_ttr').sort_values('round')
    hit = df[df.accuracy >= 0.95].iloc[0]
    before = df[df['round'] < hit['round']][['fit_s', 'valid_s', 'score_s', 'acquire_s']].fillna(0).to_numpy().sum()
    return df, hit, before + hit.fit_s + hit.valid_s

@figure(BENCH_README, 'MNIST time to result', 'mnist_ttr/curves.csv')
def ttr_bench(root):
    df, hit, seconds = _ttr(root)
    at90 = df[df.accuracy >= 0.9].iloc[0].n_acquired
    rounds = df[df.score_s.notna()]
    cols = ['fit_s', 'valid_s', 'score_s', 'acquire_s']
    med = rounds[cols].median()
    return (f"Seed 0 reached {hit.accuracy:.1%} at {hit.n_acquired:.0f} acquired labels (round {hit['round']:.0f}; 90% at "
            f"{at90:.0f}). The rounds up to that validation took {seconds:.0f} s",
            f"One round, median of the {len(rounds)} complete rounds",
            '| ' + ' | '.join(f"{med[c]:.1f}" for c in cols) + f" | {rounds[cols].sum(axis=1).median():.1f} |")

@figure(OVERVIEW, 'MNIST time to result', 'mnist_ttr/curves.csv')
def ttr_readme(root):
    _, hit, _ = _ttr(root)
    return f"(one seed, {hit.n_acquired:.0f} acquired labels)"


# --- stopping on digits (benchmarks/results/stopping_digits) ------------------------------------------------------

@figure(BENCH_README, 'stopping: where kappa fired', 'stopping_digits/curves.csv')
def kappa_fired(root):
    df = _curves(root, 'stopping_digits')
    stops = []
    for _, run in df.sort_values('n_acquired').groupby(['strategy', 'seed']):
        hit = run[run.would_stop_kappa.fillna(False).astype(bool)]
        if len(hit): stops.append(hit.iloc[0])
    stops = pd.DataFrame(stops)
    return (f"Where kappa fired, every run had {stops.accuracy.min():.1%} or more (at {stops.n_acquired.min():.0f} to "
            f"{stops.n_acquired.max():.0f} acquired labels")


@figure(TOUR, 'stopping: kappa and overall uncertainty', 'stopping_digits/stopping.csv')
def stopping_readme(root):
    st = _read_csv(root, 'stopping_digits/stopping.csv').set_index(['criterion', 'strategy'])
    k, u = st.loc[('kappa', 'batchbald (mc)')], st.loc[('uncertainty', 'powerentropy (single)')]
    return (f"the kappa criterion stopped BatchBALD at {k.stop_at.replace(' [', ' labels [', 1)} with {k.accuracy_at_stop:.1%} "
            f"test accuracy, against {k.best_accuracy:.1%} at best within the budget; overall uncertainty stopped earlier "
            f"(power-entropy at {u.stop_at.split(' ')[0]} labels, {u.accuracy_at_stop:.1%})")


@figure(BENCH_README, 'stopping on digits: the table', 'stopping_digits/stopping.csv')
def stopping_table_bench(root):
    st = _read_csv(root, 'stopping_digits/stopping.csv')
    names = {'batchbald (mc)': 'BatchBALD (MC)', 'powerentropy (single)': 'power-entropy', 'random': 'random'}
    short = lambda q: q.split(' ')[0] if len(set(re.findall(r'\d+', q))) == 1 else q  # '300 [300, 300]' -> '300'
    return tuple(f"| {r.criterion} | {names[r.strategy]} | {r.fired} | {short(r.stop_at)} | {r.accuracy_at_stop:.3f} | "
                 f"{r.best_accuracy:.3f} | {r.accuracy_given_up:.3f} | {short(r.labels_saved)} |" for r in st.itertuples())


# --- does uncertainty track error? (nbs/30_uncertainty_vs_error.ipynb) -----------------------------------------

def _correlation(root:Path)->pd.DataFrame:
    return _read_csv(root, 'uncertainty_vs_error/correlation.csv').set_index(['estimator', 'reduce'])

@figure(OVERVIEW, 'uncertainty vs error: Spearman in distribution', 'uncertainty_vs_error/correlation.csv')
def correlation_in_distribution(root):
    c = _correlation(root)
    best = c.spearman_id.idxmin()
    assert best == ('ensemble mask disagreement', 'image'), f"the best estimator is now {best}: rewrite the sentence"
    r = lambda est, red='image': _f2(c.loc[(est, red), 'spearman_id'])
    bald = c.loc[('MC-dropout BALD', 'mean'), 'spearman_id']
    return (f"the best Spearman correlation with IoU is {r('ensemble mask disagreement')} "
            f"{c.loc[best, 'spearman_id_ci']} (`mask_disagreement` of a 5-member ensemble); the model's own "
            f"`expected_iou_loss` gives {r('single-pass expected IoU loss')} from a single pass and "
            f"{r('ensemble expected IoU loss')} from the ensemble, where the mean pixel entropy gives "
            f"{r('single-pass entropy', 'mean')} and {r('ensemble entropy', 'mean')}, and MC-dropout BALD "
            + ("about 0" if abs(bald) < 0.1 else _f2(bald)))

@figure(OVERVIEW, 'uncertainty vs error: shifted pool', 'uncertainty_vs_error/correlation.csv')
def correlation_shifted(root):
    c = _correlation(root).loc[('ensemble mask disagreement', 'image')]
    return (f"On a pool that also holds shifted images: {_f2(c.spearman_pool)}.", 
            f"images are flagged with AUROC {_f2(c['auroc_new shapes'])} (new shapes) and {_f2(c['auroc_low contrast'])} (low contrast)")

EMPTY = ('mixed', 'mixed_heldout', 'short', 'short_heldout')
EMPTY_DEFAULT = 'area 224'  # the rule `expected_iou_loss` uses for an empty prediction by default (nbs/05_acquisition.scores)

def _empty(root:Path, rule:str)->pd.DataFrame:
    rows = []
    for d in EMPTY:
        s = _read_csv(root, f'empty_masks_rules/{d}/summary.csv')
        rows.append(s[(s.posterior == 'single pass') & (s.score == 'expected_iou_loss') & (s.rule == rule)].iloc[0].rename(d))
    return pd.DataFrame(rows)

def _half_up(x:float)->int: return math.floor(x + 0.5)  # percentiles as the tables print them: 62.5 -> 63

def _ordinal(n:int)->str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"

def _pct_range(v:pd.Series)->str:
    v = v.dropna()
    return f"{_ordinal(_half_up(v.min()))}-{_ordinal(_half_up(v.max()))}"

@figure(OVERVIEW, 'empty masks: the default rule', *(f'empty_masks_rules/{d}/summary.csv' for d in EMPTY))
def empty_masks(root):
    e, wrong = _empty(root, EMPTY_DEFAULT), _empty(root, 'always wrong (1.0)')
    r = e['spearman all']
    return (f"`expected_iou_loss` gives {_f2(r['mixed'])} and {_f2(r['mixed_heldout'])} over all images "
            f"({_f2(r['short'])} and {_f2(r['short_heldout'])} for a model trained without empty images) and ranks the "
            f"complete misses at the {_pct_range(e['complete miss median pct'])} percentile, the confident correct "
            f"empty masks at the {_pct_range(e['confident correct empty median pct'])}; scoring every empty mask 1.0 "
            f"would give {_f2(wrong['spearman all'].max())} to {_f2(wrong['spearman all'].min())}")


# --- acquisition speed against batchbald_redux and baal (benchmarks/acquisition.py) ------------------------------

@figure(OVERVIEW, 'acquisition speed', 'acquisition.json')
def acquisition_speed(root):
    d = json.loads((root/RESULTS/'acquisition.json').read_text())
    rows = d['batchbald']
    ratio = {(r['N'], r['K']): r['redux']['time_s'] / r['ours']['time_s'] for r in rows}
    by_k = lambda k: ' and '.join(f"{x:.0f}x" for x in sorted(v for (n, kk), v in ratio.items() if kk == k))
    assert all(r['ours']['picks'][:5] == r['redux']['picks'][:5] for r in rows), "the first five picks differ from redux's"
    rel = max(abs(r['ours']['mi10_mc'] - r['redux']['mi10_mc']) / r['redux']['mi10_mc'] for r in rows)
    big = d['big_pool']
    return (f"runs {min(ratio.values()):.0f}x to {max(ratio.values()):.0f}x faster than batchbald_redux "
            f"{d['meta']['batchbald_redux']} ({by_k(20)} at `K=20`, {by_k(100)} at `K=100`), with the same first five picks "
            f"and a joint mutual information within {math.ceil(rel * 1e4) / 100:.2f}% of its batch. BALD and PowerBALD score "
            f"a pool of {big['N']:,} x {big['K']} x 10 in {big['ours_bald']['time_s']:.2f} and "
            f"{big['ours_powerbald']['time_s']:.2f} seconds with {big['ours_bald']['peak_extra_mb']:.0f} and "
            f"{big['ours_powerbald']['peak_extra_mb']:.0f} MiB beyond the {big['ours_bald']['input_mb']:.0f} MiB input (baal: "
            f"about {big['baal_bald']['time_s']:.0f} s and {big['baal_bald']['peak_extra_mb'] / 1024:.1f} GB; "
            f"batchbald_redux's BALD: {big['redux_bald']['time_s']:.0f} s)")


EMPTY_TABLE = {"'nested' `1 - max p`": 'nested', 'correlation area 224 (the default)': 'area 224',
               'correlation area 256 (the default before)': 'area 256', 'correlation area 128': 'area 128', 'area fitted on the validation third (`fit_empty_area`)': 'fitted area',
               "'independent' `prod (1 - p)`, and 1.0 for any empty mask": 'independent'}

@figure(BENCH_README, 'empty masks: the rules table', *(f'empty_masks_rules/{d}/summary.csv' for d in EMPTY))
def empty_masks_table(root):
    rows = []
    for label, rule in EMPTY_TABLE.items():
        cells = [[], [], []]
        for d in ('mixed', 'short', 'mixed_heldout', 'short_heldout'):  # the table's order
            sm = _read_csv(root, f'empty_masks_rules/{d}/summary.csv')
            r = sm[(sm.posterior == 'single pass') & (sm.score == 'expected_iou_loss') & (sm.rule == rule)]
            if not len(r):
                for c in cells: c.append('-')
                continue
            r = r.iloc[0]
            cells[0].append(f"{r['spearman all']:.3f}")
            cells[1].append(str(_half_up(r['complete miss median pct'])))
            v = r['confident correct empty median pct']
            cells[2].append('none' if pd.isna(v) else str(_half_up(v)))
        rows.append(f"| {label} | " + ' | '.join(' / '.join(c) for c in cells) + ' |')
    return tuple(rows)


EMPTY_GOALS = {"'nested'": 'nested', 'area 128': 'area 128', 'area 192': 'area 192', '**area 224** (chosen)': 'area 224',
               'area 256': 'area 256', "'independent'": 'independent'}

@figure(BENCH_README, 'empty masks: goals met per run', 'empty_masks_rules/choice.csv')
def empty_masks_goals(root):
    c = _read_csv(root, 'empty_masks_rules/choice.csv').set_index('rule')
    best = c.sort_values(['goals met', 'mean spearman'], ascending=[False, True]).index[0]
    assert best == EMPTY_DEFAULT, f"the rule chosen is now {best}: change EMPTY_DEFAULT here and in nbs/05_acquisition.scores"
    cols = ['misses above median', 'confident empties below median', 'spearman at least the old rule']
    cols = cols + [f'{k} (held-out seeds)' for k in cols]
    return tuple(f"| {label} | " + ' | '.join(str(c.loc[rule, k]) for k in cols) + ' |' for label, rule in EMPTY_GOALS.items())


# --- MC dropout speed on an H100 (benchmarks/uncertainty.py) -----------------------------------------------------

@figure(OVERVIEW, 'MC dropout speed, H100', 'uncertainty-gpu-resnet18.json')
def mc_dropout_h100(root):
    rows = json.loads((root/RESULTS/'uncertainty-gpu-resnet18.json').read_text())['results']
    det = next(r for r in rows if r['method'].startswith('deterministic'))['seconds']
    ours = next(r for r in rows if r['method'] == 'ours, head-only, consistent masks (K=20)')['seconds']
    fastai = next(r for r in rows if r['method'].startswith('fastai MCDropoutCallback'))['seconds']
    return f"takes {ours / det:.2f}x the time of one deterministic `get_preds` (head-only path, consistent masks), against {fastai / det:.0f}x"


# --- semi-supervised training on digits (benchmarks/semi_supervised.py, results/semi_digits) ------------------------

SEMI_ROWS = {'random, supervised': 'random', 'random + label spreading': 'random + spreading',
             'random + `FixMatch(mu=2)`': 'random + fixmatch',
             'random + `FixMatch(mu=7, align=True)`': 'random + fixmatch-align [mu7]',
             'power-entropy + `FixMatch(mu=7, align=True)`': 'powerentropy + fixmatch-align [mu7]'}
MU7 = 'fixmatch-align [mu7]'

@figure(TOUR, 'semi_digits', 'semi_digits/semi_accuracy.csv', block=True)
def semi_block(root):
    acc = _read_csv(root, 'semi_digits/semi_accuracy.csv').set_index(['strategy', 'n_labelled'])['median']
    ns = sorted(acc.index.get_level_values('n_labelled').unique())
    best = max(acc.loc[(s, n)] for s in SEMI_ROWS.values() for n in ns)
    cell = lambda v: f"**{v:.3f}**" if v == best else f"{v:.3f}"
    lines = [f"| | {ns[0]} labels | " + ' | '.join(str(n) for n in ns[1:]) + ' |', '|---|' + '---|' * len(ns)]
    lines += [f"| {label} | " + ' | '.join(cell(acc.loc[(s, n)]) for n in ns) + ' |' for label, s in SEMI_ROWS.items()]
    return '\n'.join(lines)

@figure(TOUR, 'semi-supervised targets and gains on digits', 'semi_digits/semi_targets.csv', 'semi_digits/semi_paired.csv',
        'semi_digits/semi_curves.csv')
def semi_targets(root):
    from scipy import stats
    t = _read_csv(root, 'semi_digits/semi_targets.csv').set_index(['strategy', 'n_labelled'])
    of = lambda s, n, col: t.loc[(s, n), col].replace('/', ' of ')
    at20 = {of(f'{s} + {MU7}', 20, '>= 90%') for s in ('random', 'powerentropy')}
    sup20 = {of(s, 20, '>= 90%') for s in ('random', 'powerentropy')}
    assert len(at20) == 1 and len(sup20) == 1, "power-entropy and random differ at 20 labels: rewrite the sentence"
    paired = _read_csv(root, 'semi_digits/semi_paired.csv')
    mu7 = paired[paired.method == MU7]
    assert (mu7.better == mu7.better.str.split('/').str[1] + '/' + mu7.better.str.split('/').str[1]).all()
    df = _read_csv(root, 'semi_digits/semi_curves.csv')
    at = lambda s: df[(df.strategy == f'{s} + {MU7}') & (df.n_labelled == 40)].set_index('seed').accuracy
    pe, rnd = at('powerentropy'), at('random')
    return (f"90% with 20 labels in {at20.pop()} seeds (supervised: {sup20.pop()}), 95% with 40 labels in "
            f"{of('powerentropy + ' + MU7, 40, '>= 95%')} seeds with power-entropy acquisition and "
            f"{of('random + ' + MU7, 40, '>= 95%')} with random; better than supervised training with the same labels on "
            f"every seed ({_signed(mu7.gain_median.min(), 2)} to {_signed(mu7.gain_median.max(), 2)}), and power-entropy "
            f"beats random with it at 40 labels ({_signed((pe - rnd).median())}, paired t p = "
            f"{stats.ttest_rel(pe, rnd).pvalue:.3f})")


@figure(TOUR, 'semi-supervised elsewhere: MNIST-1D and MNIST', 'semi_mnist1d_cnn/semi_paired.csv', 'semi_mnist_cpu/semi_accuracy.csv')
def semi_elsewhere(root):
    g = _read_csv(root, 'semi_mnist1d_cnn/semi_paired.csv').gain_median
    acc = _read_csv(root, 'semi_mnist_cpu/semi_accuracy.csv').set_index(['strategy', 'n_labelled'])['median']
    return (f"on MNIST-1D FixMatch gains {_signed(g.min(), 2)} to {_signed(g.max(), 2)} (5 seeds); on MNIST, 3 seeds on the "
            f"CPU with `mu=2`, {acc.loc[('random + fixmatch-align [mu2]', 40)]:.3f} at 40 labels against "
            f"{acc.loc[('random', 40)]:.3f} supervised (median)")


@figure(TOUR, 'semi-supervised: MNIST with 40 chosen labels', 'semi_mnist40/semi_recipes.csv')
def semi_forty(root):
    x = _read_csv(root, 'semi_mnist40/semi_recipes.csv').set_index('recipe').loc[next(iter(FORTY_ROWS))]
    return (f"with `mu=7` in one final fit on 40 chosen labels, {x.accuracy_median:.3f} median test accuracy, "
            f"{x['seeds_at_0.95'].replace('/', ' of ')} seeds at 95%")


# --- diversity: speed and labels (benchmarks/diversity_speed.py, results/digits_diversity) --------------------------

@figure(TOUR, 'diversity speed', 'diversity_speed.json')
def diversity_speed(root):
    rows = json.loads((root/RESULTS/'diversity_speed.json').read_text())['rows']
    get = lambda st, impl, n: next(r for r in rows if (r['strategy'], r['impl'], r['N']) == (st, impl, n))
    big = [get(st, 'ours', 1_000_000) for st in ('coreset', 'badge')]
    secs, loads = [r['seconds'] for r in big], [r['load_avg'] for r in big]
    ours, peer = get('typiclust', 'ours', 100_000), get('typiclust', 'scikit-activeml', 100_000)
    return (f"core-set and BADGE pick 100 items from a million 512-d embeddings in {min(secs):.0f} to {max(secs):.0f} s on "
            f"one CPU thread (wall time at a load average of {min(loads):.0f} to {max(loads):.0f} on the 2 cores), and "
            f"TypiClust picks 100 from 100,000 in {ours['cpu_seconds']:.0f} s of CPU, "
            f"{peer['cpu_seconds'] / ours['cpu_seconds']:.0f}x less than scikit-activeml's")

@figure(TOUR, 'diversity on digits: labels to 95%', 'digits_diversity/labels_to_reach.csv')
def diversity_digits(root):
    r = lambda s: _reach(root, 'digits_diversity', s, '95%')
    rnd = _read_csv(root, 'digits_diversity/labels_to_reach.csv').set_index(['strategy', 'target']).loc[('random', '95%')]
    n, of = rnd.reached.split('/')
    return (f"BatchBALD on k-means representatives reached 95% test accuracy with {r('diverse_batchbald').replace(' [', ' acquired labels [')}, "
            f"against {r('batchbald')} for BatchBALD and {rnd['median']:.0f} ({n} runs of {of}) for random")


# --- pseudo-labels (results/digits with --pseudo, results/pseudo_segmentation, nbs/30's saved outputs) ----------------

def _pseudo_gains(root:Path)->dict:
    "Per strategy: paired AUC of the runs with pseudo-labels minus those without (median, t-test p, seeds better)"
    from scipy import stats
    df = _curves(root, 'digits')
    out = {}
    for s in ('entropy (single)', 'powerentropy (single)', 'batchbald (mc)', 'random'):
        a = df[df.strategy == f'{s} + pseudo-labels'].groupby('seed').accuracy.mean()
        b = df[df.strategy == s].groupby('seed').accuracy.mean()
        seeds = a.index.intersection(b.index)
        diff = a[seeds] - b[seeds]
        out[s] = (diff.median(), stats.ttest_rel(a[seeds], b[seeds]).pvalue, int((diff > 0).sum()), len(seeds))
    return out

@figure(BENCH_README, 'pseudo-labels in the digits runs', 'digits/curves.csv')
def pseudo_bench(root):
    g = _pseudo_gains(root)
    f = lambda s: (_signed(g[s][0]), _p(g[s][1]), f"{g[s][2]}/{g[s][3]}")
    e, pe, bb, r = (f(s) for s in ('entropy (single)', 'powerentropy (single)', 'batchbald (mc)', 'random'))
    return (f"{e[0]} for top-k entropy (paired t p = {e[1]}, better on {e[2].replace('/', ' of ')} seeds), {pe[0]} for "
            f"power-entropy (p = {pe[1]}, {pe[2]}), {bb[0]} for BatchBALD (p = {bb[1]}, {bb[2]}), {r[0]} for random (p = {r[1]})")

def _nb_outputs(root:Path, nb:str)->str:
    "The text a committed notebook's saved outputs print"
    cells = json.loads((root/'nbs'/nb).read_text(encoding='utf-8'))['cells']
    return ''.join(''.join(o.get('text', '')) for c in cells for o in c.get('outputs', []))

@figure(OVERVIEW, 'pseudo-labels: digits, label efficiency, segmentation', 'digits/curves.csv', 'pseudo_segmentation/summary.json')
def pseudo_readme(root):
    out = _nb_outputs(root, '30_uncertainty_vs_error.ipynb')
    acc = float(re.search(r'their accuracy: mean ([0-9.]+)', out).group(1))
    gain, helped = re.search(r'mean paired difference ([+-][0-9.]+); seeds where pseudo-labels help: (\d+ of \d+)', out).groups()
    g = _pseudo_gains(root)
    active = [g[s][0] for s in ('entropy (single)', 'powerentropy (single)', 'batchbald (mc)')]
    dice = json.loads((root/RESULTS/'pseudo_segmentation'/'summary.json').read_text())['mean_dice_gain_per_seed'].values()
    return (f"Pseudo-labels on digits were {acc:.1%} right and added {gain} mean accuracy over three rounds (better on "
            f"{helped} seeds; the saved outputs of `nbs/30_uncertainty_vs_error.ipynb`); in the label-efficiency runs (16 "
            f"rounds, 5 seeds) they added {_signed(min(active))} to {_signed(max(active))} to the area under the curve of the "
            f"active strategies, not significant; on the segmentation data they changed Dice by {_signed(min(dice))} to "
            f"{_signed(max(dice))}")


# --- MC dropout against its floor, a round against the plain loop (benchmarks/mc_floor.py, fit_speed.py) ----------

def _floor(root:Path, arch:str)->dict:
    d = json.loads((root/RESULTS/f'mc_floor-{arch}.json').read_text())
    return {r['method'].split(' (')[0]: r for r in d['results']} | {'env': d['env'], 'same': d['same_samples']}

@figure(OVERVIEW, 'MC dropout against its floor, CPU', 'mc_floor-gal.json')
def mc_floor_readme(root):
    f = _floor(root, 'gal')
    assert f['same']['ours_equals_floor'] and f['same']['ours_equals_before']
    return (f"K=20 consistent-mask samples cost {f['ours']['cpu_x_floor']:.2f}x their floor in CPU time",
            f"{f['ours before']['cpu_x_floor']:.2f}x before this was tuned")

@figure(BENCH_README, 'MC dropout against its floor, CPU', 'mc_floor-gal.json', 'mc_floor-resnet18.json')
def mc_floor_bench(root):
    rows = []
    for arch, label in [('gal', "Gal et al.'s MNIST CNN, 4,096 images"),
                        ('resnet18', 'fastai resnet18 `vision_learner(pretrained=False)`, 512 64x64 images')]:
        f = _floor(root, arch)
        same = 'bit for bit' if f['same']['ours_equals_floor'] and f['same']['ours_equals_before'] else 'NO'
        rows.append(f"| {label} | {f['plain']['cpu_x_floor']:.2f}x | 1.00 ({f['floor']['cpu_seconds']:.2f} s) | "
                    f"{f['ours before']['cpu_x_floor']:.2f}x | {f['ours']['cpu_x_floor']:.2f}x | {same} |")
    return tuple(rows)

@figure(OVERVIEW, 'a round against the plain loop', 'fit_speed_wall.json')
def fit_speed_readme(root):
    d = json.loads((root/RESULTS/'fit_speed_wall.json').read_text())
    r = next(r for r in d['results'] if r['method'] == 'ActiveLearner, ArraySplit (fastai Adam)')
    return (f"trains in {r['fit_x_plain']:.2f}x the wall time of a plain PyTorch loop on the same 2 cores (load average "
            f"{d['env']['loadavg_1min_before']:.1f}")


# --- what a round costs, pools bigger than memory (the tour: benchmarks/workflow_costs.py, pool_scoring.py) ---------

def _md_table(root:Path, source:str)->pd.DataFrame:
    "The first Markdown table of a result file, its first column the index"
    lines = [l for l in (root/RESULTS/source).read_text().splitlines() if l.startswith('|')]
    cells = lambda l: [c.strip() for c in l.strip().strip('|').split('|')]
    return pd.DataFrame([cells(l) for l in lines[2:]], columns=cells(lines[0])).set_index(cells(lines[0])[0])

WORKFLOW_ROWS = {'DataFrame, a person: `tabular_learner`, MC dropout `K=8`, BatchBALD (24)':
                     'DataFrame, a person (tabular_learner, MC dropout K=8, BatchBALD)',
                 'DataFrame, a person: ensemble of 3 `tabular_learner`s, BALD':
                     'DataFrame, a person (3 tabular_learners, ensemble, BALD)'}

@figure(TOUR, 'what a round costs: the DataFrame workflows', 'workflow_costs.md')
def workflow_costs(root):
    t, expect = _md_table(root, 'workflow_costs.md'), {}
    for label, row in WORKFLOW_ROWS.items():
        r = t.loc[row].astype(float)
        expect |= {(label, 1): r['pool'], (label, 2): r['per_round'], (label, 3): r['round_cpu_s'], (label, 4): r['round_wall_s']}
    return Cells('| workflow (`nbs/`) | pool | per round | CPU s | wall s | of which fit / score / acquire |', expect)

@figure(TOUR, 'what a round costs: the image folder, its cache and arrays', 'workflow_costs_images.md')
def workflow_costs_images(root):
    t = _md_table(root, 'workflow_costs_images.md')
    cache, nocache, arrays = (t.iloc[i].astype(float) for i in range(3))
    assert t.index[1].startswith('image folder without the item cache') and t.index[2].startswith('the same images as arrays')
    return (f"load average {cache.load_avg:.2f}): a digits round (fit, evaluate, acquire {cache.per_round:.0f} of "
            f"{cache.pool:,.0f}, label) takes {cache.round_wall_s:.3f} s from the image folder with the cache, "
            f"{nocache.round_wall_s:.3f} s without it, and {arrays.round_wall_s:.3f} s from the same images held as arrays "
            f"(`ArraySplit`): {cache.round_wall_s / arrays.round_wall_s:.2f}x the arrays")

@figure(TOUR, 'pools bigger than memory: items per second and memory', 'pool_scoring-full.json')
def pool_scoring(root):
    rows = json.loads((root/RESULTS/'pool_scoring-full.json').read_text())['rows']
    get = lambda pool, n, scorer: next(r for r in rows if (r['pool'], r['N'], r['scorer']) == (pool, n, scorer))
    img, img_mem = get('images', 100_000, 'chunked'), get('images', 100_000, 'memory')
    row, row_mem = get('rows', 1_000_000, 'chunked'), get('rows', 1_000_000, 'memory')
    return (f"100,000 image files score at {img['items_per_s']:,.0f} items/s chunked ({img_mem['items_per_s']:,.0f}/s in "
            f"memory), and 1,000,000 memory-mapped rows at {row['items_per_s']:,.0f} rows/s chunked with the driver's memory "
            f"growing {row['peak_anon_mib']:.0f} MiB, against {row_mem['peak_anon_mib']:.0f} MiB in memory")


# --- check, write ---------------------------------------------------------------------------------------------

def _norm(text:str)->str: return re.sub(r'\s+', ' ', text).strip()

def _marked(name:str)->re.Pattern:
    "A generated block: markers on lines of their own, a blank line between them and the text (tables stay tables)"
    return re.compile(rf'(<!-- figures:{re.escape(name)} -->\n)\s*(.*?)\s*(\n<!-- /figures:{re.escape(name)} -->)', re.S)

@dataclass
class Cells:
    "Cells of a Markdown table checked by value, to the digits shown: the table found by its header, a row by its first cell"
    header: str
    expect: dict  # (row label, column index) -> a number, or a dict(median=, q25=, q75=, reached='k/n') of labels to a target

def _close(shown:str, value:float)->bool:
    "`shown` is `value` written with the digits it has ('0.2', '0.044', '9e-05', '120')"
    m = re.fullmatch(r'[+-]?(\d+)(?:\.(\d+))?(?:e-(\d+))?', shown)
    if m is None: return False
    decimals = len(m.group(2) or '') + int(m.group(3) or 0)
    return abs(float(shown) - value) <= 0.5 * 10 ** -decimals + 1e-9

def _cell_problem(cell:str, want)->str|None:
    "Why `cell` does not say `want` (None: it does)"
    if isinstance(want, dict):  # labels to a target: 'never (0/5)', '145 (2/5)', '90 [80, 100] (5/5)', '70 [50, 90]'
        m = re.fullmatch(r'(never|\d+)(?: \[(\d+), (\d+)\])?(?: \((\d+/\d+)\))?', cell)
        if m is None: return f"cannot read '{cell}'"
        med, q25, q75, runs = m.groups()
        if runs is not None and runs != want['reached']: return f"'{cell}': runs {want['reached']}"
        if med == 'never': return None if want['reached'].startswith('0/') else f"'{cell}': reached in {want['reached']}"
        if want['reached'].startswith('0/'): return f"'{cell}': never reached ({want['reached']})"
        if not _close(med, want['median']): return f"'{cell}': median {want['median']:g}"
        if q25 is not None and not (_close(q25, want['q25']) and _close(q75, want['q75'])):
            return f"'{cell}': quartiles [{want['q25']:g}, {want['q75']:g}]"
        return None
    if isinstance(want, tuple):  # a difference and its p: '+0.030 (0.004)'
        m = re.fullmatch(r'([+-]?[0-9.]+) \(([0-9.e-]+)\)', cell)
        ok = m is not None and _close(m.group(1), want[0]) and _close(m.group(2), want[1])
        return None if ok else f"'{cell}': {want[0]:+.4f} (p {want[1]:.4g})"
    return None if _close(cell, want) else f"'{cell}': {want:.4g}"

def _check_cells(fig:Figure, cells:Cells, text:str)->list[str]:
    lines = text.splitlines()
    at = [i for i, l in enumerate(lines) if l.strip() == cells.header]
    if len(at) != 1: return [f"{fig.doc}: '{fig.name}': {len(at)} tables with the header {cells.header}"]
    rows = {}
    for l in lines[at[0] + 2:]:
        if not l.startswith('|'): break
        parts = [c.strip() for c in l.strip().strip('|').split('|')]
        rows[parts[0]] = parts
    problems = []
    for (label, col), want in cells.expect.items():
        if label not in rows: problems.append(f"{fig.doc}: '{fig.name}': no row '{label}'"); continue
        msg = _cell_problem(rows[label][col], want)
        if msg: problems.append(f"{fig.doc}: '{fig.name}', row '{label}', column {col}: {', '.join(fig.sources)} gives {msg}")
    return problems

class FigureError(Exception): pass

def _texts(fig:Figure, root:Path)->tuple:
    "The text(s) `fig` must find in its document; a file missing or changed in shape raises `FigureError`"
    try: t = fig.text(root)
    except (OSError, KeyError, IndexError, StopIteration, ValueError, AssertionError) as e:
        raise FigureError(f"{fig.doc}: '{fig.name}' cannot be computed from {', '.join(fig.sources)}: {type(e).__name__}: {e}") from e
    return t if isinstance(t, tuple) else (t,)

def _cell_src(cell:dict)->str: return ''.join(cell['source']) if isinstance(cell['source'], list) else cell['source']

def _doc_text(path:Path, doc:str)->str:
    "The text a document quotes figures in: a Markdown file whole, a notebook's Markdown cells (its page's prose)"
    text = path.read_text(encoding='utf-8')
    if not doc.endswith('.ipynb'): return text
    return '\n\n'.join(_cell_src(c) for c in json.loads(text)['cells'] if c['cell_type'] == 'markdown')

def check(root:Path=ROOT, docs:dict|None=None)->list[str]:
    "Every figure that its document no longer quotes as its file says: one message each (empty: all agree)"
    docs = docs or {}
    read = lambda doc: _doc_text(Path(docs.get(doc, root/doc)), doc)
    problems = []
    for fig in FIGURES:
        text = read(fig.doc)
        try: wants = _texts(fig, root)
        except FigureError as e:
            problems.append(str(e))
            continue
        if isinstance(wants[0], Cells):
            problems += _check_cells(fig, wants[0], text)
        elif fig.block:
            m = _marked(fig.name).search(text)
            want = wants[0]
            if m is None: problems.append(f"{fig.doc}: no block <!-- figures:{fig.name} --> (from {', '.join(fig.sources)})")
            elif m.group(2).strip() != want.strip():
                problems.append(f"{fig.doc}: block '{fig.name}' differs from {', '.join(fig.sources)}; it should read:\n{want}")
        else:
            for want in wants:
                if _norm(want) not in _norm(text):
                    problems.append(f"{fig.doc}: '{fig.name}': {', '.join(fig.sources)} gives \"{want}\", not found in the text")
    return problems

def _replace_blocks(text:str, doc:str, root:Path, found:dict)->str:
    "`text` with each of `doc`'s blocks regenerated; `found` counts the blocks replaced, by name"
    for fig in FIGURES:
        if fig.block and fig.doc == doc:
            want = _texts(fig, root)[0]
            text, n = _marked(fig.name).subn(lambda m: m.group(1) + '\n' + want + '\n' + m.group(3), text)
            found[fig.name] = found.get(fig.name, 0) + n
    return text

def _check_found(doc:str, found:dict):
    for fig in FIGURES:
        if fig.block and fig.doc == doc and found.get(fig.name) != 1:
            raise SystemExit(f"{doc}: expected one block <!-- figures:{fig.name} -->, found {found.get(fig.name, 0)}")

def _write_nb(nb_path:Path, doc:str, root:Path):
    "Regenerate `doc`'s blocks in the Markdown cells of the notebook `nb_path`"
    nb, found = json.loads(nb_path.read_text(encoding='utf-8')), {}
    for cell in nb['cells']:
        if cell['cell_type'] != 'markdown': continue
        src = _cell_src(cell)
        if '<!-- figures:' not in src: continue
        new = _replace_blocks(src, doc, root, found)
        if new != src: cell['source'] = new.splitlines(keepends=True)
    _check_found(doc, found)
    nb_path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n', encoding='utf-8')

def write(root:Path=ROOT):
    "Regenerate every block: README.md's in nbs/index.ipynb (then README.md), a notebook page's in it, the others in place"
    _write_nb(root/'nbs'/'index.ipynb', README, root)
    for doc in sorted({f.doc for f in FIGURES if f.block and f.doc != README}):
        if doc.endswith('.ipynb'):
            _write_nb(root/doc, doc, root)
            continue
        found = {}
        text = _replace_blocks((root/doc).read_text(encoding='utf-8'), doc, root, found)
        _check_found(doc, found)
        (root/doc).write_text(text, encoding='utf-8')
    subprocess.run([sys.executable, str(root/'.ci'/'readme.py')], check=True)

def main(argv=None)->int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--write', action='store_true', help='regenerate the blocks from the files')
    p.add_argument('--list', action='store_true', help='each figure, where it is quoted, its files, its text')
    p.add_argument('--sources', action='store_true', help='the result files the figures come from, one a line')
    p.add_argument('--doc', action='append', default=[], metavar='DOC=PATH',
                   help='check PATH in place of DOC (README.md, benchmarks/README.md or a notebook page such as '
                        f'{OVERVIEW})')
    args = p.parse_args(argv)
    if args.sources:
        print('\n'.join(sorted({f'{RESULTS}/{src}' for fig in FIGURES for src in fig.sources})))
        return 0
    if args.list:
        for fig in FIGURES:
            try: texts = _texts(fig, ROOT)
            except FigureError as e: texts = (str(e),)
            if isinstance(texts[0], Cells): texts = [f"{cells.header} {k}: {v}" for cells in texts for k, v in cells.expect.items()]
            print(f"{fig.doc} | {fig.name} | {', '.join(fig.sources)}\n    " + '\n    '.join(texts))
        return 0
    if args.write: write()
    problems = check(docs=dict(d.split('=', 1) for d in args.doc))
    for msg in problems: print(msg, file=sys.stderr)
    print(f"{len(FIGURES) - len(problems)} of {len(FIGURES)} figures agree with their files" if not problems else
          f"{len(problems)} quoted figures do not match their files", file=sys.stderr if problems else sys.stdout)
    return 1 if problems else 0

if __name__ == '__main__': sys.exit(main())
