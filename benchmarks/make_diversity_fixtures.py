"""Write tests/fixtures/diversity_peers.json: scikit-activeml 1.0.1's CoreSet, TypiClust, ProbCover and Badge picks on small inputs.

Run once in the bench venv (peers are not dependencies of fastai_active; the tests read only the JSON):
    .venv-bench/bin/python -m benchmarks.make_diversity_fixtures
scikit-activeml breaks ties at random, so only cases whose every pick is a unique maximum are kept (checked on the
utilities it returns); its TypiClust clusters with scikit-learn's KMeans, whose labels are stored so the test can
give ours the same clusters. Its TypiClust differs from the authors' in two ways that these cases avoid: it uses
`k` neighbours where the authors use `min(k, size // 2)` (every cluster here holds more than 2k items), and it
skips clusters holding a labelled item (the test's batch never needs more clusters than are uncovered). Its Badge
weighs the second pick by `min(‖g‖², ‖g - g_first‖²)` (the origin acting as a first centre) where Ash et al. use
`‖g - g_first‖²`, so only its first pick and first-step weights `‖g‖² / Σ ‖g‖²` are compared.
"""
import json, pathlib, warnings
import numpy as np
import skactiveml
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression
from skactiveml.pool import CoreSet, TypiClust, ProbCover, Badge
from skactiveml.classifier import SklearnClassifier
from skactiveml.utils import MISSING_LABEL

OUT = pathlib.Path(__file__).resolve().parents[1] / 'tests' / 'fixtures' / 'diversity_peers.json'


def unique_max_each_step(utilities, picks):
    "Every pick was the only maximum of its step's utilities (so the peer's random tie-breaking played no part)"
    for u, p in zip(utilities, picks):
        u = np.nan_to_num(np.asarray(u, float), nan=-np.inf)
        if (u >= u[p] - 1e-12).sum() != 1: return False
    return True


def blobs(rng, N, D, k=4):
    centres = rng.normal(scale=4, size=(k, D))
    return centres[rng.integers(0, k, N)] + rng.normal(size=(N, D))


cases = []
rng = np.random.default_rng(0)
for seed in range(40):
    if sum(c['strategy'] == 'coreset' for c in cases) >= 4: break
    N, L, D, n = 60, 4, 3, 6
    X = rng.normal(size=(N + L, D))
    y = np.full(N + L, MISSING_LABEL)
    y[:L] = 0
    picks, util = CoreSet(random_state=0).query(X, y, batch_size=n, return_utilities=True)
    if not unique_max_each_step(util, picks): continue
    cases.append(dict(name=f'coreset_{seed}', strategy='coreset', n=n, emb=X[L:].tolist(), labelled=X[:L].tolist(),
                      picks=[int(p) - L for p in picks]))

for seed in range(40):
    if sum(c['strategy'] == 'typiclust' for c in cases) >= 4: break
    N, L, D, n, k = 200, 2, 2, 3, 5
    X = blobs(rng, N + L, D)
    y = np.full(N + L, MISSING_LABEL)
    y[:L] = 0
    clusters = KMeans(n_clusters=L + n, random_state=seed).fit_predict(X)
    sizes = np.bincount(clusters, minlength=L + n)
    free_sizes = [s for c, s in enumerate(sizes) if c not in set(clusters[:L])]
    if len(free_sizes) < n or min(free_sizes) <= 2 * k or len(set(free_sizes)) < len(free_sizes): continue
    picks, util = TypiClust(random_state=seed, k=k).query(X, y, batch_size=n, return_utilities=True)
    if not unique_max_each_step(util, picks): continue
    cases.append(dict(name=f'typiclust_{seed}', strategy='typiclust', n=n, k_nn=k, min_cluster_size=0, emb=X[L:].tolist(),
                      labelled=X[:L].tolist(), clusters=clusters.tolist(), picks=[int(p) - L for p in picks]))

for seed in range(300):
    if sum(c['strategy'] == 'probcover' for c in cases) >= 4: break
    N, L, D, n, delta = 200, 3, 2, 4, 2.0
    X = rng.uniform(0, 10, size=(N + L, D))
    y = np.full(N + L, MISSING_LABEL)
    y[:L] = 0
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        picks, util = ProbCover(random_state=0, deltas=[delta]).query(X, y, batch_size=n, return_utilities=True)
    if not unique_max_each_step(util, picks): continue
    cases.append(dict(name=f'probcover_{seed}', strategy='probcover', n=n, delta=delta, emb=X[L:].tolist(),
                      labelled=X[:L].tolist(), picks=[int(p) - L for p in picks]))

for seed in range(20):
    if sum(c['strategy'] == 'badge' for c in cases) >= 3: break
    N, L, D, n = 80, 10, 4, 4
    X = blobs(rng, N + L, D, k=3) / 8
    y_true = np.argmax(X[:, :3], 1)
    if len(set(y_true[:L])) < 3: continue  # every class labelled: a classifier with probabilities strictly inside (0, 1)
    y = np.full(N + L, MISSING_LABEL)
    y[:L] = y_true[:L]
    clf = SklearnClassifier(LogisticRegression(), classes=[0, 1, 2]).fit(X, y)
    picks, util = Badge(random_state=seed).query(X, y, clf=clf, batch_size=n, return_utilities=True, fit_clf=False)
    probas = clf.predict_proba(X[L:])
    cases.append(dict(name=f'badge_{seed}', strategy='badge', n=n, emb=X[L:].tolist(), labelled=[],
                      log_probs=np.log(probas)[:, None, :].tolist(), picks=[int(p) - L for p in picks],
                      first_probs=np.asarray(util[0])[L:].tolist()))

meta = dict(generator='benchmarks/make_diversity_fixtures.py', scikit_activeml=skactiveml.__version__)
OUT.parent.mkdir(parents=True, exist_ok=True)
OUT.write_text(json.dumps(dict(meta=meta, cases=cases)))
print(f"wrote {OUT} ({OUT.stat().st_size / 1e3:.0f} kB): " + ', '.join(f"{c['name']}: {c['picks']}" for c in cases))
