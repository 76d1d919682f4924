"""Speed and memory of the diversity strategies against scikit-activeml and small-text, on the same inputs, same run.

    .venv-bench/bin/python -m benchmarks.diversity_speed                 # 100k and 1M, about 30 min
    .venv-bench/bin/python -m benchmarks.diversity_speed --sizes 2000    # smoke test

Inputs (seeded): N pool embeddings of D=512 float32 from a mixture of 50 Gaussians, L=100 labelled embeddings from the
same mixture, log-probs [N, 1, 10] from a random linear head on the embeddings; batch n=100. Each (method, N) runs in
its own process (one timed call after a warm-up on 1,000 items), every implementation with the same number of
threads (--threads, default 1: on 2 cores shared with other jobs, a second thread mostly waits for a core); peak memory is the largest resident set size during
the call (polled every 5 ms) minus the resident set size just before it, so the inputs themselves are not counted.
Peers get the same arrays in the layout they take (float64 where they convert to it anyway, outside the timing).
A run past --timeout seconds is stopped and reported as such. CPU seconds (of the one thread doing the work) are
recorded beside wall seconds: on a machine shared with other jobs, wall time depends on who else runs, CPU time much
less, so the ratio uses CPU seconds where both sides have them. Each row records when it was measured; --rerun
measures a strategy again. Writes results/diversity_speed.{json,md}.
"""
from __future__ import annotations
import argparse, json, multiprocessing as mp, os, sys, threading, time
from pathlib import Path

if __name__ == '__main__':  # BLAS and torch threads, fixed before numpy or torch is imported (--threads, default 1)
    _t = sys.argv[sys.argv.index('--threads') + 1] if '--threads' in sys.argv else '1'
    for _v in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'): os.environ[_v] = _t
import numpy as np

D, C, L, n = 512, 10, 100, 100


def make_inputs(N, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(50, D)).astype(np.float32)
    def draw(m): return centres[rng.integers(0, 50, m)] + 0.5 * rng.normal(size=(m, D)).astype(np.float32)
    emb, lab = draw(N), draw(L)
    W = rng.normal(size=(D, C)).astype(np.float32) / np.sqrt(D)
    logits = emb @ W
    logp = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True)) - logits.max(1, keepdims=True)
    return emb, lab, logp[:, None, :]


def rss_mb():
    with open('/proc/self/statm') as f: return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20


def measure(fn):
    "Wall seconds, CPU seconds of the calling thread (every implementation runs on one thread) and peak MiB of one call"
    import ctypes
    try: ctypes.CDLL('libc.so.6').malloc_trim(0)
    except OSError: pass
    base, peak, done = rss_mb(), [0.], threading.Event()
    def poll():
        while not done.is_set():
            peak[0] = max(peak[0], rss_mb())
            time.sleep(0.005)
    t = threading.Thread(target=poll, daemon=True)
    t.start()
    start, cpu_start, proc_start = time.perf_counter(), time.thread_time(), time.process_time()
    out = fn()
    secs, cpu, proc = time.perf_counter() - start, time.thread_time() - cpu_start, time.process_time() - proc_start
    done.set()
    t.join()
    return secs, cpu, proc, max(peak[0], rss_mb()) - base, out


# --- the methods: each returns a callable on the inputs ----------------------------------------------------

def ours(strategy):
    def run(emb, lab, logp):
        import torch
        from fastai_active.acquisition.diversity import coreset, badge, typiclust
        torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', '1')))
        e, l, lp = torch.from_numpy(emb), torch.from_numpy(lab), torch.from_numpy(logp)
        if strategy == 'coreset': return lambda: coreset(e, n, l).idxs.numpy()
        if strategy == 'badge': return lambda: badge(lp, e, n, seed=0).idxs.numpy()
        if strategy == 'typiclust': return lambda: typiclust(e, n, l, seed=0).idxs.numpy()
    return run


def skactiveml_method(strategy):
    def run(emb, lab, logp):
        from skactiveml.utils import MISSING_LABEL
        X = np.concatenate([lab, emb]).astype(np.float64)
        y = np.full(len(X), MISSING_LABEL)
        y[:L] = 0
        if strategy == 'coreset':
            from skactiveml.pool import CoreSet
            return lambda: CoreSet(random_state=0).query(X, y, batch_size=n) - L
        if strategy == 'typiclust':
            from skactiveml.pool import TypiClust
            return lambda: TypiClust(random_state=0).query(X, y, batch_size=n) - L
        if strategy == 'badge':
            from skactiveml.pool import Badge
            from skactiveml.classifier import SklearnClassifier
            from sklearn.linear_model import LogisticRegression
            probas = np.exp(logp[:, 0].astype(np.float64))
            class Fixed(SklearnClassifier):
                "The same predictive probabilities as ours, for the pool items in order"
                def predict_proba(self, X, **kwargs): return probas
            y[:L] = np.arange(L) % C
            clf = Fixed(LogisticRegression(), classes=list(range(C))).fit(X[:L], y[:L])
            return lambda: np.asarray(Badge(random_state=0).query(X, y, clf=clf, batch_size=n, fit_clf=False)) - L
    return run


def small_text_method(strategy):
    def run(emb, lab, logp):
        from small_text.query_strategies.coresets import greedy_coreset
        X = np.concatenate([lab, emb])
        unl, lbl = np.arange(L, len(X)), np.arange(L)
        return lambda: greedy_coreset(X, unl, lbl, n, distance_metric='euclidean', normalized=False)
    return run


