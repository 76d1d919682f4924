"""Benchmark: one `ActiveLearner` round on in-memory images against a plain PyTorch loop, per phase.

MNIST-shaped random data (uint8 [N, 1, 28, 28], 10 classes: the timing does not depend on the pixels), Gal et al.'s
CNN, 20 labelled items repeated to `--epoch-items` per epoch, `--epochs` of one-cycle training at bs 64, then
validation on `--n-test` items, K=20 MC-dropout scoring of `--n-pool` pool items and a BatchBALD batch of 10.
Process CPU time at one torch thread (the work done; wall time on a shared machine follows the other jobs), in the
same run:
  plain    a plain PyTorch loop: the same model, torch's Adam with `OneCycleLR`, the same epochs, items and batch size;
           validation and one deterministic pass over the pool on the tensors;
  items    `ActiveSplit` over a `DataBlock` whose items are row indices read by a per-item getter (as
           `label_efficiency.py` did): `ActiveLearner.fit`, `learn.validate()`, `ActiveLearner.score()`;
  arrays   `ArraySplit` (batches gathered from tensors, `TensorDL`): the same calls;
  arrays+torch-adam   the same with `opt_func=OptimWrapper(torch.optim.Adam)`, the plain loop's optimiser;
  before   with `--before DIR` (a folder holding an older `fastai_active`), the per-item round with that code.
Writes benchmarks/results/fit_speed.json and .md.

    python -m benchmarks.fit_speed                     # 10 epochs of 2,048 items, 10,000 test and pool items
    python -m benchmarks.fit_speed --epochs 2 --n-test 2000 --n-pool 2000    # quick
"""
import argparse, json, os, subprocess, sys, time
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from fastai.data.block import CategoryBlock, DataBlock, TransformBlock
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat
from fastai.metrics import accuracy
from fastai.optimizer import OptimWrapper

from fastai_active.loop.learner import ActiveLearner
from fastai_active.uncertainty.mc_dropout import MCDropout
from fastai_active.models import gal_cnn
from fastai_active.data.split import ActiveSplit


class RowX:
    "Row `i` of an image array as a float tensor in [0, 1] (a per-item getter)"
    def __init__(self, X): self.X = X
    def __call__(self, i): return torch.from_numpy(self.X[int(i)]).float().div(255)

class RowY:
    def __init__(self, y): self.y = y
    def __call__(self, i): return str(int(self.y[int(i)]))


def data(n_pool, n_test):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (n_pool + n_test, 1, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, n_pool + n_test)
    return X, y


def items_split(X, y, n_pool, epoch_items):
    vocab = [str(i) for i in range(10)]
    dblock = DataBlock(blocks=(TransformBlock, CategoryBlock(vocab=vocab)), get_x=RowX(X), get_y=RowY(y))
    split = ActiveSplit(dblock, list(range(n_pool)), vocab=vocab, valid_items=list(range(n_pool, len(X))),
                        min_epoch_items=epoch_items, seed=0)
    split.label_random(20, balanced=True, seed=0)
    return split


def arrays_split(X, y, n_pool, epoch_items):
    from fastai_active.data.arrays import ArraySplit   # here: `--before` times code that predates it
    split = ArraySplit(X[:n_pool], y[:n_pool], vocab=list(range(10)), valid_x=X[n_pool:], valid_y=y[n_pool:],
                       min_epoch_items=epoch_items, seed=0)
    split.label_random(20, balanced=True, seed=0)
    return split


def make_learner(opt=None):
    def make(dls):
        kw = {} if opt is None else dict(opt_func=partial(OptimWrapper, opt=opt))
        return Learner(dls, gal_cnn(10, c_in=1, size=28), loss_func=CrossEntropyLossFlat(), metrics=accuracy, **kw)
    return make


def timed_round(split, opt, args):
    al = ActiveLearner(split, make_learner(opt), acquisition='batchbald', sampler=MCDropout(20, seed=0), epochs=args.epochs,
                       lr=3e-3, pool_bs=512, dl_kwargs=dict(num_workers=0), seed=0, show_progress=False)
    fit_s = timed(al.fit)
    with al.learn.no_bar(): valid_s = timed(al.learn.validate)
    score_s = timed(al.score)
    return dict(fit_s=fit_s, valid_s=valid_s, score_s=score_s,
                acquire_s=timed(lambda: al.acquisition(al.log_probs, 10, seed=0)))


CLOCK = time.process_time  # `--clock wall`: time.perf_counter


def timed(fn):
    "Process CPU time of `fn()` (steadier than wall time on a shared machine; one thread: no spinning counted), or wall time"
    start = CLOCK()
    fn()
    return CLOCK() - start


