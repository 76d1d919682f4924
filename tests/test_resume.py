"""A process killed (SIGKILL) in the middle of a round resumes from the ledger: no label lost, none duplicated.

The worker runs a seeded loop on a ledger file. We kill it twice, once while acquired items wait for the
oracle's labels and once at an arbitrary moment, restart it each time with the same command, and compare the
final ledger with that of a run that was never interrupted.
"""
import json, os, signal, sqlite3, subprocess, sys, time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # worker processes killed and restarted
WORKER = Path(__file__).with_name('_resume_worker.py')
ROUNDS, N = 5, 5


def start(path, sleep_s):
    env = {**os.environ, 'PYTHONHASHSEED': '0'}
    return subprocess.Popen([sys.executable, str(WORKER), str(path), str(ROUNDS), str(N), str(sleep_s)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)


def read(path):
    "Labels, requests and history as plain data, read with a connection of our own"
    if not Path(path).exists(): return None
    con = sqlite3.connect(f'file:{path}?mode=ro', uri=True, timeout=30)
    try:
        try:
            labels = con.execute('SELECT ds_idx, label, source, round FROM labels ORDER BY ds_idx').fetchall()
            requests = con.execute("SELECT ds_idx, round FROM requests WHERE status = 'pending' ORDER BY rank").fetchall()
            history = [json.loads(r[0]) for r in con.execute('SELECT record FROM history ORDER BY round')]
        except sqlite3.OperationalError: return None  # tables not created yet
        return dict(labels=labels, requests=requests, history=history)
    finally: con.close()


def wait_for(path, cond, proc, timeout=240):
    t0 = time.time()
    while time.time() - t0 < timeout:
        state = read(path)
        if state is not None and cond(state): return state
        if proc.poll() is not None: raise AssertionError(f"worker ended early:\n{proc.stdout.read().decode()}")
        time.sleep(0.02)
    raise AssertionError("timed out waiting for the worker")


def check_consistent(state):
    "Every round is all-or-nothing: 10 initial labels, then N per round, never partial"
    rounds = {}
    for _, _, source, r in state['labels']: rounds[r] = rounds.get(r, 0) + 1
    assert rounds.pop(0) == 10
    assert all(c == N for c in rounds.values()), rounds
    assert sorted(rounds) == list(range(1, len(rounds) + 1))
    assert len({d for d, *_ in state['labels']}) == len(state['labels'])


def finish(path, sleep_s=0.0):
    proc = start(path, sleep_s)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out.decode()
    return read(path)


@pytest.mark.skipif(not hasattr(signal, 'SIGKILL'), reason="needs SIGKILL")
def test_sigkill_mid_round_resumes_without_loss_or_duplicates(tmp_path):
    reference = finish(tmp_path/'reference.db')
    path = tmp_path/'ledger.db'

    # 1. kill while the requests of round 2 wait for the (slow) oracle's labels
    proc = start(path, sleep_s=2.0)
    state = wait_for(path, lambda s: any(r == 2 for _, r in s['requests']), proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    after = read(path)
    assert proc.returncode == -signal.SIGKILL
    assert len(after['requests']) == N and {r for _, r in after['requests']} == {2}
    assert not any(r == 2 for *_, r in after['labels'])  # nothing of round 2 was labelled yet
    check_consistent(after)

    # 2. restart; kill again at an arbitrary moment once round 3 is under way
    proc = start(path, sleep_s=0.5)
    wait_for(path, lambda s: any(r == 3 for *_, r in s['labels']), proc)
    time.sleep(0.7)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    check_consistent(read(path))

    # 3. restart with the same command: it finishes the job
    final = finish(path)
    check_consistent(final)
    assert final['requests'] == []
    assert len(final['labels']) == 10 + ROUNDS * N
    # the interrupted run ends exactly where the uninterrupted one does: same items, labels, rounds
    assert [(d, l, r) for d, l, _, r in final['labels']] == [(d, l, r) for d, l, _, r in reference['labels']]
    assert [h['round'] for h in final['history']] == list(range(ROUNDS + 1))
    assert [h['n_labelled'] for h in final['history']] == [10 + N * r for r in range(ROUNDS + 1)]
    # the oracle's labels are the held labels
    from _resume_worker import make_data
    truth = list(make_data().y)
    assert all(json.loads(l) == truth[d] for d, l, *_ in final['labels'])
