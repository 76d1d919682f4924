"""Open every page of the built docs site (`_docs/`) in headless Chromium, as a reader would, and fail on what a
reader would see go wrong.

    python docs/check.py              # after `python docs/build.py`; screenshots go to _docs_check/
    python docs/check.py --only core  # pages whose name contains `core`

The site is served by this script on 127.0.0.1 (a free port) and Chromium is the OS package (`apt-get install
chromium chromium-driver`), driven by selenium through the OS chromedriver. A page fails on: not loading or any
request to our server answered with an error (a missing image, stylesheet or search index), a request to any other
host (the site must work offline), a console error, no title or no `<h1>`, a broken internal link or anchor, a
broken image, Quarto or nbdev markup left visible (`#|` directives, `show_doc(` source, `:::` fences, `{target=`
attributes), or an empty code block left by a hidden cell. The search box must find a name. The home page and one
API page are saved as screenshots.
"""
import argparse, functools, http.server, json, re, shutil, sys, tempfile, threading, time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urldefrag, urlparse, unquote

ROOT = Path(__file__).resolve().parent.parent
SITE, SHOTS = ROOT/'_docs', ROOT/'_docs_check'
CHROME_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
                '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage',
                '--window-size=1280,900']
# Text a reader must never see: lines of Quarto cell options, nbdev's show_doc source, fenced-div and attribute markup
LEAKS = [(re.compile(r'^\s*#\|', re.M), '`#|` directive'), (re.compile(r'show_doc\('), '`show_doc(` source'),
         (re.compile(r'^\s*:::', re.M), '`:::` fenced div'), (re.compile(r'\{(target|\.callout|style)='), 'attribute markup'),
         (re.compile(r'\{\s*\.callout'), 'callout markup'), (re.compile(r'\$\$'), 'unrendered math'),
         (re.compile(r'<!-- WARNING'), 'nbdev warning comment'),
         (re.compile(r'\]\((https?://[^)\s]+|[\w./-]+\.(md|html|ipynb)(#[^)\s]*)?)\)'), 'Markdown link markup')]


class _Ids(HTMLParser):
    "Every `id` (and `name` of `<a>`) in a page: the anchors a link may point to"
    def __init__(self):
        super().__init__(); self.ids = set()
    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k == 'id' or (tag == 'a' and k == 'name'): self.ids.add(v)


def page_ids(site):
    res = {}
    for f in site.rglob('*.html'):
        p = _Ids(); p.feed(f.read_text(encoding='utf-8', errors='replace')); res[f.relative_to(site).as_posix()] = p.ids
    return res


class _Handler(http.server.SimpleHTTPRequestHandler):
    "Serves the site, and remembers every request it could not answer"
    failures = []
    def log_message(self, fmt, *args): pass
    def log_request(self, code='-', size='-'):
        if isinstance(code, int) and code >= 400 or str(code).startswith(('4', '5')):
            type(self).failures.append((self.path, int(code)))
        super().log_request(code, size)


def site_prefix():
    "The path the site is published under (`/fastai_active/` from site_url), as 404.html's absolute links expect"
    m = re.search(r'^site_url:\s*(\S+)', (ROOT/'docs'/'mkdocs.yml').read_text(encoding='utf-8'), re.M)
    return '/' + urlparse(m.group(1)).path.strip('/') + '/' if m and urlparse(m.group(1)).path.strip('/') else '/'