def plain_round(X, y, split, args):
    "The same training, validation and one deterministic pool pass in plain PyTorch"
    labelled = split.ledger.labelled_idxs().numpy()
    reps = -(-args.epoch_items // len(labelled))
    x_train = torch.from_numpy(X[np.tile(labelled, reps)])
    y_train = torch.from_numpy(y[np.tile(labelled, reps)])
    torch.manual_seed(0)
    model = gal_cnn(10, c_in=1, size=28)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    bs, n_batches = 64, len(x_train) // 64
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=args.epochs * n_batches)
    g = torch.Generator().manual_seed(0)
    start = CLOCK()
    model.train()
    for _ in range(args.epochs):
        perm = torch.randperm(len(x_train), generator=g)
        for b in range(n_batches):
            idx = perm[b*bs:(b+1)*bs]
            loss = F.cross_entropy(model(x_train[idx].float().div(255)), y_train[idx])
            loss.backward()
            opt.step()
            sched.step()
            opt.zero_grad()
    fit_s = CLOCK() - start
    model.eval()
    x_test, y_test = torch.from_numpy(X[args.n_pool:]), torch.from_numpy(y[args.n_pool:])
    start = CLOCK()
    with torch.no_grad():
        correct = sum((model(x_test[b:b+64].float().div(255)).argmax(1) == y_test[b:b+64]).sum().item()
                      for b in range(0, len(x_test), 64))
    valid_s = CLOCK() - start
    x_pool = torch.from_numpy(X[:args.n_pool])
    start = CLOCK()
    with torch.no_grad():
        for b in range(0, len(x_pool), 512): F.log_softmax(model(x_pool[b:b+512].float().div(255)), 1)
    score_s = CLOCK() - start
    return dict(fit_s=fit_s, valid_s=valid_s, score_s=score_s, acquire_s=float('nan'))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--epochs', type=int, default=10)
    p.add_argument('--epoch-items', type=int, default=2048)
    p.add_argument('--n-pool', type=int, default=10_000)
    p.add_argument('--n-test', type=int, default=10_000)
    p.add_argument('--repeats', type=int, default=2, help='rounds per method (best kept, per phase)')
    p.add_argument('--threads', type=int, default=1, help='torch threads (1: CPU time is the work done)')
    p.add_argument('--before', default=None, help='a folder holding an older `fastai_active`: its per-item round, timed in a child process')
    p.add_argument('--only-items', action='store_true', help=argparse.SUPPRESS)   # child: the per-item round only, as JSON
    p.add_argument('--clock', default='cpu', choices=['cpu', 'wall'], help="wall: wall-clock seconds (a quiet machine only)")
    p.add_argument('--out', default=str(Path(__file__).parent/'results'))
    args = p.parse_args()
    global CLOCK
    if args.clock == 'wall': CLOCK = time.perf_counter
    torch.set_num_threads(args.threads)
    X, y = data(args.n_pool, args.n_test)
    if args.only_items:
        print('ROW ' + json.dumps(timed_round(items_split(X, y, args.n_pool, args.epoch_items), None, args)))
        return
    splits = dict(items=items_split(X, y, args.n_pool, args.epoch_items),
                  arrays=arrays_split(X, y, args.n_pool, args.epoch_items))
    methods = {'plain PyTorch loop (torch Adam)': lambda: plain_round(X, y, splits['arrays'], args),
               'ActiveLearner, per-item DataBlock (fastai Adam)': lambda: timed_round(splits['items'], None, args),
               'ActiveLearner, ArraySplit (fastai Adam)': lambda: timed_round(splits['arrays'], None, args),
               'ActiveLearner, ArraySplit (torch Adam)': lambda: timed_round(splits['arrays'], torch.optim.Adam, args)}
    if args.before:
        def before():
            env = dict(os.environ, PYTHONPATH=os.pathsep.join([args.before, os.environ.get('PYTHONPATH', '')]))
            out = subprocess.run([sys.executable, __file__, *sys.argv[1:], '--only-items'], env=env, check=True,
                                 capture_output=True, text=True).stdout
            return json.loads(next(l for l in out.splitlines() if l.startswith('ROW '))[4:])
        methods = {'before: ActiveLearner, per-item DataBlock (fastai Adam), code of --before': before, **methods}
    load_before = os.getloadavg()
    rows = {}
    for _ in range(args.repeats):
        for name, fn in methods.items():
            r = fn()
            rows[name] = {k: min(v, rows.get(name, {}).get(k, float('inf'))) for k, v in r.items()}
            print(name, {k: round(v, 2) for k, v in r.items()}, flush=True)
    base = rows['plain PyTorch loop (torch Adam)']
    table = [dict(method=k, **{f: round(v[f], 3) for f in v}, fit_x_plain=round(v['fit_s'] / base['fit_s'], 3))
             for k, v in rows.items()]
    env = dict(epochs=args.epochs, epoch_items=args.epoch_items, n_pool=args.n_pool, n_test=args.n_test,
               repeats=args.repeats, clock=args.clock, threads=torch.get_num_threads(), torch=torch.__version__,
               loadavg_1min_before=round(load_before[0], 2), loadavg_1min_after=round(os.getloadavg()[0], 2),
               command=' '.join(['python', 'benchmarks/fit_speed.py', *sys.argv[1:]]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = 'fit_speed' if args.clock == 'cpu' else 'fit_speed_wall'
    (out/f'{stem}.json').write_text(json.dumps(dict(env=env, results=table), indent=2) + '\n')
    u = 'CPU s' if args.clock == 'cpu' else 's'
    lines = [f"One round on 28x28 uint8 images in memory, Gal CNN, {args.epochs} epochs of {args.epoch_items} items at bs 64; "
             f"validation of {args.n_test} items; scoring of {args.n_pool} pool items (plain: 1 deterministic pass; "
             f"ActiveLearner: K=20 MC dropout). {'process CPU' if args.clock == 'cpu' else 'wall-clock'} time, {env['threads']} torch thread(s), load average {env['loadavg_1min_before']} "
             f"before, {env['loadavg_1min_after']} after; best of {args.repeats} per phase", '',
             f'| method | fit ({u}) | fit x plain | validation ({u}) | pool scoring ({u}) | BatchBALD of 10 ({u}) |',
             '|---|---:|---:|---:|---:|---:|']
    lines += [f"| {r['method']} | {r['fit_s']:.2f} | {r['fit_x_plain']:.2f} | {r['valid_s']:.2f} | {r['score_s']:.2f} | "
              f"{r['acquire_s']:.2f} |"
              for r in table]
    (out/f'{stem}.md').write_text('\n'.join(lines) + '\n')
    print('\n'.join(lines))


if __name__ == '__main__': main()
