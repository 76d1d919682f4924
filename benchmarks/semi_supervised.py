"""Semi-supervised training in every round: paired comparisons with supervised training at the same labels.

The runs are made by `label_efficiency.py run` (with `--semi fixmatch | flexmatch | spreading` for the
semi-supervised ones) into one output folder; this script reads them all and writes, per number of labels:

- test accuracy (median and quartiles over seeds) of every setting,
- the paired difference semi-supervised minus supervised for the same acquisition strategy and seed (median, a
  paired t-test, and on how many seeds semi-supervised was better),
- how many seeds reached each target accuracy at each number of labels,
- the pseudo-label counts (`n_confident`) and their accuracy against the held labels (`confident_accuracy`),
- the training time per round,
- each run's final fit (the result of a recipe such as 40 labels then one long FixMatch fit): its accuracy, the
  supervised fit of the same labels where the run kept one (`--semi-final`), and the CPU seconds of the whole run,

as `semi_report.md`, `semi_accuracy.csv`, `semi_paired.csv`, `semi_targets.csv`, `semi_final.csv`, `semi_recipes.csv`
and `semi_learning_curves.png`.

    python -m benchmarks.semi_supervised --out benchmarks/results/semi_digits --targets 0.9 0.95
"""
from __future__ import annotations
import argparse, json, math
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.label_efficiency import read_runs, markdown_table

SEMI_METHODS = ('fixmatch', 'flexmatch', 'spreading')


def base_strategy(name:str)->tuple[str, str]:
    "`'random + fixmatch'` -> `('random', 'fixmatch')`; a supervised setting -> `(name, 'supervised')`"
    base, _, method = name.rpartition(' + ')
    if base and method.startswith(SEMI_METHODS): return base, method
    return name, 'supervised'


def accuracy_table(df:pd.DataFrame)->pd.DataFrame:
    "Median and quartiles over seeds of the test accuracy, per setting and number of labels"
    g = df.groupby(['strategy', 'n_labelled']).accuracy
    out = pd.DataFrame({'median': g.median(), 'q25': g.quantile(.25), 'q75': g.quantile(.75), 'seeds': g.size()}).reset_index()
    return out


def paired_table(df:pd.DataFrame)->pd.DataFrame:
    "Semi-supervised minus supervised accuracy, same base strategy, seed and number of labels"
    from scipy import stats
    df = df.assign(base=[base_strategy(s)[0] for s in df.strategy], method=[base_strategy(s)[1] for s in df.strategy])
    sup = df[df.method == 'supervised'].set_index(['base', 'seed', 'n_labelled']).accuracy
    rows = []
    for (base, method), g in df[df.method != 'supervised'].groupby(['base', 'method'], sort=False):
        for n, h in g.groupby('n_labelled'):
            keys = [(base, s, n) for s in h.seed]
            have = [k in sup.index for k in keys]
            if not any(have): continue
            semi = h.accuracy.to_numpy()[have]
            plain = np.array([sup[k] for k, ok in zip(keys, have) if ok])
            diff = semi - plain
            p = float(stats.ttest_rel(semi, plain).pvalue) if len(diff) >= 2 and diff.std() > 0 else math.nan
            rows.append(dict(strategy=base, method=method, n_labelled=int(n), supervised=float(np.median(plain)),
                             semi=float(np.median(semi)), gain_median=float(np.median(diff)), paired_t_p=p,
                             better=f"{int((diff > 0).sum())}/{len(diff)}"))
    return pd.DataFrame(rows)


def targets_table(df:pd.DataFrame, targets)->pd.DataFrame:
    "How many seeds reached each target accuracy, per setting and number of labels"
    rows = []
    for (strategy, n), g in df.groupby(['strategy', 'n_labelled']):
        row = dict(strategy=strategy, n_labelled=int(n))
        for t in targets: row[f">= {t:.0%}"] = f"{int((g.accuracy >= t).sum())}/{len(g)}"
        rows.append(row)
    return pd.DataFrame(rows)


def pseudo_table(df:pd.DataFrame)->pd.DataFrame:
    "Pseudo-labels that passed the threshold in the last fit of each round, and their accuracy (medians over seeds)"
    if 'n_confident' not in df: return pd.DataFrame()
    semi = df[df.n_confident.notna()]
    g = semi.groupby(['strategy', 'n_labelled'])
    return pd.DataFrame({'n_confident': g.n_confident.median(), 'confident_accuracy': g.confident_accuracy.median(),
                         'fit_s': g.fit_s.median()}).reset_index()


TIME_COLUMNS = ('fit_s', 'score_s', 'acquire_s', 'valid_s')  # the seconds a round records

