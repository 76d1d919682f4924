"""The labelling widget as a person sees it: Voila serves a notebook with the widget, headless Chromium (the OS
package) shows it, selenium clicks and types through a batch; the ledger is checked from here. Run with `make integration`;
FASTAI_ACTIVE_UPDATE_SCREENSHOT=1 also writes the screenshot the docs show (nbs/images/label_widget.png)."""
import json, os, shutil, sqlite3, subprocess, sys, time
from contextlib import contextmanager
from pathlib import Path

import pytest

from .servers import ROOT, free_port, wait_for_port, stop

SCREENSHOT = ROOT/'nbs'/'images'/'label_widget.png'
N = 6
IMPORTS = ("import json, os\nfrom pathlib import Path\nfrom fastai.vision.all import get_image_files\n"
           "from fastai_active.all import *\nfrom fastai_active.people.widgets import LabelWidget\n"
           "work = Path(os.environ['WIDGET_TEST_DIR'])\nfolder = digits_folder(work/'digits')")

# a round as in the how-to: 20 random labels, a model, the 6 items it asks for
ROUND_CELLS = [
    IMPORTS,
    "split = ActiveSplit(digits_block(), folder/'train', path=work/'labels.db', vocab=[str(i) for i in range(10)],\n"
    "                    valid_items=get_image_files(folder/'test')[:120], min_epoch_items=64)\n"
    "split.label_random(20, seed=0)\n"
    "al = ActiveLearner(split, digits_learner, epochs=3, lr=1e-2, dl_kwargs=dict(num_workers=0), seed=0, show_progress=False)\n"
    f"al.fit()\nreq = al.acquire({N})",
    "LabelWidget(al, size=128)",
]

# no model: a 9, an 8 and a 0 of the pool requested in that order (the digit is the file's folder, `9/0123.png`)
DIGIT_CELLS = [
    IMPORTS,
    "split = ActiveSplit(digits_block(), folder/'train', path=work/'labels.db', vocab=[str(i) for i in range(10)])\n"
    "pool = split.pool().ds_idxs.tolist()\n"
    "first = {}\n"
    "for i, digit in zip(pool, split.true_labels(pool)): first.setdefault(digit, i)\n"
    "split.ledger.request([first['9'], first['8'], first['0']], scores=[3., 2., 1.])",
    "LabelWidget(split, size=128)",
]


def notebook(path:Path, sources:list[str]):
    cells = [{'cell_type': 'code', 'execution_count': None, 'id': f'c{i}', 'metadata': {}, 'outputs': [], 'source': src}
             for i, src in enumerate(sources)]
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


class Page:
    "The widget in the browser: its buttons, its progress line, its key box"
    def __init__(self, driver):
        from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
        from selenium.webdriver.support.ui import WebDriverWait
        self.driver = driver
        self.wait = WebDriverWait(driver, int(os.environ.get('WIDGET_TEST_WAIT', 300)),
                                  ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))

    def find(self, xpath:str):
        from selenium.webdriver.common.by import By
        return self.driver.find_element(By.XPATH, xpath)

    def css(self, selector:str):
        from selenium.webdriver.common.by import By
        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def button(self, text:str): return self.find(f"//button[normalize-space(.)='{text}']")
    def header(self)->str: return self.find("//*[contains(text(), 'labelled ·')]").text
    def n_labelled(self)->int: return int(self.header().split(' of ')[0])
    def key_box(self): return self.css('.widget-text input[placeholder^="keys"]')
    def item_key(self)->str: return self.css('.jp-OutputArea-output .widget-html code').text
    def until(self, cond): return self.wait.until(lambda d: cond())
    def until_labelled(self, n:int): return self.until(lambda: self.header().startswith(f'{n} of '))


@contextmanager
def widget_page(tmp_path:Path, cells:list[str]):
    "Voila serving a notebook of `cells` (the widget last) and headless Chromium on it; on failure, what both showed"
    nb = tmp_path/'label.ipynb'
    notebook(nb, cells)
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
        wait_for_port(port, 120, proc, log)
        driver = chromium(tmp_path/'chromium-profile')
        driver.get(f'http://127.0.0.1:{port}/')
        yield Page(driver)
    except Exception:
        if driver is not None:  # what the browser showed, and what Voila said, for the failure report
            driver.save_screenshot(str(tmp_path/'failure.png'))
            (tmp_path/'failure.html').write_text(driver.page_source)
        print(f"screenshot and page in {tmp_path}; Voila's log:\n{log.read_text()[-3000:]}")
        raise
    finally:
        if driver is not None: driver.quit()
        stop(proc)