def serve(site, prefix):
    "Serve `site` under `prefix` on 127.0.0.1 (a free port), in a thread"
    class Handler(_Handler):
        def translate_path(self, path):
            path = urlparse(path).path
            return super().translate_path('/' + path[len(prefix):] if path.startswith(prefix) else '/__outside_the_site__')
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(Handler, directory=str(site)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f'http://127.0.0.1:{httpd.server_address[1]}{prefix}'


def chrome(user_dir):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    binary = shutil.which('chromium') or shutil.which('chromium-browser') or shutil.which('google-chrome')
    driver_bin = shutil.which('chromedriver')
    if not binary or not driver_bin:
        sys.exit("docs check: Chromium and its driver are needed: apt-get install -y chromium chromium-driver")
    opts.binary_location = binary
    for f in CHROME_FLAGS + [f'--user-data-dir={user_dir}']: opts.add_argument(f)
    opts.set_capability('goog:loggingPrefs', {'browser': 'ALL', 'performance': 'ALL'})
    return webdriver.Chrome(options=opts, service=Service(driver_bin))


_PAGE_JS = """
const content = document.querySelector('article.md-content__inner') || document.body;
const blank = [...content.querySelectorAll('pre, div.highlight')].filter(e => !e.innerText.trim()).length;
return {
  title: document.title, h1: (content.querySelector('h1') || {innerText: ''}).innerText.trim(),
  text: content.innerText,
  links: [...document.querySelectorAll('a[href]')].map(a => a.href),
  images: [...document.querySelectorAll('img')].map(i => ({src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0})),
  blank: blank, ready: document.readyState,
  nav: document.querySelectorAll('.md-nav__link').length, search: !!document.querySelector('.md-search__input'),
};
"""


def _wait(driver, cond, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        res = driver.execute_script(cond)
        if res: return res
        time.sleep(0.05)
    return None


def check_page(driver, base, rel, ids, problems, site=SITE):
    url = base + rel
    driver.get(url)
    _wait(driver, "return document.readyState === 'complete'")
    _wait(driver, "return !!document.querySelector('.md-search__input') || document.readyState === 'complete'", 2)
    info = driver.execute_script(_PAGE_JS)
    bad = lambda msg: problems.append(f"{rel}: {msg}")
    if not info['title'].strip(): bad("no <title>")
    if not info['h1']: bad("no <h1> heading")
    if not info['nav']: bad("no navigation")
    for pat, what in LEAKS:
        m = pat.search(info['text'])
        if m:
            text, pos = info['text'], m.end() - 1
            end = text.find('\n', pos)
            bad(f"{what} visible: {text[text.rfind(chr(10), 0, pos) + 1:end if end >= 0 else None][:100]!r}")
    if info['blank']: bad(f"{info['blank']} empty code block(s)")
    n_links = 0
    for href in info['links']:
        if not href.startswith(base): continue
        n_links += 1
        target, frag = urldefrag(href)
        path = unquote(target[len(base):].split('?')[0]) or 'index.html'
        if path.endswith('/'): path += 'index.html'
        f = site/path
        if not f.is_file(): bad(f"broken link {href}"); continue
        if frag and path.endswith('.html') and unquote(frag) not in ids.get(path, set()): bad(f"broken anchor {href}")
    for img in info['images']:
        if not img['ok']: bad(f"broken image {img['src']}")
    for entry in driver.get_log('browser'):
        if entry['level'] == 'SEVERE': bad(f"console error: {entry['message'][:300]}")
    for entry in driver.get_log('performance'):
        msg = json.loads(entry['message'])['message']
        if msg.get('method') == 'Network.requestWillBeSent':
            req = msg['params']['request']['url']
            if req.startswith(('http:', 'https:', 'ws:')) and not req.startswith(base):
                bad(f"request outside the site: {req[:200]}")
    return n_links, len(info['images'])


def check_search(driver, base, query, problems):
    "Type a name into Material's search box and expect a result linking to its page"
    driver.get(base + 'index.html')
    _wait(driver, "return document.readyState === 'complete'")
    boxes = driver.find_elements('css selector', '.md-search__input')
    if not boxes:
        problems.append("index.html: no search box"); return []
    box = boxes[0]
    driver.execute_script("const t = document.getElementById('__search'); if (t) t.checked = true")
    box.click(); box.send_keys(query)
    hits = _wait(driver, "const r = [...document.querySelectorAll('.md-search-result__item a')];"
                         "return r.length ? r.map(a => a.href) : null", 15)
    if not hits: problems.append(f"index.html: search: no result for {query!r}")
    return hits or []


def screenshot(driver, base, rel, path, height=2600):
    driver.set_window_size(1280, height)
    driver.get(base + rel)
    _wait(driver, "return document.readyState === 'complete'")
    time.sleep(0.3)
    driver.save_screenshot(str(path))
    driver.set_window_size(1280, 900)


def _rel(p):
    try: return p.relative_to(ROOT).as_posix()
    except ValueError: return str(p)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--only', default='', help='check only pages whose file name contains this')
    ap.add_argument('--api-page', default='loop.learner.html', help='the API page to screenshot')
    ap.add_argument('--site', type=Path, default=SITE, help='the built site')
    ap.add_argument('--shots', type=Path, default=SHOTS, help='where the screenshots go')
    ap.add_argument('--prefix', default=None, help='the path the site is served under (default: from site_url)')
    args = ap.parse_args(argv)
    site, shots_dir = args.site.resolve(), args.shots.resolve()
    if not (site/'index.html').is_file(): sys.exit(f"docs check: no site in {site}: run `make docs` first")
    start = time.perf_counter()
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob('*.html') if args.only in p.name)
    ids = page_ids(site)
    _Handler.failures = []
    httpd, base = serve(site, site_prefix() if args.prefix is None else args.prefix)
    shots_dir.mkdir(parents=True, exist_ok=True)
    problems, n_links, n_imgs = [], 0, 0
    user_dir = tempfile.mkdtemp(prefix='docs-chromium-')
    driver = None
    try:
        driver = chrome(user_dir)
        for rel in pages:
            nl, ni = check_page(driver, base, rel, ids, problems, site)
            n_links, n_imgs = n_links + nl, n_imgs + ni
        hits = check_search(driver, base, 'BatchBALD', problems)
        shots = [shots_dir/'home.png', shots_dir/f"api_{Path(args.api_page).stem}.png"]
        screenshot(driver, base, 'index.html', shots[0])
        if (site/args.api_page).is_file(): screenshot(driver, base, args.api_page, shots[1])
        else: problems.append(f"{args.api_page}: no such page to screenshot")
    finally:
        if driver is not None: driver.quit()
        httpd.shutdown()
        shutil.rmtree(user_dir, ignore_errors=True)
    for path, code in _Handler.failures: problems.append(f"server answered {code} for {path}")
    secs = time.perf_counter() - start
    print(f"docs check: {len(pages)} pages, {n_links} internal links, {n_imgs} images, search 'BatchBALD': "
          f"{len(hits)} results; screenshots {', '.join(_rel(p) for p in shots)}; {secs:.1f} s")
    if problems:
        print(f"docs check FAILED: {len(problems)} problem(s)")
        for p in problems: print('  ' + p)
        return 1
    print("docs check passed")
    return 0


if __name__ == '__main__': sys.exit(main())