def final_fits(df:pd.DataFrame, runs:Path)->pd.DataFrame:
    """The last round of every run that trained with a semi-supervised method, with `total_s`: the seconds of all its
    rounds (training, scoring, picking, validating) and of its cold start (`<run>.cold`, where one chose the first labels)"""
    rows = []
    for run, g in df.groupby('run', sort=True):
        g = g.sort_values('round')
        last = g.iloc[-1]
        if 'n_confident' not in g or math.isnan(last.n_confident): continue  # supervised, or its final fit not done yet
        cold = runs/f'{run}.cold'
        total = float(g[[c for c in TIME_COLUMNS if c in g]].fillna(0).to_numpy().sum())
        total += json.loads(cold.read_text())['cold_s'] if cold.exists() else 0.
        rows.append(dict(strategy=last.strategy, seed=int(last.seed), n_labelled=int(last.n_labelled), accuracy=float(last.accuracy),
                         supervised_accuracy=float(last.get('supervised_accuracy', math.nan)),
                         n_confident=int(last.n_confident), confident_accuracy=float(last.confident_accuracy),
                         final_fit_s=float(last.fit_s), total_s=total))
    return pd.DataFrame(rows)


def recipes_table(fits:pd.DataFrame, target:float=0.95)->pd.DataFrame:
    "Per recipe: the final accuracy over seeds (median, quartiles, each seed), seeds at `target`, the paired supervised fit, seconds"
    rows = []
    for strategy, g in fits.groupby('strategy', sort=False):
        g = g.sort_values('seed')
        acc, sup = g.accuracy, g.supervised_accuracy
        rows.append({'recipe': strategy, 'labels': '/'.join(map(str, sorted(g.n_labelled.unique()))), 'seeds': len(g),
                     'accuracy_median': acc.median(), 'q25': acc.quantile(.25), 'q75': acc.quantile(.75),
                     'by_seed': ' '.join(f"{a:.3f}" for a in acc), f'seeds_at_{target:g}': f"{int((acc >= target).sum())}/{len(g)}",
                     'supervised_median': sup.median() if sup.notna().any() else math.nan,
                     'gain_median': (acc - sup).median() if sup.notna().any() else math.nan,
                     'confident_median': g.n_confident.median(), 'confident_accuracy_median': g.confident_accuracy.median(),
                     'total_s_median': g.total_s.median(), 'total_s_min': g.total_s.min(), 'total_s_max': g.total_s.max()})
    return pd.DataFrame(rows)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', required=True, help="the output folder of the label_efficiency.py runs")
    p.add_argument('--targets', type=float, nargs='+', default=[0.9, 0.95])
    p.add_argument('--max-labels', type=int, default=None, help="only rows with at most this many labels")
    args = p.parse_args(argv)
    import matplotlib
    matplotlib.use('Agg')
    from fastai_active.loop.curves import plot_learning_curves
    out = Path(args.out)
    df = read_runs(out)
    if args.max_labels: df = df[df.n_labelled <= args.max_labels]
    df.to_csv(out/'semi_curves.csv', index=False)
    acc, paired, reach, pseudo = accuracy_table(df), paired_table(df), targets_table(df, args.targets), pseudo_table(df)
    acc.to_csv(out/'semi_accuracy.csv', index=False)
    paired.to_csv(out/'semi_paired.csv', index=False)
    reach.to_csv(out/'semi_targets.csv', index=False)
    pseudo.to_csv(out/'semi_pseudo.csv', index=False)
    fits = final_fits(df, out/'runs')
    recipes = recipes_table(fits, args.targets[-1]) if len(fits) else pd.DataFrame()
    fits.to_csv(out/'semi_final.csv', index=False)
    recipes.to_csv(out/'semi_recipes.csv', index=False)
    curves = {s: [r for _, r in g.groupby('seed')] for s, g in df.groupby('strategy', sort=False)}
    ax = plot_learning_curves(curves, metric='accuracy', x='n_labelled',
                              title=f"{df.dataset.iloc[0]}: test accuracy (median, quartiles over seeds)")
    ax.legend(loc='upper left', bbox_to_anchor=(1.02, 1), fontsize=8)   # beside the curves, not over them
    ax.figure.savefig(out/'semi_learning_curves.png', dpi=120, bbox_inches='tight')
    wide = acc.pivot(index='n_labelled', columns='strategy', values='median').reset_index()
    text = (f"## {df.dataset.iloc[0]}: test accuracy by number of labels (median over seeds)\n\n" + markdown_table(wide, 3)
            + ("\n\n## Semi-supervised minus supervised, paired by seed\n\n" + markdown_table(paired, 3) if len(paired) else "")
            + "\n\n## Seeds reaching the targets\n\n" + markdown_table(reach, 0)
            + ("\n\n## Pseudo-labels of the last fit (median over seeds) and seconds of training per round\n\n"
               + markdown_table(pseudo, 3) if len(pseudo) else "")
            + (f"\n\n## The final fit of each recipe (over seeds; seconds: every round of the run and its cold start)\n\n"
               + markdown_table(recipes, 3) if len(recipes) else "") + "\n")
    (out/'semi_report.md').write_text(text)
    print(text)


if __name__ == '__main__': main()
