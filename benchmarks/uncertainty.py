"""Benchmark: MC-dropout scoring of a pool vs one deterministic pass (fastai_active.uncertainty.core).

A fastai vision model (`create_vision_model`: `nn.Sequential(body, head)`, fastai's head with dropout, random
weights: no downloads) scores a pool of random images. Timed, each on the same pool `DataLoader`:
  (a) one deterministic `learn.get_preds`,
  (b) `learn.get_mc_preds(n_samples=K, consistent_masks=False)` on the head-only fast path (body once per batch, head
      K times), masks drawn per item,
  (c) the same with consistent masks (the default of `get_mc_preds`),
  (d) `learn.get_mc_preds(n_samples=K, head_only=False, consistent_masks=False)`: K full passes per batch,
  (e) fastai's own `MCDropoutCallback` with `get_preds` called K times (then stacked).
Peak memory: on CUDA `torch.cuda.max_memory_allocated` above the level before the method; on CPU the peak resident
set size above the level before the method (sampled every 2 ms), each method in a fresh process. On CPU the process
CPU time is reported beside wall time, since wall time on a shared machine follows the load of other processes. Writes benchmarks/results/uncertainty[-TAG].json
and .md.

    python -m benchmarks.uncertainty                       # CPU defaults: 10k 32x32 images, small CNN body
    python -m benchmarks.uncertainty --arch resnet18 --size 64 --n 50000 --bs 512 --tag gpu   # on a GPU
"""
import argparse, json, os, platform, subprocess, sys, tempfile, threading, time
from pathlib import Path

import torch
import torch.nn as nn
from fastai.callback.preds import MCDropoutCallback
from fastai.callback.progress import ProgressCallback
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat
from fastai.vision.learner import add_head, create_vision_model
from torchvision.models import resnet18, resnet50

from fastai_active.uncertainty.mc_dropout import find_head_split, flat_chain


class Pool:
    "Random images held in memory (no downloads); items are 1-tuples, as `dls.test_dl` gives unlabelled items"
    def __init__(self, n, size, seed=0):
        self.x = torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))
    def __len__(self): return len(self.x)
    def __getitem__(self, i): return (self.x[i],)


def small_body():
    "A small conv body (4 conv-bn-relu blocks) for CPU runs"
    def block(ni, nf): return nn.Sequential(nn.Conv2d(ni, nf, 3, stride=2, padding=1), nn.BatchNorm2d(nf), nn.ReLU())
    return nn.Sequential(block(3, 32), block(32, 64), block(64, 128), block(128, 256))


def make_model(arch, n_out):
    if arch == 'small': return add_head(small_body(), 256, n_out)
    return create_vision_model({'resnet18': resnet18, 'resnet50': resnet50}[arch], n_out, pretrained=False)


class PeakRSS:
    "Peak resident set size (bytes) of this process above its level at the start, sampled in a thread"
    def __enter__(self):
        self.base = self.peak = self._rss()
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self
    def _rss(self):
        with open('/proc/self/statm') as f: return int(f.read().split()[1]) * 4096
    def _run(self):
        while not self.stop:
            self.peak = max(self.peak, self._rss())
            time.sleep(0.002)
    def __exit__(self, *args):
        self.stop = True
        self.thread.join()
        self.peak = max(self.peak, self._rss())
        self.extra = self.peak - self.base


