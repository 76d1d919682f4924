"Start a real Label Studio server on 127.0.0.1 for a test, and stop it after."
import os, shutil, signal, socket, subprocess, sys, tempfile, time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]


def free_port()->int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def wait_for(url:str, timeout:float, proc:subprocess.Popen, log:Path):
    "Poll `url` until it answers 200; fail with the server's log if it exits or `timeout` passes"
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc.poll() is not None: raise RuntimeError(f"the server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(url, timeout=2).status_code == 200: return time.monotonic() - start
        except requests.RequestException: pass
        time.sleep(1)
    raise TimeoutError(f"{url} did not answer within {timeout} s:\n{log.read_text()[-3000:]}")


def wait_for_port(port:int, timeout:float, proc:subprocess.Popen, log:Path):
    "Wait until something listens on 127.0.0.1:`port`; fail with the server's log if it exits or `timeout` passes"
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc.poll() is not None: raise RuntimeError(f"the server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with socket.socket() as s:
            if s.connect_ex(('127.0.0.1', port)) == 0: return time.monotonic() - start
        time.sleep(0.5)
    raise TimeoutError(f"nothing listened on port {port} within {timeout} s:\n{log.read_text()[-3000:]}")


def stop(proc:subprocess.Popen):
    "End the server's process group (it was started in a session of its own): SIGTERM, then SIGKILL"
    if proc.poll() is not None: return
    os.killpg(proc.pid, signal.SIGTERM)
    try: proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


@dataclass
class LabelStudioServer:
    url: str
    email: str
    password: str
    token: str  # a personal access token
    started_s: float


def label_studio_exe()->str:
    exe = os.environ.get('LABEL_STUDIO_EXE', str(ROOT/'.venv-ls'/'bin'/'label-studio'))
    if not Path(exe).exists(): raise FileNotFoundError(f"no label-studio at {exe}: `make integration` installs it in .venv-ls")
    return exe


def personal_access_token(url:str, email:str, password:str)->str:
    """Log in as a person would (the login form and its CSRF cookie) and create a personal access token.
    Label Studio 1.23 refuses legacy tokens (`--user-token`) unless the organisation enables them; personal access
    tokens are on by default, so the tests use one and leave the organisation's settings as they are."""
    s = requests.Session()
    s.get(f'{url}/user/login/', timeout=10)
    r = s.post(f'{url}/user/login/', data={'email': email, 'password': password, 'csrfmiddlewaretoken': s.cookies['csrftoken']},
               headers={'Referer': f'{url}/user/login/'}, allow_redirects=False, timeout=10)
    if r.status_code != 302: raise RuntimeError(f"login to Label Studio failed ({r.status_code}): {r.text[:300]}")
    r = s.post(f'{url}/api/token/', headers={'X-CSRFToken': s.cookies['csrftoken'], 'Referer': url}, timeout=10)
    if r.status_code != 201: raise RuntimeError(f"no personal access token ({r.status_code}): {r.text[:300]}")
    return r.json()['token']


def sign_up(url:str, email:str, password:str):
    "A second person signs up on the server's own form (in the open-source edition they join its one organisation)"
    s = requests.Session()
    s.get(f'{url}/user/signup/', timeout=10)
    r = s.post(f'{url}/user/signup/', data={'email': email, 'password': password, 'csrfmiddlewaretoken': s.cookies['csrftoken']},
               headers={'Referer': f'{url}/user/signup/'}, allow_redirects=False, timeout=10)
    if r.status_code != 302: raise RuntimeError(f"sign-up to Label Studio failed ({r.status_code}): {r.text[:300]}")


@contextmanager
def label_studio_server(timeout:float=300):
    "A fresh Label Studio on 127.0.0.1 (SQLite in a temporary folder), with a user and a personal access token"
    tmp = Path(tempfile.mkdtemp(prefix='label-studio-'))
    port, email, password = free_port(), 'owner@example.com', 'owner-pass-123'
    env = {**os.environ, 'LABEL_STUDIO_BASE_DATA_DIR': str(tmp), 'LATEST_VERSION_CHECK': 'false', 'COLLECT_ANALYTICS': 'false',
           'SENTRY_DSN': '', 'FRONTEND_SENTRY_DSN': ''}
    log = tmp/'server.log'
    start = time.monotonic()
    with open(log, 'w') as out:
        proc = subprocess.Popen([label_studio_exe(), 'start', '--no-browser', '--host', '127.0.0.1', '--port', str(port),
                                 '--username', email, '--password', password, '--user-token', 'legacy-token-unused-0123'],
                                cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    try:
        url = f'http://127.0.0.1:{port}'
        wait_for(f'{url}/health', timeout, proc, log)
        yield LabelStudioServer(url, email, password, personal_access_token(url, email, password), time.monotonic() - start)
    finally:
        stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)
