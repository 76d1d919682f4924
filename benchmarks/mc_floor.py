"""Benchmark: consistent-mask MC-dropout scoring (`Learner.get_mc_preds`) against its floor, in plain PyTorch.

The floor is what K samples per item cannot avoid: one pass of the dropout-free body, then the head applied to the K
masked copies of the features as one batch (a hand-written loop with the same masks as `get_mc_preds`, no fastai).
Timed in the same run, on the same in-memory pool, best of `--repeats`:
  plain  one deterministic pass of the whole model (plain PyTorch);
  floor  body once + head on K masked copies as one batch (plain PyTorch, the masks of `get_mc_preds`);
  ours   `learn.get_mc_preds(dl, n_samples=K, seed=0)` through fastai's `get_preds`;
  before the same call with the code of an older checkout (`--before DIR`, a folder holding its `fastai_active`),
         in a child process; its samples are compared with ours for equality.
Models: `gal` (Gal et al.'s MNIST CNN, dropout right after the convolutions, so the dense head is sampled K times)
and `resnet18` (fastai's `vision_learner(..., pretrained=False)`: random weights, no downloads). Writes
benchmarks/results/mc_floor-ARCH.json and .md.

    python -m benchmarks.mc_floor --arch gal --n 4096
    python -m benchmarks.mc_floor --arch resnet18 --n 512 --size 64 --bs 128
    python -m benchmarks.mc_floor --arch gal --before /tmp/before      # with an older checkout for 'before'
"""
import argparse, json, os, platform, subprocess, sys, tempfile, time
from pathlib import Path

import torch
import torch.nn.functional as F
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat
from fastai.vision.learner import vision_learner
from torch.nn.modules.dropout import _DropoutNd
from torchvision.models import resnet18

from fastai_active.core import derive_seed, torch_generator
from fastai_active.models import gal_cnn
from fastai_active.uncertainty.mc_dropout import find_head_split, flat_chain


class TensorPool(DataLoader):
    "Unlabelled in-memory images, gathered a batch at a time (no per-item Python)"
    def __init__(self, x, **kwargs):
        self.x = x
        super().__init__(range(len(x)), **kwargs)
    def create_item(self, i): return i
    def create_batch(self, idxs): return (self.x[torch.as_tensor(idxs)],)
    def new(self, dataset=None, cls=None, **kwargs): return super().new(dataset, cls, x=self.x, **kwargs)


def make_learner(arch, pool):
    dls = DataLoaders(pool, pool)
    if arch == 'gal': return Learner(dls, gal_cnn(10, c_in=1, size=pool.x.shape[-1]), loss_func=CrossEntropyLossFlat())
    return vision_learner(dls, resnet18, pretrained=False, n_out=10, normalize=False, loss_func=CrossEntropyLossFlat())


def floor_masks(head_chain, feats_shape, K, seed, device):
    "The scaled masks `get_mc_preds` draws: layer i from `derive_seed(seed, 'mask', i)`, in the order the head runs them"
    masks, shape, i = [], feats_shape, 0
    x = torch.zeros(1, *feats_shape)
    for m in head_chain:
        if isinstance(m, _DropoutNd):
            shape = tuple(x.shape[1:])
            keep = torch.rand((K, *shape), generator=torch_generator(derive_seed(seed, 'mask', i))) >= m.p
            masks.append(keep.float().mul(1 / (1 - m.p)).to(device))
            i += 1
        else: x = m.eval()(x)
    return masks


@torch.no_grad()
def floor(model, x, bs, K, seed=0):
    "Body once per batch, then the head on the K masked copies of the features as one batch"
    chain = flat_chain(model)
    split = find_head_split(model)
    body, head = torch.nn.Sequential(*chain[:split]).eval(), [m.eval() for m in chain[split:]]
    feats_shape = tuple(body(x[:1]).shape[1:])
    masks = floor_masks(head, feats_shape, K, seed, x.device)
    outs = []
    for b in range(0, len(x), bs):
        h, j = body(x[b:b+bs]), 0
        n = len(h)
        for m in head:
            if isinstance(m, _DropoutNd):
                if j == 0: h = (h.unsqueeze(1) * masks[0]).reshape(n * K, *h.shape[1:])   # the K copies, masked
                else: h = (h.view(n, K, *h.shape[1:]) * masks[j]).view(h.shape)
                j += 1
            elif j == 0: h = m(h)
            else: h = m(h)
        outs.append(F.log_softmax(h.float(), 1).view(n, K, -1))
    return torch.cat(outs)


@torch.no_grad()
def plain(model, x, bs):
    model.eval()
    return torch.cat([F.log_softmax(model(x[b:b+bs]).float(), 1) for b in range(0, len(x), bs)])


