"Every figure README.md, benchmarks/README.md and the docs pages they point to quote agrees with its committed result file (benchmarks/readme_figures.py)"
import subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT/'benchmarks'/'readme_figures.py'


def figures(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_every_quoted_figure_matches_its_file():
    r = figures()
    assert r.returncode == 0, r.stderr
    assert 'figures agree with their files' in r.stdout


def test_every_source_is_committed():
    r = figures('--sources')
    assert r.returncode == 0, r.stderr
    sources = set(r.stdout.split())
    assert {'benchmarks/results/demo/run.json', 'benchmarks/results/uncertainty_vs_error/correlation.csv'} <= sources
    tracked = subprocess.run(['git', 'ls-files', 'benchmarks/results'], cwd=ROOT, capture_output=True, text=True)
    if tracked.returncode != 0: pytest.skip('not a git checkout')
    missing = sorted(sources - set(tracked.stdout.split()))
    assert not missing, f"quoted figures come from files that are not committed: {missing}"


TOUR, OVERVIEW = 'nbs/28_explain_tour.ipynb', 'nbs/34_results_overview.ipynb'


def test_the_pages_the_readme_moved_to_are_checked():
    r = figures('--list')
    assert r.returncode == 0, r.stderr
    docs = {line.split(' | ')[0] for line in r.stdout.splitlines() if ' | ' in line and not line.startswith(' ')}
    assert {'README.md', 'benchmarks/README.md', TOUR, OVERVIEW} <= docs, docs


@pytest.mark.parametrize('doc,old,new,figure', [
    (OVERVIEW, '-0.74 [-0.80, -0.66]', '-0.75 [-0.80, -0.66]', 'uncertainty vs error'),    # a figure in a page's prose
    (OVERVIEW, '| 100 | ', '| 110 | ', "block 'demo'"),                                     # a row of a generated table
    ('README.md', '| BatchBALD, MC dropout | +0.030 (0.004)', '| BatchBALD, MC dropout | +0.031 (0.004)',
     "block 'label_efficiency_auc'"),
    (TOUR, 'with 98.0% test accuracy', 'with 98.1% test accuracy', 'stopping: kappa'),
    ('benchmarks/README.md', 'at 200 to 280 acquired labels', 'at 210 to 280 acquired labels', 'kappa'),
    ('benchmarks/README.md', '| random | 0.322 | 240 [210, 240] (5/5)', '| random | 0.322 | 240 [200, 240] (5/5)',
     'MNIST-1D, CNN: labels to 40%'),                                                        # a cell checked by value
])
def test_a_changed_figure_fails(tmp_path, doc, old, new, figure):
    text = (ROOT/doc).read_text(encoding='utf-8')
    assert text.count(old) >= 1
    changed = tmp_path/'doc.md'
    changed.write_text(text.replace(old, new, 1), encoding='utf-8')
    r = figures('--doc', f'{doc}={changed}')
    assert r.returncode == 1
    assert figure in r.stderr and doc in r.stderr
