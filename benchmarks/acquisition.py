"""Speed and batch quality of fastai_active's scores, selection and BatchBALD against batchbald_redux 2.0.5 and baal, on the same inputs.

Run with the bench venv (peers are not dependencies of fastai_active):
    .venv-bench/bin/python -m benchmarks.acquisition            # full table (about 30-40 min on 2 cores)
    .venv-bench/bin/python -m benchmarks.acquisition --quick    # smoke test on small pools
Writes benchmarks/results/acquisition.json and acquisition.md (the markdown table, also printed).

Pools are synthetic posterior log-probs with redundancy, like Repeated-MNIST: items come in groups of about 20 that
share their logits and their disagreement between posterior samples, plus a little per-item noise
(`grouped_pool`). BatchBALD: n=10, num_samples=10,000 for every implementation. Batch quality is the joint mutual
information I[y_B; w] of the picked batch: exact for the first 5 picks (10^5 joint labellings), and for all 10 a
Monte Carlo estimate with 200,000 joint labellings drawn from the predictive, with the same random numbers for
every batch (standard error about 0.005 nats).
"""
import argparse, json, math, os, pathlib, platform, resource, subprocess, sys, time

import numpy as np
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
from fastai_active.acquisition.scores import bald, _plogp
from fastai_active.acquisition.selection import stochastic_batch
from fastai_active.acquisition.joint import batchbald, batch_mutual_information

C, n, NUM_SAMPLES = 10, 10, 10_000