def timed(fn, repeats):
    best, best_cpu, out = float('inf'), float('inf'), None
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        out = fn()
        best, best_cpu = min(best, time.perf_counter() - start), min(best_cpu, time.process_time() - cpu)
    return best, best_cpu, out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--arch', default='gal', choices=['gal', 'resnet18'])
    p.add_argument('--n', type=int, default=4096, help='pool size')
    p.add_argument('--K', type=int, default=20)
    p.add_argument('--size', type=int, default=28, help='image side')
    p.add_argument('--bs', type=int, default=512)
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--threads', type=int, default=1, help='torch threads (1: CPU time is the work done)')
    p.add_argument('--before', default=None, help='a folder holding an older `fastai_active`, timed as "before"')
    p.add_argument('--out', default=str(Path(__file__).parent/'results'))
    p.add_argument('--child-out', default=None, help=argparse.SUPPRESS)   # child: time `ours` only, write here
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    c_in = 1 if args.arch == 'gal' else 3
    x = torch.rand(args.n, c_in, args.size, args.size, generator=torch.Generator().manual_seed(0))
    pool = TensorPool(x, bs=args.bs)
    learn = make_learner(args.arch, pool)
    learn.remove_cbs([cb for cb in learn.cbs if type(cb).__name__ == 'ProgressCallback'])
    model, K = learn.model, args.K
    ours = lambda: learn.get_mc_preds(pool, n_samples=K, seed=0)[0]
    warm = TensorPool(x[:args.bs], bs=args.bs)
    learn.get_mc_preds(warm, n_samples=K, seed=0)
    if args.child_out:
        secs, cpu, out = timed(ours, args.repeats)
        torch.save(dict(seconds=secs, cpu=cpu, out=out), args.child_out)
        return

    load_before = os.getloadavg()
    rows = {}
    rows['plain (1 deterministic pass)'] = timed(lambda: plain(model, x, args.bs), args.repeats)
    rows[f'floor (body once + head on K={K} copies)'] = timed(lambda: floor(model, x, args.bs, K), args.repeats)
    def child(label, path):
        "Time `ours` in a fresh process, with `path` first on PYTHONPATH (the code to time)"
        with tempfile.TemporaryDirectory() as d:
            env = dict(os.environ, PYTHONPATH=os.pathsep.join([path, os.environ.get('PYTHONPATH', '')]))
            subprocess.run([sys.executable, __file__, *sys.argv[1:], '--child-out', f'{d}/out.pt'], check=True, env=env)
            res = torch.load(f'{d}/out.pt')
            rows[label] = (res['seconds'], res['cpu'], res['out'])
    # each version of `ours` in its own fresh process, so that neither inherits the other's allocator state
    if args.before: child(f'ours before (get_mc_preds, K={K})', args.before)
    child(f'ours (get_mc_preds, K={K})', str(Path(__file__).resolve().parents[1]))
    floor_out = rows[f'floor (body once + head on K={K} copies)'][2]
    ours_out = rows[f'ours (get_mc_preds, K={K})'][2]
    same = dict(ours_equals_floor=bool(torch.equal(ours_out, floor_out)),
                ours_max_abs_diff_floor=float((ours_out - floor_out).abs().max()))
    if args.before:
        before_out = rows[f'ours before (get_mc_preds, K={K})'][2]
        same.update(ours_equals_before=bool(torch.equal(ours_out, before_out)),
                    ours_max_abs_diff_before=float((ours_out - before_out).abs().max()))
    f = rows[f'floor (body once + head on K={K} copies)']
    table = [dict(method=k, seconds=round(v[0], 3), cpu_seconds=round(v[1], 3), x_floor=round(v[0] / f[0], 3),
                  cpu_x_floor=round(v[1] / f[1], 3)) for k, v in rows.items()]
    env = dict(arch=args.arch, n=args.n, K=K, size=args.size, bs=args.bs, repeats=args.repeats, torch=torch.__version__,
               threads=torch.get_num_threads(), cpus=os.cpu_count(), python=platform.python_version(),
               loadavg_1min_before=round(load_before[0], 2), loadavg_1min_after=round(os.getloadavg()[0], 2),
               command=' '.join(['python', 'benchmarks/mc_floor.py', *sys.argv[1:]]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out/f'mc_floor-{args.arch}.json').write_text(json.dumps(dict(env=env, results=table, same_samples=same), indent=2) + '\n')
    lines = [f"K={K} MC-dropout scoring of {args.n} {c_in}x{args.size}x{args.size} images, {args.arch}, bs={args.bs}, "
             f"CPU ({env['threads']} threads, torch {torch.__version__}; load average {env['loadavg_1min_before']} before, "
             f"{env['loadavg_1min_after']} after), best of {args.repeats}", '',
             '| method | seconds | x floor | CPU seconds | CPU x floor |', '|---|---:|---:|---:|---:|']
    lines += [f"| {r['method']} | {r['seconds']:.3f} | {r['x_floor']:.2f} | {r['cpu_seconds']:.3f} | {r['cpu_x_floor']:.2f} |"
              for r in table]
    lines += ['', 'Same samples: ' + ', '.join(f'{k} = {v}' for k, v in same.items())]
    (out/f'mc_floor-{args.arch}.md').write_text('\n'.join(lines) + '\n')
    print('\n'.join(lines))


if __name__ == '__main__': main()
