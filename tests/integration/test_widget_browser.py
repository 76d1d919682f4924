"""The labelling widget as a person sees it: Voila serves a notebook with the widget, headless Chromium (the OS
package) shows it, selenium clicks through one batch; the ledger is checked from here. Run with `make integration`;
FASTAI_ACTIVE_UPDATE_SCREENSHOT=1 also writes the screenshot the docs show (nbs/images/label_widget.png)."""
import json, os, shutil, subprocess, sys, tempfile, time
from pathlib import Path

import pytest

from .servers import ROOT, free_port, wait_for_port, stop

SCREENSHOT = ROOT/'nbs'/'images'/'label_widget.png'
N = 6

NOTEBOOK_CELLS = [
    "import os\nfrom pathlib import Path\nfrom fastai.vision.all import get_image_files\nfrom fastai_active.all import *\nfrom fastai_active.widgets import LabelWidget",
    "work = Path(os.environ['WIDGET_TEST_DIR'])\nfolder = digits_folder(work/'digits')\n"
    "split = ActiveSplit(digits_block(), folder/'train', path=work/'labels.db', vocab=[str(i) for i in range(10)],\n"
    "                    valid_items=get_image_files(folder/'test')[:120], min_epoch_items=64)\n"
    "split.label_random(20, seed=0)\n"
    "al = ActiveLearner(split, digits_learner, epochs=3, lr=1e-2, dl_kwargs=dict(num_workers=0), seed=0, show_progress=False)\n"
    f"al.fit()\nreq = al.acquire({N})",
    "LabelWidget(al, size=128)",
]


def notebook(path:Path):
    cells = [{'cell_type': 'code', 'execution_count': None, 'id': f'c{i}', 'metadata': {}, 'outputs': [], 'source': src}
             for i, src in enumerate(NOTEBOOK_CELLS)]
    nb = {'cells': cells, 'metadata': {'kernelspec': {'display_name': 'python3', 'language': 'python', 'name': 'python3'}},
          'nbformat': 4, 'nbformat_minor': 5}
    path.write_text(json.dumps(nb))


def chromium(profile:Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which('chromium') or '/usr/bin/chromium'
    for a in ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
              '--disable-sync', '--no-first-run', f'--user-data-dir={profile}', '--window-size=1100,800']:
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(shutil.which('chromedriver') or '/usr/bin/chromedriver'), options=opts)


def test_widget_in_a_browser(tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    start = time.monotonic()
    nb = tmp_path/'label.ipynb'
    notebook(nb)
    port = free_port()
    env = {**os.environ, 'WIDGET_TEST_DIR': str(tmp_path), 'MPLBACKEND': 'Agg'}
    log = tmp_path/'voila.log'
    with open(log, 'w') as out:
        proc = subprocess.Popen([sys.executable, '-m', 'voila', str(nb), '--no-browser', f'--port={port}', '--Voila.ip=127.0.0.1',
                                 '--VoilaExecutor.timeout=300', '--ServerApp.disable_check_xsrf=False'],
                                cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    driver = None
    try:
        url = f'http://127.0.0.1:{port}/'
        wait_for_port(port, 120, proc, log)
        driver = chromium(tmp_path/'chromium-profile')
        driver.get(url)
        from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
        wait = WebDriverWait(driver, int(os.environ.get('WIDGET_TEST_WAIT', 300)),
                             ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))
        button = lambda text: driver.find_element(By.XPATH, f"//button[normalize-space(.)='{text}']")
        wait.until(lambda d: d.find_elements(By.XPATH, "//button[normalize-space(.)='[1] 0']"))
        header = lambda: driver.find_element(By.XPATH, "//*[contains(text(), 'labelled ·')]").text
        assert header().startswith(f'0 of {N} labelled')
        driver.find_element(By.CSS_SELECTOR, '.widget-text input[placeholder="your name"]').send_keys('ana')
        time.sleep(1)
        clicks = ['[4] 3', '[9] 8']  # two answers by click: the classes 3 and 8
        for i, text in enumerate(clicks):
            button(text).click()
            wait.until(lambda d: header().startswith(f'{i + 1} of {N} labelled'))
        if os.environ.get('FASTAI_ACTIVE_UPDATE_SCREENSHOT') == '1':
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            widget = driver.find_element(By.CSS_SELECTOR, '.jp-OutputArea-output .widget-vbox')
            widget.screenshot(str(SCREENSHOT))
        keys = driver.find_element(By.CSS_SELECTOR, '.widget-text input[placeholder^="keys"]')
        keys.send_keys('2')  # the key 2: class 1
        wait.until(lambda d: header().startswith(f'3 of {N} labelled'))
        keys.send_keys('s')  # skip
        wait.until(lambda d: '1 skipped' in header())
        keys.send_keys('u')  # undo the skip
        wait.until(lambda d: '0 skipped' in header())
        for text in ['[1] 0', '[1] 0', '[8] 7']:
            n = int(header().split(' of ')[0])
            button(text).click()
            wait.until(lambda d: header().startswith(f'{n + 1} of {N} labelled'))
        assert 'batch done' in driver.page_source
        print(f"browser round: {time.monotonic() - start:.0f} s")
    except Exception:
        if driver is not None:  # what the browser showed, and what Voila said, for the failure report
            driver.save_screenshot(str(tmp_path/'failure.png'))
            (tmp_path/'failure.html').write_text(driver.page_source)
        print(f"screenshot and page in {tmp_path}; Voila's log:\n{log.read_text()[-3000:]}")
        raise
    finally:
        if driver is not None: driver.quit()
        stop(proc)
    # what the person clicked is in the ledger, with their name
    import sqlite3
    rows = sqlite3.connect(tmp_path/'labels.db').execute(
        "SELECT a.label, a.annotator, a.via, l.source FROM answers a JOIN labels l USING (ds_idx) WHERE a.action = 'label' ORDER BY a.id").fetchall()
    assert [json.loads(r[0]) for r in rows] == ['3', '8', '1', '0', '0', '7']
    assert {r[1:] for r in rows} == {('ana', 'widget', 'human')}
