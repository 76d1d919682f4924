"""Benchmark: scoring a pool in memory, chunk by chunk in one process, and on Ray with 2 workers (issue 16).

Two pools, both generated here (no downloads), both scored with the same trained digits CNN (`digits_learner`: a conv
body, a head with dropout) and MC dropout, K=8 consistent masks on the head (`MCDropout(8, seed=0)`), scores BALD and
the PowerBALD batch of 100 (streamed in the chunked and Ray runs):

  images: N small PNG files (8x8 grayscale digits from scikit-learn, each shifted by up to one pixel and given noise),
          read through the fastai `DataBlock` of `digits_block()` (PILImageBW, ToTensor, IntToFloatTensor);
  rows:   N rows of a memory-mapped float32 .npy file (64 pixels and a label), read through `TensorDataLoaders`
          (`fastai_active.data.arrays`): each chunk's rows are read from the file as one array and each batch is gathered
          from it with one indexing, its `x_tfm` (`pixel_rows`) turning a batch of rows into 1x8x8 images.

Scorers: `memory` (what `ActiveLearner.score` does: the sampler over `dls.test_dl(all items)`, `[N, K, C]` in memory,
then `bald` and `stochastic_batch`), `chunked` (`ChunkedScorer(chunk_size=4096)`), `ray2` (`RayScorer(num_workers=2,
num_cpus=1, chunk_size=4096)` on `local_ray(num_cpus=2)`: one torch thread an actor; the single-process scorers use
torch's default threads, two here). Every scorer runs batches of `--bs` (1024) items. Ray runs its workers at nice 15
(its `worker_niceness`), below the driver and below other jobs at nice 0..14; `--ray-niceness 0` runs them at the single
process's priority. Each (pool, N, scorer) runs in a fresh process. Reported: items/s over the scoring call (Ray's
start-up is reported apart), the process's CPU seconds (for Ray: the driver alone), and the peak growth of the driver's
private memory (RssAnon, sampled every 2 ms) during the call. The machine is a 2-core VM shared with other engineers'
jobs: the load average at the start of each run is in the table.

    .venv/bin/python -m benchmarks.pool_scoring --tag full                      # 100k images, 1M rows (long)
    nice -n 10 .venv/bin/python -m benchmarks.pool_scoring --images 2000 --rows 20000 --tag quick
"""
import argparse, json, os, platform, resource, subprocess, sys, tempfile, threading, time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
K, BATCH = 8, 100


def anon_bytes():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('RssAnon:'): return int(line.split()[1]) * 1024


class PeakAnon:
    def __enter__(self):
        self.base = self.peak = anon_bytes()
        self.on = True
        self.t = threading.Thread(target=self._poll, daemon=True)
        self.t.start()
        return self
    def _poll(self):
        while self.on:
            self.peak = max(self.peak, anon_bytes())
            time.sleep(0.002)
    def __exit__(self, *exc):
        self.on = False
        self.t.join()


# ---------------------------------------------------------------- data (generated once, reused)
def digits_xy():
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    return (X * (255 / 16)).astype(np.float32), y


def noisy_digits(n, seed):
    "n 8x8 digits: a scikit-learn digit shifted by up to a pixel each way, plus Gaussian noise; uint8"
    X, y = digits_xy()
    rng = np.random.default_rng(seed)
    i = rng.integers(0, len(X), n)
    img = X[i].reshape(n, 8, 8)
    for axis in (1, 2):
        shift = rng.integers(-1, 2, n)
        for s in (-1, 1): img[shift == s] = np.roll(img[shift == s], s, axis=axis)
    img = np.clip(img + rng.normal(0, 20, img.shape), 0, 255).astype(np.uint8)
    return img, y[i]


def image_pool(root, n, seed=1):
    "The first n of the PNG files under root/<shard>/<i>.png (10,000 a folder), written once for the largest n asked"
    from PIL import Image
    root = Path(root)
    stamp = root/'.complete'
    files = [root/f'{i // 10_000:03d}'/f'{i:07d}.png' for i in range(n)]
    if stamp.exists() and int(stamp.read_text()) >= n: return files
    for start in range(0, n, 10_000):
        img, _ = noisy_digits(10_000, seed + start)  # whole shards: the first n files do not depend on n
        (root/f'{start // 10_000:03d}').mkdir(parents=True, exist_ok=True)
        for j, a in enumerate(img[:n - start]): Image.fromarray(a).save(files[start + j])
    stamp.write_text(str(n))
    return files


