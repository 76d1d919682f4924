"""What fitting TypiClust's k-means on a sample costs in cluster quality, on the inputs of `diversity_speed.py`.

    .venv/bin/python -m benchmarks.typiclust_kmeans --sizes 100000

For the L + N pool (L = 100 labelled, D = 512, a seeded mixture of 50 Gaussians) and k = L + n = 200 clusters:
CPU seconds (one thread) and inertia (sum over all L + N items of the squared distance to the nearest center) of
`kmeans` with the centers fitted on all items (`max_fit_items=None`) or on seeded samples, as `typiclust`'s
`fit_items` does; the ratio to the all-items fit. Prints a Markdown table.
"""
import argparse, os, time
os.environ.setdefault('OMP_NUM_THREADS', '1')
import torch
from benchmarks.diversity_speed import make_inputs, L, n
from fastai_active.acquisition.diversity import kmeans, min_sq_dists


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--sizes', type=int, nargs='+', default=[100_000])
    ap.add_argument('--fit-items', type=int, nargs='+', default=[0, 50_000, 20_000], help="0: all items")
    ap.add_argument('--seed', type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    print("| N | centers fitted on | CPU (s) | inertia | vs all items |\n|---|---|---|---|---|")
    for N in args.sizes:
        emb, lab, _ = make_inputs(N)
        X = torch.cat([torch.from_numpy(lab), torch.from_numpy(emb)])
        base = None
        for m in args.fit_items:
            start = time.thread_time()
            centers = kmeans(X, L + n, seed=args.seed, max_fit_items=m or None)[0]
            cpu = time.thread_time() - start
            inertia = min_sq_dists(X, centers)[0].double().sum().item()
            base = base or inertia
            print(f"| {N:,} | {'all' if not m else f'{m:,}'} | {cpu:.2f} | {inertia:.5e} | {inertia / base:.4f} |", flush=True)


if __name__ == '__main__': main()