def grouped_pool(N, K, C=C, seed=0, group=20, dtype=torch.float32):
    "Posterior log-probs `[N, K, C]`: groups of ~`group` near-duplicates sharing logits and sample disagreement"
    g = torch.Generator().manual_seed(seed)
    G = max(1, N // group)
    base = torch.randn(G, 1, C, generator=g) * 3 + torch.randn(G, K, C, generator=g) * 1.5
    gid = torch.randint(0, G, (N,), generator=g)
    out = torch.empty(N, K, C, dtype=dtype)
    for i in range(0, N, 4096):  # fill in chunks: the only big allocation is the output
        j = min(N, i + 4096)
        out[i:j] = (base[gid[i:j]] + 0.3 * torch.randn(j - i, K, C, generator=g)).log_softmax(-1)
    return out


def mc_batch_mi(lp, idxs, num=200_000, seed=1234, chunk=20_000):
    "Monte Carlo I[y_B; w] = H[y_B] - sum_i E_k H[y_i | w_k], H[y_B] from labellings drawn from the predictive"
    lp_m_K_C = lp[torch.as_tensor(idxs)].double()
    m, K, _ = lp_m_K_C.shape
    g = torch.Generator().manual_seed(seed)
    total = 0.
    for start in range(0, num, chunk):
        s = min(chunk, num - start)
        k_s = torch.randint(0, K, (s,), generator=g)
        u = torch.rand(m, s, 1, generator=g, dtype=torch.float64)
        cdf = lp_m_K_C.exp().cumsum(-1)[:, k_s]               # [m, s, C]
        y_m_s = (u > cdf).sum(-1).clamp_max(C - 1)            # inverse-cdf draw
        logp_s_K = sum(lp_m_K_C[i][:, y_m_s[i]].T for i in range(m))  # [s, K]
        total += (torch.logsumexp(logp_s_K, 1) - math.log(K)).sum().item()
    H = -total / num
    return H - (-_plogp(lp_m_K_C).sum(2).mean(1)).sum().item()


def timed(f, repeat=1):
    best, out = math.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = f()
        best = min(best, time.perf_counter() - t)
    return best, out


def run_ours_batchbald(lp):
    t, cb = timed(lambda: batchbald(lp, n, num_samples=NUM_SAMPLES, seed=0))
    return dict(time_s=t, picks=cb.idxs.tolist(), scores=cb.scores.tolist())


def run_redux_batchbald(lp):
    from batchbald_redux.batchbald import get_batchbald_batch
    torch.manual_seed(0)  # batchbald_redux samples with the global generator
    t, cb = timed(lambda: get_batchbald_batch(lp, n, NUM_SAMPLES))
    return dict(time_s=t, picks=list(map(int, cb.indices)), scores=list(map(float, cb.scores)))


def run_baal_batchbald(lp):
    from baal.active.heuristics import BatchBALD
    probs_N_C_K = lp.double().exp().permute(0, 2, 1).numpy()
    K = lp.shape[1]
    np.random.seed(0)
    torch.manual_seed(0)
    h = BatchBALD(num_samples=n, num_draw=NUM_SAMPLES // K)  # M = K * num_draw joint labellings, as ours
    t, scores = timed(lambda: h.compute_score(probs_N_C_K))
    # baal returns a score per item, non-zero for the picked ones: the BALD of the first pick, then the joint entropy
    # estimate of the batch, which grows with each pick. It picks num_samples + 1 items; ascending score is the order
    # in which they were picked, and we take the first n. (baal's `get_ranks` sorts by descending score, so its top n
    # would be picks 2 to n + 1.)
    picked = np.nonzero(scores)[0]
    picks = picked[np.argsort(scores[picked], kind='stable')].tolist()[:n]
    return dict(time_s=t, picks=picks)


def score_cases(lp, repeat):
    "BALD and PowerBALD (n=10) timings: ours, batchbald_redux (BALD only), baal"
    from batchbald_redux.batchbald import get_bald_batch
    from baal.active.heuristics import BALD
    from baal.active.heuristics.stochastics import PowerSampling
    res = {}
    res['ours_bald_s'], b = timed(lambda: bald(lp), repeat)
    res['ours_powerbald_s'], _ = timed(lambda: stochastic_batch(bald(lp), n, 'power', 1.0, seed=0), repeat)
    res['redux_bald_s'], rb = timed(lambda: get_bald_batch(lp, n), repeat)
    probs_N_C_K = lp.double().exp().permute(0, 2, 1).numpy()  # baal's layout, built outside the timing
    res['baal_bald_s'], sb = timed(lambda: BALD().compute_score(probs_N_C_K), repeat)
    np.random.seed(0)
    res['baal_powerbald_s'], _ = timed(lambda: PowerSampling(BALD(), query_size=n).get_ranks(probs_N_C_K), repeat)
    res['bald_max_abs_diff_vs_redux'] = float((b.double()[torch.tensor(rb.indices)] - torch.tensor(rb.scores, dtype=torch.float64)).abs().max())
    res['bald_max_abs_diff_vs_baal'] = float((b.double() - torch.from_numpy(np.asarray(sb)).double()).abs().max())
    return res


class PeakRSS:
    "Peak resident memory during a block, above the resident memory at its start (polled every 2 ms)"
    def __enter__(self):
        import ctypes, threading
        try: ctypes.CDLL('libc.so.6').malloc_trim(0)  # hand freed heap back first, so it cannot hide new use
        except OSError: pass
        self.start = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self
    def _rss(self): return int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
    def _poll(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(0.002)
    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())
        self.extra_mb = (self.peak - self.start) / 2**20


def child_big_pool(which, N, K):
    "Run in a subprocess: peak RSS beyond the input for one scorer on a big pool"
    lp = grouped_pool(N, K)
    # every scorer runs once on 1,000 items first (imports, thread pools), outside the measurement
    if which == 'ours_bald': f = lambda x=lp: bald(x)
    elif which == 'ours_powerbald': f = lambda x=lp: stochastic_batch(bald(x), n, 'power', 1.0, seed=0)
    elif which == 'redux_bald':
        from batchbald_redux.batchbald import get_bald_batch
        f = lambda x=lp: get_bald_batch(x, n)
    if which.startswith(('ours', 'redux')):
        f(lp[:1000])
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    elif which == 'baal_bald':
        from baal.active.heuristics import BALD
        probs = lp.double().exp().permute(0, 2, 1).numpy()  # baal needs float64 probabilities [N, C, K]
        del lp
        BALD().compute_score(probs[:1000])
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        f = lambda: BALD().compute_score(probs)
    elif which == 'baal_powerbald':
        from baal.active.heuristics import BALD
        from baal.active.heuristics.stochastics import PowerSampling
        probs = lp.double().exp().permute(0, 2, 1).numpy()
        del lp
        PowerSampling(BALD(), query_size=n).get_ranks(probs[:1000])
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        f = lambda: PowerSampling(BALD(), query_size=n).get_ranks(probs)
    with PeakRSS() as mem:
        dt, _ = timed(f, repeat=1 if which == 'redux_bald' else 3)  # best of 3 (redux: one call of ~100 s)
    input_mb = N * K * C * (8 if which.startswith('baal') else 4) / 2**20
    print(json.dumps(dict(time_s=dt, input_mb=input_mb, peak_extra_mb=mem.extra_mb, maxrss_extra_mb=(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)))


def big_pool(N, K, which_list):
    out = {}
    for which in which_list:
        r = subprocess.run([sys.executable, '-m', 'benchmarks.acquisition', '--child', which, str(N), str(K)], cwd=ROOT,
                           capture_output=True, text=True)
        try: out[which] = json.loads(r.stdout.strip().splitlines()[-1])
        except Exception: out[which] = dict(error=(r.stderr or r.stdout)[-400:])
        print(f"  {N:,} x {K} x {C} {which}: {out[which]}", flush=True)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--quick', action='store_true')
    ap.add_argument('--child', nargs=3)
    ap.add_argument('--skip-batchbald', action='store_true')
    ap.add_argument('--rerun-baal', action='store_true', help="rerun baal's BatchBALD rows of an existing results file")
    ap.add_argument('--rerun-ours', action='store_true', help="re-time our BatchBALD (median of 3) into an existing results file")
    ap.add_argument('--sizes', help="BatchBALD only, on these pools (e.g. 2000x20,10000x20), peers included but not baal; "
                    "writes results/acquisition_<name>.json")
    ap.add_argument('--name', default='sizes')
    ap.add_argument('--rerun-big-pool', action='store_true', help="re-measure the 1M-item pool into an existing results file")
    args = ap.parse_args()
    if args.child: return child_big_pool(args.child[0], int(args.child[1]), int(args.child[2]))
    if args.rerun_baal: return rerun_baal(ROOT / 'benchmarks' / 'results' / 'acquisition')
    if args.rerun_ours: return rerun_ours(ROOT / 'benchmarks' / 'results' / 'acquisition')
    if args.rerun_big_pool:
        out = ROOT / 'benchmarks' / 'results' / 'acquisition'
        results = json.loads(out.with_suffix('.json').read_text())
        results['big_pool'] = dict(N=1_000_000, K=20, rerun=time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime()),
                                   load_avg=os.getloadavg(), **big_pool(1_000_000, 20, ['ours_bald', 'ours_powerbald', 'redux_bald', 'baal_bald', 'baal_powerbald']))
        md = to_markdown(results)
        print(md)
        out.with_suffix('.json').write_text(json.dumps(results, indent=1))
        return out.with_suffix('.md').write_text(md)
    import batchbald_redux, baal
    if args.sizes: return batchbald_only([tuple(map(int, x.split('x'))) for x in args.sizes.split(',')], args.name)
    sizes = [(500, 20), (500, 50)] if args.quick else [(2000, 20), (2000, 100), (10000, 20), (10000, 100)]
    big_N = 20_000 if args.quick else 1_000_000
    meta = dict(torch=torch.__version__, threads=torch.get_num_threads(), cpu_count=os.cpu_count(), python=platform.python_version(),
                batchbald_redux='2.0.5', baal=getattr(baal, '__version__', '2.1.0'), C=C, n=n, num_samples=NUM_SAMPLES,
                load_avg_start=os.getloadavg(), started=time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime()))
    results = dict(meta=meta, batchbald=[], scores=[], big_pool={})
    for N, K in sizes:
        lp = grouped_pool(N, K)
        print(f"== N={N} K={K} C={C}", flush=True)
        row = dict(N=N, K=K, **score_cases(lp, repeat=3))
        print('  scores', {k: round(v, 5) for k, v in row.items() if k.endswith('_s')}, flush=True)
        results['scores'].append(row)
        if args.skip_batchbald: continue
        bb = dict(N=N, K=K)
        runs = [('ours', run_ours_batchbald), ('redux', run_redux_batchbald)]
        if N * NUM_SAMPLES * C * 8 <= 2 * 2**30: runs.append(('baal', run_baal_batchbald))  # baal holds N x M x C float64
        for name, f in runs:
            r = f(lp)
            r['mi5_exact'] = batch_mutual_information(lp, r['picks'][:5])
            r['mi10_mc'] = mc_batch_mi(lp, r['picks'])
            bb[name] = r
            print(f"  batchbald {name}: {r['time_s']:.2f} s, MI5 {r['mi5_exact']:.5f}, MI10 {r['mi10_mc']:.5f}, picks {r['picks']}", flush=True)
        results['batchbald'].append(bb)
    results['big_pool'] = dict(N=big_N, K=20, **big_pool(big_N, 20, ['ours_bald', 'ours_powerbald', 'redux_bald', 'baal_bald', 'baal_powerbald']))
    results['meta']['load_avg_end'] = os.getloadavg()
    md = to_markdown(results)
    print(md)
    out = ROOT / 'benchmarks' / 'results' / ('acquisition_quick' if args.quick else 'acquisition')
    out.with_suffix('.json').write_text(json.dumps(results, indent=1))
    out.with_suffix('.md').write_text(md)


def batchbald_only(sizes, name):
    "BatchBALD of ours and batchbald_redux, one call each, same run"
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    res = dict(meta=dict(commit=commit, load_avg_start=os.getloadavg(), started=time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())), rows=[])
    lines = [f"BatchBALD only, fastai_active at commit {commit}, started {res['meta']['started']}, load average "
             f"{res['meta']['load_avg_start'][0]:.1f}; one call each", "",
             "| N | K | ours (s) | batchbald_redux (s) | ratio | MI all 10 (MC): ours / redux |", "|---|---|---|---|---|---|"]
    for N, K in sizes:
        lp = grouped_pool(N, K)
        batchbald(lp[:200], 3)
        row = dict(N=N, K=K)
        for who, f in [('ours', run_ours_batchbald), ('redux', run_redux_batchbald)]:
            r = f(lp)
            r['mi10_mc'] = mc_batch_mi(lp, r['picks'])
            row[who] = r
            print(f"  {who} N={N} K={K}: {r['time_s']:.2f} s, MI10 {r['mi10_mc']:.5f}", flush=True)
        res['rows'].append(row)
        lines.append(f"| {N:,} | {K} | {row['ours']['time_s']:.2f} | {row['redux']['time_s']:.1f} | "
                     f"{row['redux']['time_s'] / row['ours']['time_s']:.0f}x | {row['ours']['mi10_mc']:.4f} / {row['redux']['mi10_mc']:.4f} |")
    res['meta']['load_avg_end'] = os.getloadavg()
    md = "\n".join(lines) + "\n"
    print(md)
    out = ROOT / 'benchmarks' / 'results' / f'acquisition_{name}'
    out.with_suffix('.json').write_text(json.dumps(res, indent=1))
    out.with_suffix('.md').write_text(md)