METHODS = {('coreset', 'ours'): ours('coreset'), ('coreset', 'scikit-activeml'): skactiveml_method('coreset'),
           ('coreset', 'small-text'): small_text_method('coreset'),
           ('badge', 'ours'): ours('badge'), ('badge', 'scikit-activeml'): skactiveml_method('badge'),
           ('typiclust', 'ours'): ours('typiclust'), ('typiclust', 'scikit-activeml'): skactiveml_method('typiclust')}


def worker(key, N, q):
    emb, lab, logp = make_inputs(N)
    make = METHODS[key]
    w = make(emb[:1000], lab, logp[:1000])  # warm-up: imports, first-call costs
    w()
    fn = make(emb, lab, logp)
    secs, cpu, proc, peak, picks = measure(fn)  # proc: every thread's CPU, the memory poller's included (a check that no
    q.put(dict(strategy=key[0], impl=key[1], N=N, seconds=secs, cpu_seconds=cpu, process_cpu_seconds=proc, peak_mib=peak,  # hidden thread worked)
               picks=np.asarray(picks).tolist()[:10], measured=time.strftime('%Y-%m-%d %H:%M')))


def run_one(key, N, timeout):
    q = mp.get_context('fork').Queue()
    p = mp.get_context('fork').Process(target=worker, args=(key, N, q))
    p.start()
    p.join(timeout)
    if p.is_alive():
        p.kill()
        p.join()
        return dict(strategy=key[0], impl=key[1], N=N, seconds=None, note=f'stopped after {timeout} s')
    if p.exitcode != 0: return dict(strategy=key[0], impl=key[1], N=N, seconds=None, note=f'failed (exit code {p.exitcode})')
    return q.get()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--sizes', type=int, nargs='+', default=[100_000, 1_000_000])
    ap.add_argument('--timeout', type=int, default=900)
    ap.add_argument('--threads', type=int, default=1, help="threads for every implementation (BLAS, OpenMP, torch)")
    ap.add_argument('--skip', nargs='*', default=['small-text@1000000', 'typiclust@1000000'],
                    help="impl@N or strategy@N pairs not to run (default: those that cannot finish in the timeout)")
    ap.add_argument('--rerun', nargs='*', default=[], help="strategies (or strategy@N) to measure again though results exist")
    ap.add_argument('--out', default=str(Path(__file__).parent / 'results'))
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / 'diversity_speed.json'
    rows = json.loads(path.read_text())['rows'] if path.exists() else []
    done = {(r['strategy'], r['impl'], r['N']) for r in rows if r.get('seconds') is not None
            and r['strategy'] not in args.rerun and f"{r['strategy']}@{r['N']}" not in args.rerun}
    load = os.getloadavg()[0]
    for N in args.sizes:
        for key in METHODS:
            if (key[0], key[1], N) in done: continue
            if f'{key[1]}@{N}' in args.skip or f'{key[0]}@{N}' in args.skip:
                if not any((x['strategy'], x['impl'], x['N']) == (key[0], key[1], N) for x in rows):
                    rows.append(dict(strategy=key[0], impl=key[1], N=N, seconds=None, note='not run (see --skip)'))
                continue
            r = run_one(key, N, args.timeout)
            r['load_avg'] = os.getloadavg()[0]
            rows = [x for x in rows if (x['strategy'], x['impl'], x['N']) != (key[0], key[1], N)] + [r]
            print(r, flush=True)
            path.write_text(json.dumps(dict(rows=rows, load_avg_at_start=load), indent=1))
    path.write_text(json.dumps(dict(rows=rows, load_avg_at_start=load), indent=1))
    md = ["| strategy | N | ours (s) | ours CPU (s) | ours peak MiB | scikit-activeml (s) | CPU (s) | peak MiB | small-text (s) | CPU (s) | peak MiB | fastest peer / ours | measured |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for strategy in ['coreset', 'badge', 'typiclust']:
        for N in args.sizes:
            get = {r['impl']: r for r in rows if r['strategy'] == strategy and r['N'] == N}
            if 'ours' not in get: continue
            def cell(impl):
                r = get.get(impl)
                if r is None: return '-', '-', '-'
                if r.get('seconds') is None: return r.get('note', '-'), '-', '-'
                cpu = f"{r['cpu_seconds']:.2f}" if r.get('cpu_seconds') is not None else '-'
                return f"{r['seconds']:.2f}", cpu, f"{r['peak_mib']:.0f}"
            # the ratio on CPU seconds where every row has them (a loaded machine stretches wall time unevenly), else wall
            timed = [get[i] for i in ('scikit-activeml', 'small-text') if i in get and get[i].get('seconds')]
            ours_r = get['ours']
            if timed and ours_r.get('seconds'):
                use_cpu = ours_r.get('cpu_seconds') is not None and all(r.get('cpu_seconds') is not None for r in timed)
                col = 'cpu_seconds' if use_cpu else 'seconds'
                ratio = f"{min(r[col] for r in timed) / ours_r[col]:.0f}x ({'CPU' if use_cpu else 'wall'})"
            else: ratio = '-'
            when = ', '.join(sorted({r['measured'] for r in get.values() if r.get('measured')})) or 'earlier run'
            md.append(f"| {strategy} | {N:,} | {' | '.join(cell('ours'))} | {' | '.join(cell('scikit-activeml'))} | "
                      f"{' | '.join(cell('small-text'))} | {ratio} | {when} |")
    text = '\n'.join(md) + f"\n\nLoad average at start: {load:.1f} (2 shared cores); {os.environ.get('OMP_NUM_THREADS')} thread(s) for everyone.\n"
    (out / 'diversity_speed.md').write_text(text)
    print(text)


if __name__ == '__main__': main()