def measure(fn, device):
    "Wall time (s) and peak extra memory (bytes) of `fn()`"
    if device.type == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        start = time.perf_counter()
        out = fn()
        torch.cuda.synchronize()
        return time.perf_counter() - start, torch.cuda.max_memory_allocated() - base, out
    with PeakRSS() as mem:
        start, cpu_start = time.perf_counter(), time.process_time()
        out = fn()
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    measure.cpu_seconds = cpu
    return elapsed, mem.extra, out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--n', type=int, default=10_000, help='pool size')
    p.add_argument('--K', type=int, default=20, help='MC samples')
    p.add_argument('--size', type=int, default=32, help='image side')
    p.add_argument('--bs', type=int, default=256)
    p.add_argument('--arch', default='small', choices=['small', 'resnet18', 'resnet50'])
    p.add_argument('--classes', type=int, default=10)
    p.add_argument('--workers', type=int, default=0)
    p.add_argument('--repeats', type=int, default=3, help='timed runs of the single-pass-cost methods (a)-(c); the best is kept')
    p.add_argument('--skip-slow', action='store_true', help='skip (d) and (e), the K-full-pass methods')
    p.add_argument('--tag', default='', help='suffix of the result files')
    p.add_argument('--out', default=str(Path(__file__).parent/'results'))
    p.add_argument('--in-process', action='store_true',
                   help='on CPU, run all methods in this process (default: each in a fresh process, so that the peak '
                        'RSS of one method is not hidden by memory the allocator kept from an earlier one)')
    p.add_argument('--method', type=int, default=None, help=argparse.SUPPRESS)      # child: run only this method
    p.add_argument('--child-out', default=None, help=argparse.SUPPRESS)             # child: write its row here
    args = p.parse_args()

    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    torch.manual_seed(0)
    model = make_model(args.arch, args.classes)
    split = find_head_split(model)
    head = flat_chain(model)[split:]
    print(f"head-only split at {split} of {len(flat_chain(model))} modules; sampled head: "
          f"{[type(m).__name__ for m in head]}", flush=True)
    pool = DataLoader(Pool(args.n, args.size), bs=args.bs, num_workers=args.workers, device=device)
    dls = DataLoaders(pool, pool, device=device)
    learn = Learner(dls, model.to(device), loss_func=CrossEntropyLossFlat(), cbs=[])
    learn.remove_cbs([cb for cb in learn.cbs if isinstance(cb, ProgressCallback)])
    K = args.K

    def fastai_k_times():
        return torch.stack([learn.get_preds(dl=pool, cbs=[MCDropoutCallback()])[0] for _ in range(K)], 1)

    methods = {
        'deterministic get_preds (1 pass)': lambda: learn.get_preds(dl=pool)[0],
        f'ours, head-only (K={K})': lambda: learn.get_mc_preds(pool, n_samples=K, seed=0, consistent_masks=False)[0],
        f'ours, head-only, consistent masks (K={K})': lambda: learn.get_mc_preds(pool, n_samples=K, seed=0,
                                                                                 consistent_masks=True)[0],
        f'ours, full passes (K={K})': lambda: learn.get_mc_preds(pool, n_samples=K, seed=0, head_only=False,
                                                                  consistent_masks=False)[0],
        f'fastai MCDropoutCallback x {K} get_preds': fastai_k_times,
    }
    if args.skip_slow: methods = dict(list(methods.items())[:3])
    # warm-up on a small pool (kernels, allocator, lazy imports)
    warm = DataLoader(Pool(min(args.n, 2 * args.bs), args.size), bs=args.bs, device=device)
    learn.get_preds(dl=warm)
    learn.get_mc_preds(warm, n_samples=K, seed=0)
    learn.get_mc_preds(warm, n_samples=2, seed=0, head_only=False)

    load_before = os.getloadavg()
    isolate = device.type == 'cpu' and not args.in_process and args.method is None
    rows = []
    for i, (name, fn) in enumerate(methods.items()):
        if args.method is not None and i != args.method: continue
        if isolate:
            with tempfile.TemporaryDirectory() as d:
                subprocess.run([sys.executable, __file__, *sys.argv[1:], '--method', str(i), '--child-out', f'{d}/row.json'],
                               check=True)
                rows.append(json.loads(Path(f'{d}/row.json').read_text()))
            continue
        times, mems, cpus = [], [], []
        for _ in range(args.repeats if 'full' not in name and 'fastai' not in name else 1):
            secs, mem, out = measure(fn, device)
            times.append(secs)
            mems.append(mem)
            cpus.append(getattr(measure, 'cpu_seconds', float('nan')))
            shape = tuple(out.shape)
            del out
        rows.append(dict(method=name, seconds=round(min(times), 3), all_seconds=[round(t, 3) for t in times],
                         cpu_seconds=round(min(cpus), 3), peak_mem_mib=round(max(mems) / 2**20, 1), shape=shape))
        print(f"{name}: {min(times):.2f} s (runs: {', '.join(f'{t:.2f}' for t in times)}; process CPU time "
              f"{min(cpus):.2f} s), peak +{max(mems) / 2**20:.1f} MiB, result {shape}", flush=True)
    if args.child_out:
        Path(args.child_out).write_text(json.dumps(rows[0]))
        return
    base = rows[0]['seconds']
    fastai_row = next((r for r in rows if r['method'].startswith('fastai')), None)
    for r in rows:
        r['x_deterministic'] = round(r['seconds'] / base, 3)
        if device.type == 'cpu': r['cpu_x_deterministic'] = round(r['cpu_seconds'] / rows[0]['cpu_seconds'], 3)
        if fastai_row: r['x_fastai_mc_k'] = round(r['seconds'] / fastai_row['seconds'], 4)

    env = dict(device=torch.cuda.get_device_name() if device.type == 'cuda' else platform.processor() or 'cpu',
               torch=torch.__version__, threads=torch.get_num_threads(), python=platform.python_version(),
               pool=args.n, K=K, size=args.size, bs=args.bs, arch=args.arch, classes=args.classes,
               workers=args.workers, repeats=args.repeats, head_split=split, command=' '.join(sys.argv),
               cpus=os.cpu_count(), loadavg_1min_before=round(load_before[0], 2), loadavg_1min_after=round(os.getloadavg()[0], 2))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = 'uncertainty' + (f'-{args.tag}' if args.tag else '')
    (out/f'{stem}.json').write_text(json.dumps(dict(env=env, results=rows), indent=2) + '\n')
    mem_kind = 'CUDA max_memory_allocated' if device.type == 'cuda' else 'peak RSS'
    lines = [f"MC scoring of {args.n} images ({args.size}x{args.size}, {args.arch} body, fastai head), K={K}, "
             f"bs={args.bs}, on {env['device']} ({device.type}, torch {torch.__version__}, {env['threads']} threads; "
             f"load average {env['loadavg_1min_before']} before, {env['loadavg_1min_after']} after, {env['cpus']} CPUs)", '',
             f"| method | seconds | x one deterministic pass | x fastai MCDropoutCallback x K | peak extra memory ({mem_kind}), MiB |",
             '|---|---:|---:|---:|---:|']
    for r in rows:
        x_fastai = f"{r['x_fastai_mc_k']:.3f}" if 'x_fastai_mc_k' in r else 'not run'
        lines.append(f"| {r['method']} | {r['seconds']:.2f} | {r['x_deterministic']:.2f} | {x_fastai} | "
                     f"{r['peak_mem_mib']:.1f} |")
    if device.type == 'cpu':
        lines += ['', 'On a shared CPU, wall time follows the load of other processes; process CPU time (all threads) '
                  'is steadier:', '', '| method | CPU seconds | x one deterministic pass |', '|---|---:|---:|']
        lines += [f"| {r['method']} | {r['cpu_seconds']:.2f} | {r['cpu_x_deterministic']:.2f} |" for r in rows]
    (out/f'{stem}.md').write_text('\n'.join(lines) + '\n')
    print('\n'.join(lines))


if __name__ == '__main__': main()
