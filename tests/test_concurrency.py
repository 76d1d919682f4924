"""Two real processes acquire and label from the same ledger file at once: no round is opened twice, no label is lost.

Both workers wait for a start file, then race: each scores the pool slowly (so both pass the "nothing pending"
check before either writes), and only one may open each round; the other's request is refused in the same
transaction that would have written it. Both label what is pending; a label call that loses the race is refused as
a whole. Every accepted call is logged, and the final ledger must hold exactly what the logs say was accepted.
"""
import json, os, sqlite3, subprocess, sys, time
from pathlib import Path

import pytest

from _concurrent_worker import build, make_data

pytestmark = pytest.mark.slow  # two worker processes that import fastai
WORKER = Path(__file__).with_name('_concurrent_worker.py')
ROUNDS, N = 4, 3


def test_two_processes_acquiring_and_labelling_at_once(tmp_path):
    path, start = tmp_path/'ledger.db', tmp_path/'start'
    al = build(path, seed=0)
    al.split.label_random(6, seed=0)
    al.ledger.close()
    env = {**os.environ, 'PYTHONHASHSEED': '0'}
    procs = [subprocess.Popen([sys.executable, str(WORKER), str(path), str(ROUNDS), str(N), name, str(tmp_path/f'{name}.log'),
                               str(start)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env) for name in ('p1', 'p2')]
    ready = lambda n: (tmp_path/f'{n}.log').exists() and 'ready' in (tmp_path/f'{n}.log').read_text()
    deadline = time.time() + 300  # both processes import fastai and open the ledger first
    while not all(ready(n) for n in ('p1', 'p2')):
        assert time.time() < deadline and all(p.poll() is None for p in procs), "a worker did not start"
        time.sleep(0.05)
    start.touch()
    for p in procs:
        out, _ = p.communicate(timeout=600)
        assert p.returncode == 0, out.decode()
    logs = [json.loads(l) for n in ('p1', 'p2') for l in (tmp_path/f'{n}.log').read_text().splitlines()]

    con = sqlite3.connect(path)
    labels = con.execute('SELECT ds_idx, label, source, round, annotator, request FROM labels').fetchall()
    requests = con.execute('SELECT id, ds_idx, round, status FROM requests').fetchall()
    con.close()
    # one batch of N per round: no round was opened twice, no request was left behind or cancelled
    per_round = {}
    for _, _, r, status in requests:
        assert status == 'labelled'
        per_round[r] = per_round.get(r, 0) + 1
    assert per_round == {r: N for r in range(1, ROUNDS + 1)}
    assert len({d for _, d, _, _ in requests}) == len(requests)  # no item requested twice
    acquired = [e for e in logs if e['event'] == 'acquired']
    assert sorted(e['round'] for e in acquired) == list(range(1, ROUNDS + 1))
    assert any(e['event'] == 'acquire refused' and ('moved to round' in e['error'] or 'still waiting' in e['error'])
               for e in logs), "the processes never raced: the test did not test anything"
    # no lost label: every accepted label call is in the ledger, with its annotator; nothing else was added
    accepted = {}
    for e in logs:
        if e['event'] == 'labelled':
            assert e['n'] == len(e['ds_idxs'])
            for d, l in zip(e['ds_idxs'], e['labels']): accepted[d] = l
    by_item = {d: (json.loads(l), s, a, req) for d, l, s, _, a, req in labels}
    truth = list(make_data().y)
    assert {d for d, (_, s, _, _) in by_item.items() if s == 'human'} == set(accepted)
    assert all(by_item[d][0] == l == truth[d] for d, l in accepted.items())
    assert len(labels) == 6 + ROUNDS * N
    assert all(by_item[d][3] is not None and by_item[d][2] in ('p1', 'p2') for d in accepted)  # each answers its request
