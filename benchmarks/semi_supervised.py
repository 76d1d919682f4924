"""Semi-supervised training in every round: paired comparisons with supervised training at the same labels.

The runs are made by `label_efficiency.py run` (with `--semi fixmatch | flexmatch | spreading` for the
semi-supervised ones) into one output folder; this script reads them all and writes, per number of labels:

- test accuracy (median and quartiles over seeds) of every setting,
- the paired difference semi-supervised minus supervised for the same acquisition strategy and seed (median, a
  paired t-test, and on how many seeds semi-supervised was better),
- how many seeds reached each target accuracy at each number of labels,
- the pseudo-label counts (`n_confident`) and their accuracy against the held labels (`confident_accuracy`),
- the training time per round,

as `semi_report.md`, `semi_accuracy.csv`, `semi_paired.csv`, `semi_targets.csv` and `semi_learning_curves.png`.

    python -m benchmarks.semi_supervised --out benchmarks/results/semi_digits --targets 0.9 0.95
"""
from __future__ import annotations
import argparse, math
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
    curves = {s: [r for _, r in g.groupby('seed')] for s, g in df.groupby('strategy', sort=False)}
    ax = plot_learning_curves(curves, metric='accuracy', x='n_labelled',
                              title=f"{df.dataset.iloc[0]}: test accuracy (median, quartiles over seeds)")
    ax.legend(loc='upper left', bbox_to_anchor=(1.02, 1), fontsize=8)   # beside the curves, not over them
    ax.figure.savefig(out/'semi_learning_curves.png', dpi=120, bbox_inches='tight')
    wide = acc.pivot(index='n_labelled', columns='strategy', values='median').reset_index()
    text = (f"## {df.dataset.iloc[0]}: test accuracy by number of labels (median over seeds)\n\n" + markdown_table(wide, 3)
            + "\n\n## Semi-supervised minus supervised, paired by seed\n\n" + markdown_table(paired, 3)
            + "\n\n## Seeds reaching the targets\n\n" + markdown_table(reach, 0)
            + ("\n\n## Pseudo-labels of the last fit (median over seeds) and seconds of training per round\n\n"
               + markdown_table(pseudo, 3) if len(pseudo) else "") + "\n")
    (out/'semi_report.md').write_text(text)
    print(text)


if __name__ == '__main__': main()