def rerun_baal(out):
    results = json.loads(out.with_suffix('.json').read_text())
    for bb in results['batchbald']:
        if 'baal' not in bb: continue
        lp = grouped_pool(bb['N'], bb['K'])
        r = run_baal_batchbald(lp)
        r['mi5_exact'] = batch_mutual_information(lp, r['picks'][:5])
        r['mi10_mc'] = mc_batch_mi(lp, r['picks'])
        r['rerun'] = time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())
        bb['baal'] = r
        print(f"  batchbald baal N={bb['N']} K={bb['K']}: {r['time_s']:.2f} s, MI5 {r['mi5_exact']:.5f}, MI10 {r['mi10_mc']:.5f}, picks {r['picks']}", flush=True)
    results['meta']['baal_rerun_load_avg'] = os.getloadavg()
    md = to_markdown(results)
    print(md)
    out.with_suffix('.json').write_text(json.dumps(results, indent=1))
    out.with_suffix('.md').write_text(md)


def rerun_ours(out):
    "Re-time our BatchBALD on the same pools (median of 3 calls) after a change, beside the peers' times of the main run"
    results = json.loads(out.with_suffix('.json').read_text())
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    rows = []
    for bb in results['batchbald']:
        lp = grouped_pool(bb['N'], bb['K'])
        batchbald(lp[:200], 3)
        ts = []
        for _ in range(3):
            t, cb = timed(lambda: batchbald(lp, n, num_samples=NUM_SAMPLES, seed=0))
            ts.append(t)
        picks = cb.idxs.tolist()
        r = dict(N=bb['N'], K=bb['K'], times_s=ts, median_s=sorted(ts)[1], picks=picks,
                 mi5_exact=batch_mutual_information(lp, picks[:5]), mi10_mc=mc_batch_mi(lp, picks))
        rows.append(r)
        print(f"  ours N={r['N']} K={r['K']}: {[round(x, 2) for x in ts]} s, MI10 {r['mi10_mc']:.5f}, picks {picks}", flush=True)
    results['batchbald_ours_rerun'] = dict(commit=commit, load_avg=os.getloadavg(),
                                           when=time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime()), rows=rows)
    md = to_markdown(results)
    print(md)
    out.with_suffix('.json').write_text(json.dumps(results, indent=1))
    out.with_suffix('.md').write_text(md)