def row_pool(path, n, seed=2):
    "The first n rows (64 pixels in [0, 1] and a label, float32) of a .npy file, written once for the largest n asked"
    path = Path(path)
    if path.exists():
        m = np.load(path, mmap_mode='r')
        if len(m) >= n: return m[:n]  # a memory-mapped slice: the scorers read it from the file
    m = np.lib.format.open_memmap(path, mode='w+', dtype=np.float32, shape=(n, 65))
    for start in range(0, n, 100_000):
        img, y = noisy_digits(min(100_000, n - start), seed + start)
        m[start:start + len(img), :64] = img.reshape(len(img), 64) / 255
        m[start:start + len(img), 64] = y
    m.flush()
    return np.load(path, mmap_mode='r')


def pixel_rows(x):
    "A batch of rows `[B, 65]` as 1x8x8 images; the label column stays out"
    return x[:, :64].reshape(-1, 1, 8, 8)


def trained_learner(kind, work):
    "The digits CNN trained for 3 epochs on scikit-learn's digits, as PNG files (images) or as rows (rows)"
    import torch
    from fastai.callback.progress import ProgressCallback
    from fastai.data.transforms import RandomSplitter
    from fastai_active.core import seeded
    from fastai_active.datasets import digits_folder
    from fastai_active.demo import digits_block, digits_learner
    with seeded(0):
        if kind == 'images':
            dblock = digits_block()
            dblock.splitter = RandomSplitter(0.1, seed=0)
            dls = dblock.dataloaders(digits_folder(Path(work)/'digits')/'train', bs=64, num_workers=0)
        else:
            from fastai_active.data.arrays import TensorDL, TensorDataLoaders
            X, y = digits_xy()
            rows = np.concatenate([X / 255, y[:, None]], 1).astype(np.float32)
            order = np.random.default_rng(0).permutation(len(rows))
            n_valid = len(rows) // 10
            vocab = [str(i) for i in range(10)]
            dls = TensorDataLoaders(*[TensorDL((rows[i], torch.as_tensor(y[i])), bs=64, shuffle=train, drop_last=train,
                                               x_tfm=pixel_rows, vocab=vocab)
                                      for i, train in ((order[n_valid:], True), (order[:n_valid], False))])
        learn = digits_learner(dls)
        learn.remove_cb(ProgressCallback)
        with learn.no_logging(): learn.fit(3, 1e-2)
    return learn


