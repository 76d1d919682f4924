"""A person's image folder that grows, loses a file and moves, labelled across three processes.

Process 1 labels the whole folder (4 initial labels, two rounds of 3). Six images arrive, named so that they sort
among the old ones; process 2 finds exactly them in the pool, acquires among them and labels. Then one labelled image
is deleted and the folder is moved and given as a relative path; process 3 reports the missing image, keeps every
label with its file, and acquires the rest of the new images. Every label must be the class of its file's folder.
"""
import json, os, sqlite3, subprocess, sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow  # three worker processes, one after the other
WORKER = Path(__file__).with_name('_growth_worker.py')


def write_images(folder, names, seed=0):
    "8x8 grey images: 'dark/...' ones dark, 'light/...' ones light"
    rng = np.random.default_rng(seed)
    for n in names:
        f = folder/n
        f.parent.mkdir(parents=True, exist_ok=True)
        lo = 0 if n.startswith('dark') else 170
        Image.fromarray(rng.integers(lo, lo + 85, (8, 8)).astype(np.uint8)).save(f)


def run(folder, ledger, name, rounds, n, cwd):
    proc = subprocess.run([sys.executable, str(WORKER), str(folder), str(ledger), name, str(rounds), str(n)], cwd=cwd,
                          capture_output=True, text=True, timeout=600, env={**os.environ, 'PYTHONHASHSEED': '0'})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def ledger_rows(path):
    con = sqlite3.connect(f'file:{path}?mode=ro', uri=True)
    try:
        items = {json.loads(k): d for d, k in con.execute('SELECT ds_idx, key FROM items')}
        labels = {d: (json.loads(l), s, a, r) for d, l, s, a, r in con.execute('SELECT ds_idx, label, source, annotator, round FROM labels')}
        history = [json.loads(r[0]) for r in con.execute('SELECT record FROM history ORDER BY round')]
    finally: con.close()
    return items, labels, history


def test_a_folder_that_grows_across_three_processes_and_moves(tmp_path):
    old = [f'dark/{c}.png' for c in 'acegi'] + [f'light/{c}.png' for c in 'bdfhj']
    new = ['dark/b2.png', 'dark/d2.png', 'dark/f2.png', 'light/a2.png', 'light/c2.png', 'light/e2.png']
    write_images(tmp_path/'data', old)
    write_images(tmp_path/'valid', ['dark/v1.png', 'dark/v2.png', 'light/v3.png', 'light/v4.png'], seed=2)
    r1 = run(tmp_path/'data', tmp_path/'labels.db', 'ana', rounds=2, n=3, cwd=tmp_path)
    assert r1['added'] == sorted(old) and r1['missing'] == [] and r1['warnings'] == []
    ids1, labels1, _ = ledger_rows(tmp_path/'labels.db')
    assert len(labels1) == 10 and all(labels1[ids1[k]][0] == k.split('/')[0] for k in old)

    write_images(tmp_path/'data', new, seed=1)
    r2 = run(tmp_path/'data', tmp_path/'labels.db', 'ben', rounds=1, n=3, cwd=tmp_path)
    assert r2['added'] == sorted(new) and r2['missing'] == []
    assert r2['rounds'][0]['pool'] == sorted(new)  # the new images, and only they, are unlabelled
    assert set(r2['rounds'][0]['picked']) < set(new)
    ids2, labels2, _ = ledger_rows(tmp_path/'labels.db')
    assert {k: ids2[k] for k in old} == ids1 and {d: labels2[d] for d in labels1} == labels1  # nothing renumbered

    (tmp_path/'data'/'dark'/'a.png').unlink()
    (tmp_path/'data').rename(tmp_path/'moved')
    r3 = run('moved', 'labels.db', 'ana', rounds=1, n=3, cwd=tmp_path)  # relative paths this time
    assert r3['added'] == [] and r3['missing'] == ['dark/a.png']
    assert len(r3['warnings']) == 1 and "1 of them labelled" in r3['warnings'][0] and 'dark/a.png' in r3['warnings'][0]
    left = sorted(set(new) - set(r2['rounds'][0]['picked']))
    assert r3['rounds'][0]['pool'] == left and r3['rounds'][0]['picked'] == left

    ids, labels, history = ledger_rows(tmp_path/'labels.db')
    assert {k: ids[k] for k in old} == ids1 and len(ids) == 16
    key_of = {d: k for k, d in ids.items()}
    assert len(labels) == 16 and all(l == key_of[d].split('/')[0] for d, (l, *_) in labels.items())
    by_round = {}
    for d, (_, source, annotator, r) in labels.items(): by_round.setdefault(r, set()).add((source, annotator))
    assert by_round == {0: {('initial', None)}, 1: {('human', 'ana')}, 2: {('human', 'ana')}, 3: {('human', 'ben')},
                        4: {('human', 'ana')}}
    assert [h['round'] for h in history] == [0, 1, 2, 3, 4] and [h['n_labelled'] for h in history] == [4, 7, 10, 13, 16]
    assert [sum(n for _, n in h['class_counts']) for h in history] == [4, 7, 10, 13, 16]
    assert history[-1]['n_train'] == 15 and history[-1]['n_valid'] == 4  # the deleted image is not trained on
    assert all(0 <= h['accuracy'] <= 1 for h in history)
