"""Seed a new venv with the torch stack of another venv by hard links, so CI does not hold two 6 GB copies.

Usage: SRC_VENV/bin/python .ci/link_torch.py DEST_SITE_PACKAGES

Run with the source venv's python. It links torch, torchvision and every distribution they require (their
installed files and dist-info, as listed in each RECORD) into DEST_SITE_PACKAGES, so pip in the destination
sees the same torch as installed and does not install it again. Files outside site-packages (console
scripts) are skipped. Exits non-zero, having linked nothing, when a hard link is impossible (e.g. another
filesystem): the caller then installs torch with pip.
"""
import os, re, sys, importlib.metadata as md
from pathlib import Path

try: from packaging.requirements import Requirement
except ImportError: from pip._vendor.packaging.requirements import Requirement

ROOTS = ('torch', 'torchvision')

def norm(name): return re.sub(r'[-_.]+', '-', name).lower()

def closure(roots, skip=()):
    "Installed distributions that `roots` need, following the extras that requirements ask for."
    seen, done, todo = {}, set(), [(r, '') for r in roots]
    while todo:
        name, extra = todo.pop()
        name = norm(name)
        if (name, extra) in done or name in skip: continue
        done.add((name, extra))
        try: dist = seen.get(name) or md.distribution(name)
        except md.PackageNotFoundError: continue  # a requirement for another platform or python
        seen[name] = dist
        for r in dist.requires or []:
            req = Requirement(r)
            if req.marker is None or req.marker.evaluate({'extra': extra}):
                todo += [(req.name, e) for e in ('', *sorted(req.extras))]
    return seen

def main(dest):
    dest = Path(dest).resolve()
    if not dest.is_dir(): sys.exit(f"expected an existing site-packages folder, got {dest}")
    # what the new venv already has (pip, setuptools) stays its own
    present = {norm(d.metadata['Name']) for d in md.distributions(path=[str(dest)])}
    dists = closure(ROOTS, skip=present)
    missing = [r for r in ROOTS if r not in dists]
    if missing: sys.exit(f"the source venv has no {missing}")
    pairs = []
    for dist in dists.values():
        base = Path(dist.locate_file('')).resolve()
        for f in dist.files or []:
            src = Path(dist.locate_file(f)).resolve()
            try: rel = src.relative_to(base)
            except ValueError: continue  # console scripts in bin/
            if src.is_file(): pairs.append((src, dest/rel))
    probe_src, probe_dst = pairs[0][0], dest/'.link_probe'
    try: os.link(probe_src, probe_dst)
    except OSError as e: sys.exit(f"cannot hard-link into {dest}: {e}")
    probe_dst.unlink()
    for src, dst in pairs:
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.exists(): os.link(src, dst)
    names = ', '.join(f"{d.metadata['Name']} {d.version}" for d in dists.values() if norm(d.metadata['Name']) in ROOTS)
    print(f"linked {len(dists)} distributions ({len(pairs)} files) for {names}")

if __name__ == '__main__':
    if len(sys.argv) != 2: sys.exit(__doc__)
    main(sys.argv[1])