# ---------------------------------------------------------------- one measurement, in its own process
def run_one(kind, n, scorer, work, chunk, bs):
    import torch
    from fastai_active.scale.chunked import ChunkedScorer
    from fastai_active.acquisition.scores import bald
    from fastai_active.acquisition.selection import stochastic_batch
    from fastai_active.acquisition.strategies import as_acquisition
    from fastai_active.uncertainty.mc_dropout import MCDropout
    learn = trained_learner(kind, work)
    items = image_pool(Path(work)/'images', n) if kind == 'images' else row_pool(Path(work)/'rows.npy', n)
    sampler, acq = MCDropout(K, seed=0), as_acquisition('powerbald')
    out = {'pool': kind, 'N': n, 'scorer': scorer, 'load': os.getloadavg()[0], 'startup_s': 0.}
    def score():
        if scorer == 'memory':
            lp = sampler([learn], learn.dls.test_dl(items, bs=bs, num_workers=0))
            s = bald(lp)
            return stochastic_batch(s, BATCH, seed=0).idxs
        kwargs = dict(scores={'bald': bald}, acquisition=acq, n=BATCH, seed=0)
        if scorer == 'chunked': return ChunkedScorer(chunk_size=chunk, bs=bs).score(learn, items, sampler, **kwargs).batch.idxs
        from fastai_active.scale.distributed import RayScorer
        return RayScorer(num_workers=2, num_cpus=1, chunk_size=chunk, bs=bs).score(learn, items, sampler, **kwargs).batch.idxs
    ctx = None
    if scorer == 'ray2':
        from fastai_active.scale.distributed import local_ray
        t = time.perf_counter()
        ctx = local_ray(num_cpus=2, log_to_driver=False, runtime_env={'env_vars': {'PYTHONPATH': str(HERE)}})
        ctx.__enter__()
        out['startup_s'] = time.perf_counter() - t
    try:
        cpu0, t0 = time.process_time(), time.perf_counter()
        with PeakAnon() as mem: picks = score()
        out['seconds'] = time.perf_counter() - t0
        out['cpu_s'] = time.process_time() - cpu0
    finally:
        if ctx is not None: ctx.__exit__(None, None, None)
    out.update(items_per_s=n / out['seconds'], peak_anon_mib=(mem.peak - mem.base) / 2**20,
               max_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, picks=picks[:10].tolist())
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--images', type=int, default=100_000)
    p.add_argument('--rows', type=int, default=1_000_000)
    p.add_argument('--steps', type=int, default=3, help="pool sizes: the largest, halved steps-1 times")
    p.add_argument('--chunk', type=int, default=4096)
    p.add_argument('--bs', type=int, default=1024, help="batch size of every scorer")
    p.add_argument('--scorers', nargs='+', default=['memory', 'chunked', 'ray2'])
    p.add_argument('--memory-at', default='largest', choices=['largest', 'all'], help="pool sizes for the in-memory scorer")
    p.add_argument('--work', default=str(Path(tempfile.gettempdir())/'fastai_active-pool-bench'))
    p.add_argument('--ray-niceness', type=int, default=None, help="nice value of Ray's workers (Ray's default: 15)")
    p.add_argument('--tag', default='')
    p.add_argument('--one', nargs=3, metavar=('KIND', 'N', 'SCORER'), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        kind, n, scorer = args.one
        print('RESULT ' + json.dumps(run_one(kind, int(n), scorer, args.work, args.chunk, args.bs)), flush=True)
        return
    Path(args.work).mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    if args.images > 0: image_pool(Path(args.work)/'images', args.images)
    if args.rows > 0: row_pool(Path(args.work)/'rows.npy', args.rows)
    print(f"pools ready in {time.perf_counter() - t:.0f} s", flush=True)
    rows = []
    for kind, largest in (('images', args.images), ('rows', args.rows)):
        if largest <= 0: continue
        sizes = sorted({largest // 2**i for i in range(args.steps)})
        for n in sizes:
            for scorer in args.scorers:
                if scorer == 'memory' and args.memory_at == 'largest' and n != largest: continue
                cmd = [sys.executable, __file__, '--one', kind, str(n), scorer, '--work', args.work, '--chunk', str(args.chunk),
                       '--bs', str(args.bs)]
                env = dict(os.environ)
                if args.ray_niceness is not None: env['RAY_worker_niceness'] = str(args.ray_niceness)  # read by Ray's raylet
                res = subprocess.run(cmd, capture_output=True, text=True, env=env)
                line = next((l for l in res.stdout.splitlines() if l.startswith('RESULT ')), None)
                if line is None:
                    print(res.stdout[-2000:], res.stderr[-4000:], file=sys.stderr)
                    raise SystemExit(f"{kind} N={n} {scorer} failed")
                r = json.loads(line[7:])
                rows.append(r)
                print(f"{kind:>6} N={n:>9,} {scorer:>7}: {r['items_per_s']:8.0f} items/s  {r['seconds']:7.1f} s "
                      f"(+{r['startup_s']:.1f} s start)  driver peak +{r['peak_anon_mib']:7.1f} MiB  "
                      f"max RSS {r['max_rss_mib']:6.0f} MiB  load {r['load']:.1f}", flush=True)
    for kind in ('images', 'rows'):  # the picks agree between scorers at each size
        for n in {r['N'] for r in rows if r['pool'] == kind}:
            picks = {r['scorer']: r['picks'] for r in rows if r['pool'] == kind and r['N'] == n}
            assert len({tuple(v) for v in picks.values()}) == 1, (kind, n, picks)
    out = HERE/'results'/f"pool_scoring{'-' + args.tag if args.tag else ''}"
    meta = {'machine': f"{os.cpu_count()} CPU cores, {platform.machine()}", 'K': K, 'chunk': args.chunk, 'bs': args.bs,
            'ray_worker_niceness': 15 if args.ray_niceness is None else args.ray_niceness,
            'date': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}
    out.with_suffix('.json').write_text(json.dumps({'meta': meta, 'rows': rows}, indent=1))
    lines = [f"Machine: {meta['machine']}, shared; MC dropout K={K}, chunks of {args.chunk}, batches of {args.bs}, "
             f"Ray workers at nice {meta['ray_worker_niceness']}, {meta['date']}.", '',
             '| pool | N | scorer | items/s | scoring (s) | Ray start (s) | CPU s (driver) | driver peak private memory (MiB) | max RSS (MiB) | load |',
             '|---|---|---|---|---|---|---|---|---|---|']
    for r in rows:
        lines.append(f"| {r['pool']} | {r['N']:,} | {r['scorer']} | {r['items_per_s']:,.0f} | {r['seconds']:.1f} | "
                     f"{r['startup_s']:.1f} | {r['cpu_s']:.1f} | {r['peak_anon_mib']:.1f} | {r['max_rss_mib']:.0f} | {r['load']:.1f} |")
    out.with_suffix('.md').write_text('\n'.join(lines) + '\n')
    print('\n'.join(lines))


if __name__ == '__main__': main()