def to_markdown(res):
    m = res['meta']
    lines = [f"Machine: {m['cpu_count']} CPU cores, torch {m['torch']} ({m['threads']} threads), batchbald_redux {m['batchbald_redux']}, "
             f"baal {m['baal']}; load average {m['load_avg_start'][0]:.1f} at start (the machine is shared). C={m['C']}, n={m['n']}, "
             f"num_samples={m['num_samples']:,}; run started {m['started']}.", ""]
    if res['batchbald']:
        lines += ["### BatchBALD (n=10, num_samples=10,000)", "",
                  "| N | K | ours (s) | batchbald_redux (s) | ratio | baal (s) | ratio | MI first 5 exact: ours / redux / baal | MI all 10 (MC): ours / redux / baal | same picks as redux |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for bb in res['batchbald']:
            o, r, b = bb['ours'], bb['redux'], bb.get('baal')
            bt = (f"{b['time_s']:.1f}" + ("*" if 'rerun' in b else "")) if b else "skipped (N x M x C float64 buffer)"
            br = f"{b['time_s'] / o['time_s']:.0f}x" if b else "-"
            bq5 = f" / {b['mi5_exact']:.4f}" if b else ""
            bq10 = f" / {b['mi10_mc']:.4f}" if b else ""
            same = sum(a == c for a, c in zip(o['picks'], r['picks']))
            lines.append(f"| {bb['N']:,} | {bb['K']} | {o['time_s']:.2f} | {r['time_s']:.1f} | {r['time_s'] / o['time_s']:.0f}x | {bt} | {br} | "
                         f"{o['mi5_exact']:.4f} / {r['mi5_exact']:.4f}{bq5} | {o['mi10_mc']:.4f} / {r['mi10_mc']:.4f}{bq10} | {same}/10 in order |")
        if any('rerun' in bb.get('baal', {}) for bb in res['batchbald']):
            lines.append(f"\n*baal's rows rerun separately (picks taken in baal's own pick order), load average "
                         f"{res['meta'].get('baal_rerun_load_avg', [float('nan')])[0]:.1f}.")
        lines.append("")
    rr = res.get('batchbald_ours_rerun')
    if rr:
        lines += [f"### BatchBALD, ours re-timed at commit {rr['commit']} ({rr['when']}, load average {rr['load_avg'][0]:.1f}), "
                  "median of 3 calls; peers' times from the table above", "",
                  "| N | K | ours (s), 3 calls | median | vs batchbald_redux | vs baal | MI all 10 (MC): ours / redux |", "|---|---|---|---|---|---|---|"]
        for r, bb in zip(rr['rows'], res['batchbald']):
            b = bb.get('baal')
            vs_baal = f"{b['time_s'] / r['median_s']:.0f}x" if b else "-"
            times = ' / '.join(f"{x:.2f}" for x in r['times_s'])
            lines.append(f"| {r['N']:,} | {r['K']} | {times} | {r['median_s']:.2f} | {bb['redux']['time_s'] / r['median_s']:.0f}x | "
                         f"{vs_baal} | {r['mi10_mc']:.4f} / {bb['redux']['mi10_mc']:.4f} |")
        lines.append("")
    lines += ["### BALD and PowerBALD (n=10), best of 3", "",
              "| N | K | ours BALD (s) | redux BALD (s) | ratio | baal BALD (s) | ratio | ours PowerBALD (s) | baal PowerBALD (s) | ratio |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for s in res['scores']:
        lines.append(f"| {s['N']:,} | {s['K']} | {s['ours_bald_s']:.4f} | {s['redux_bald_s']:.4f} | {s['redux_bald_s'] / s['ours_bald_s']:.1f}x | "
                     f"{s['baal_bald_s']:.4f} | {s['baal_bald_s'] / s['ours_bald_s']:.1f}x | {s['ours_powerbald_s']:.4f} | "
                     f"{s['baal_powerbald_s']:.4f} | {s['baal_powerbald_s'] / s['ours_powerbald_s']:.1f}x |")
    bp = res['big_pool']
    lines += ["", f"### Pool of {bp['N']:,} x {bp['K']} x {C} float32 ({bp['N'] * bp['K'] * C * 4 / 2**20:.0f} MiB of log-probs), one process per row, best of 3 calls (batchbald_redux: 1 call)" + (f", measured {bp['rerun']}" if 'rerun' in bp else ""), "",
              "baal is given float64 probabilities `[N, C, K]` (its layout; 1,526 MiB for 1M items), converted outside the "
              "measurement. Peak memory: the largest resident set size during the calls (polled every 2 ms, after `malloc_trim`) minus the resident set size just before.", "",
              "| scorer | time (s) | input (MiB) | peak memory beyond the input (MiB) |", "|---|---|---|---|"]
    for k, v in bp.items():
        if not isinstance(v, dict): continue
        lines.append(f"| {k} | {v['time_s']:.2f} | {v['input_mb']:.0f} | {v['peak_extra_mb']:.0f} |" if 'error' not in v else f"| {k} | failed: {v['error'][-120:]!r} | | |")
    return "\n".join(lines) + "\n"


if __name__ == '__main__':
    main()