def recorded(db:Path)->list[tuple]:
    "(ds_idx, label, annotator, via, source) of every label answer in the ledger file, in the order given"
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT a.ds_idx, a.label, a.annotator, a.via, l.source FROM answers a JOIN labels l USING (ds_idx) "
                           "WHERE a.action = 'label' ORDER BY a.id").fetchall()
    return [(r[0], json.loads(r[1]), *r[2:]) for r in rows]


def test_widget_in_a_browser(tmp_path):
    start = time.monotonic()
    with widget_page(tmp_path, ROUND_CELLS) as page:
        page.until(lambda: page.driver.find_elements('xpath', "//button[normalize-space(.)='[0] 0']"))
        assert page.header().startswith(f'0 of {N} labelled')
        page.css('.widget-text input[placeholder="your name"]').send_keys('ana')
        time.sleep(1)
        for i, text in enumerate(['[3] 3', '[8] 8']):  # two answers by click: the classes 3 and 8
            page.button(text).click()
            page.until_labelled(i + 1)
        if os.environ.get('FASTAI_ACTIVE_UPDATE_SCREENSHOT') == '1':
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.css('.jp-OutputArea-output .widget-vbox').screenshot(str(SCREENSHOT))
        keys = page.key_box()
        keys.send_keys('1')  # the key 1: the class 1
        page.until_labelled(3)
        keys.send_keys('s')  # skip
        page.until(lambda: '1 skipped' in page.header())
        keys.send_keys('u')  # undo the skip
        page.until(lambda: '0 skipped' in page.header())
        for text in ['[0] 0', '[0] 0', '[7] 7']:
            n = page.n_labelled()
            page.button(text).click()
            page.until_labelled(n + 1)
        assert 'batch done' in page.driver.page_source
        print(f"browser round: {time.monotonic() - start:.0f} s")
    # what the person clicked and typed is in the ledger, with their name
    rows = recorded(tmp_path/'labels.db')
    assert [r[1] for r in rows] == ['3', '8', '1', '0', '0', '7']
    assert {r[2:] for r in rows} == {('ana', 'widget', 'human')}


def test_typing_the_digit_on_show_records_it(tmp_path):
    "Issue 25: on the digits a key is the class's own name: a person who sees a 9 types 9 and the ledger says '9'"
    start = time.monotonic()
    with widget_page(tmp_path, DIGIT_CELLS) as page:
        page.until(lambda: page.driver.find_elements('xpath', "//button[normalize-space(.)='[9] 9']"))
        assert [b.text.strip() for b in page.driver.find_elements('xpath', "//button[starts-with(normalize-space(.), '[')]")][:10] \
            == [f'[{d}] {d}' for d in range(10)]
        assert page.key_box().get_attribute('placeholder').startswith('keys: 0123456789 a class')
        assert page.header().startswith('0 of 3 labelled')
        page.css('.widget-text input[placeholder="your name"]').send_keys('ben')
        time.sleep(1)
        for n, digit in enumerate('980'):  # the item on show is a `digit` (its folder says so); the person types it
            page.until(lambda: page.item_key().startswith(f'{digit}/'))
            page.key_box().send_keys(digit)
            page.until_labelled(n + 1)
        assert 'batch done' in page.driver.page_source
        print(f"browser, typing the digits: {time.monotonic() - start:.0f} s")
    rows = recorded(tmp_path/'labels.db')
    assert [r[1] for r in rows] == ['9', '8', '0']
    assert {r[2:] for r in rows} == {('ben', 'widget', 'human')}
    # each answer is the digit the image is: the split reads the truth from the file's folder
    from fastai_active.data.split import ActiveSplit
    from fastai_active.demo import digits_block
    split = ActiveSplit(digits_block(), tmp_path/'digits'/'train', path=tmp_path/'labels.db', vocab=[str(i) for i in range(10)])
    idxs = [r[0] for r in rows]
    assert split.true_labels(idxs) == ['9', '8', '0'] == [split.ledger.labels(idxs)[i] for i in idxs]
