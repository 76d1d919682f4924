"""Build the docs site from `nbs/` offline: nbdev's notebook processors, then MkDocs with the Material theme.

    python docs/build.py              # nbs/*.ipynb -> _docs_src/proc/ (processed) -> _docs_src/md/ -> _docs/ (HTML)
    python docs/build.py --workers 1  # process notebooks one at a time (default: 2 spawned workers)
    python docs/build.py --nbdev-eval # execute cells exactly as `nbdev_docs` would (slower; finds what breaks Quarto's path)

Step 1 runs nbdev's own processors (`nbdev.processors.FilterDefaults`: frontmatter, `show_doc` for every exported
symbol, doc links, hidden and exported cells removed) on each notebook, as `nbdev_docs` does before Quarto, but
from Python, so nothing installs Quarto or pip-installs into the system Python. Step 2 turns each processed notebook
into a Markdown page (Quarto-only syntax becomes Material's: callouts, folded code, cell options; plots are written as
PNG files; math becomes MathML). Step 3 is `mkdocs build --strict`, which also fails on a broken link or anchor.
Every notebook is a page; the navigation is made from the file names, so new notebooks need no configuration.
"""
import argparse, ast, base64, hashlib, html, json, multiprocessing, os, re, shutil, subprocess, sys, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NBS, SRC, SITE = ROOT/'nbs', ROOT/'_docs_src', ROOT/'_docs'
PROC, MD = SRC/'proc', SRC/'md'
DOCS_DIR = Path(__file__).resolve().parent

# ---------------------------------------------------------------------------------------------------------------
# Step 1: nbdev's processors (in docs/nbproc.py: spawned workers import it by name)

from nbproc import process_nb  # noqa: E402


def notebooks():
    "Every notebook in `nbs/` in file order (the order of the modules), as nbdev and Quarto list them"
    return sorted(p for p in NBS.glob('*.ipynb') if not p.name.startswith(('_', '.')))


def _fingerprint(nb, nbdev_eval):
    "What a processed notebook depends on: the notebook, the package it documents, this script, nbdev's settings"
    h = hashlib.sha256()
    for p in [nb, Path(__file__), ROOT/'settings.ini', *sorted((ROOT/'fastai_active').glob('**/*.py'))]:
        h.update(p.read_bytes())
    h.update(str(nbdev_eval).encode())
    return h.hexdigest()


def process_all(workers, nbdev_eval, force=False):
    PROC.mkdir(parents=True, exist_ok=True)
    nbs = notebooks()
    for stale in set(PROC.glob('*.ipynb')) - {PROC/nb.name for nb in nbs}: stale.unlink()
    todo = []
    for nb in nbs:
        stamp = PROC/(nb.name + '.sha256')
        fp = _fingerprint(nb, nbdev_eval)
        if force or not (PROC/nb.name).exists() or not stamp.exists() or stamp.read_text() != fp: todo.append((nb, fp))
    print(f"processing {len(todo)} of {len(nbs)} notebooks with nbdev's processors ({workers} worker(s))", flush=True)
    args = [(nb, PROC/nb.name, nbdev_eval) for nb, _ in todo]
    if workers <= 1: results = map(process_nb, args)
    else:
        # spawn, as nbdev does: every worker a fresh interpreter (fork after torch was imported is unsafe)
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context('spawn'))
        results = pool.map(process_nb, args)
    errors = []
    for (nb, fp), (name, secs, err) in zip(todo, results):
        print(f"  {name:34s} {secs:6.1f} s{'  FAILED' if err else ''}", flush=True)
        if err: errors.append(f"{name}: {err}")
        else: (PROC/(nb.name + '.sha256')).write_text(fp)
    if workers > 1: pool.shutdown()
    if errors:
        sys.exit("nbdev's processors failed (a cell that nbdev runs to prepare show_doc raised):\n" + '\n'.join(errors))
    return nbs


# ---------------------------------------------------------------------------------------------------------------
# Step 2: processed notebooks -> Markdown pages

def page_name(nb_path):
    "The page a notebook becomes: nbdev's own rule (`00_core.ipynb` -> `core`), so nbdev's doc links match"
    return re.sub(r'^\d+[a-zA-Z0-9]*_', '', nb_path.stem.lower())


def section(nb_path, nb):
    "Which part of the site a notebook belongs to, from its name and whether it exports a module"
    stem = nb_path.stem
    if stem == 'index': return 'Get started'
    if re.search(r'(^|_)howto(_|$)', stem): return 'How-to guides'
    if re.search(r'(^|_)explain(_|$)', stem): return 'Explanation'
    if any(c['cell_type'] == 'code' and re.search(r'^#\|\s*default_exp\s', ''.join(c['source']), re.M)
           for c in nb['cells']): return 'API reference'
    return 'Results'


SECTIONS = ['Get started', 'How-to guides', 'Explanation', 'API reference', 'Results']
_re_fence = re.compile(r'^(```|~~~)')
_re_callout = re.compile(r'^:::+\s*\{\s*\.callout-(\w+)([^}]*)\}\s*$')
_re_div = re.compile(r'^:::+.*$')
_re_math_block = re.compile(r'\$\$(.+?)\$\$', re.S)
_re_math_inline = re.compile(r'(?<![\\$\w])\$(?!\s)([^$\n]+?)(?<!\s)\$(?![\w$])')
_re_code_span = re.compile(r'(`+)(.+?)\1', re.S)
_CALLOUTS = dict(note='note', tip='tip', warning='warning', important='danger', caution='warning')


def _mathml(tex, display):
    from latex2mathml.converter import convert
    return convert(tex.strip(), display='block' if display else 'inline')


def _protect_code(text, fn):
    "Apply `fn` to `text` outside inline code spans"
    out, last = [], 0
    for m in _re_code_span.finditer(text):
        out.append(fn(text[last:m.start()])); out.append(m.group(0)); last = m.end()
    out.append(fn(text[last:]))
    return ''.join(out)


class Page:
    "One notebook's page: converts its processed cells to Markdown for MkDocs (Material)"
    def __init__(self, nb_path, pages, assets):
        self.src = nb_path
        self.nb = json.loads((PROC/nb_path.name).read_text(encoding='utf-8'))
        self.orig = json.loads(nb_path.read_text(encoding='utf-8'))
        self.name, self.pages, self.assets, self.n_fig = page_name(nb_path), pages, assets, 0
        self.fm = self._frontmatter()
        self.title = str(self.fm.get('title') or self.name)

    def _frontmatter(self):
        import yaml
        for c in self.nb['cells']:
            if c['cell_type'] == 'raw':
                m = re.match(r'^---\s*\n(.*?)\n---\s*$', ''.join(c['source']).strip(), re.S)
                if m: return yaml.safe_load(m.group(1)) or {}
        return {}

    # links ---------------------------------------------------------------------------------------------------
    def _link(self, target):
        "Rewrite a link target: our own site's URLs and notebook files become page links MkDocs checks"
        from nbdev.config import get_config
        cfg = get_config()
        own = f"{cfg.doc_host.rstrip('/')}{cfg.doc_baseurl.rstrip('/')}/"
        if target.startswith(own): target = target[len(own):]
        if re.match(r'^[a-z]+:|^#|^/', target): return target
        path, _, anchor = target.partition('#')
        stem = Path(path).stem
        if path.endswith('.ipynb') and (NBS/Path(path).name).exists(): path = page_name(Path(path)) + '.md'
        elif path.endswith('.html') and (stem in self.pages or stem == 'index'): path = stem + '.md'
        elif path and not path.endswith('.md'): path = self._asset(path) or path
        return path + ('#' + anchor if anchor else '')

    def _asset(self, path):
        "Copy a file the page refers to (an image under nbs/ or the repository) into the site; its new path"
        for base in (NBS, ROOT):
            f = (base/path).resolve()
            if f.is_file() and f.is_relative_to(ROOT):
                rel = Path('assets')/f.relative_to(ROOT)
                self.assets[rel] = f
                return rel.as_posix()
        return None

    def _md_links(self, text):
        text = re.sub(r'(!?\[[^\]]*\])\(([^)\s]+)((?:\s+"[^"]*")?)\)', lambda m: f"{m.group(1)}({self._link(m.group(2))}{m.group(3)})", text)
        return re.sub(r'''(<(?:img|a)\b[^>]*?\b(?:src|href)=")([^"]+)(")''', lambda m: m.group(1) + self._link(m.group(2)) + m.group(3), text)

    # markdown ------------------------------------------------------------------------------------------------
    def markdown(self, text, links=True):
        "Quarto/pandoc Markdown -> Material's: callouts, divs, math, lists after a paragraph, our links"
        out, in_fence, stack = [], False, []
        lines = text.split('\n')
        for i, line in enumerate(lines):
            if _re_fence.match(line.lstrip()):
                in_fence = not in_fence
            if in_fence or _re_fence.match(line.lstrip()):
                # nbdev links names inside show_doc's signature too; in code a link is just its text
                out.append('    ' * len(stack) + re.sub(r'\[(`[^`]+`)\]\([^)\s]+\)', r'\1', line)); continue
            m = _re_callout.match(line)
            if m:
                kind = _CALLOUTS.get(m.group(1), 'note')
                title = re.search(r'title="([^"]*)"', m.group(2))
                collapse = 'collapse="true"' in m.group(2)
                out.append('    ' * len(stack) + ('??? ' if collapse else '!!! ') + kind + (f' "{title.group(1)}"' if title else ''))
                stack.append('callout'); continue
            if _re_div.match(line):
                if line.strip().strip(':') == '' and stack: stack.pop()
                elif line.strip().strip(':') and not line.strip().startswith('::: {.callout'): stack.append('div')
                # other fenced divs (layout, columns, margins) keep their content and lose their fences
                continue
            indent = '    ' * stack.count('callout')
            if stack and stack[-1] == 'callout' and re.match(r'^##+\s', line) and out and out[-1].startswith(indent[:-4] + '!!!') and '"' not in out[-1]:
                out[-1] += f' "{line.lstrip("#").strip()}"'; continue
            # pandoc starts a list right after a paragraph line; Python-Markdown needs a blank line first
            if re.match(r'^\s*([-*+]|\d+\.)\s', line) and out and out[-1].strip() and not re.match(r'^\s*([-*+]|\d+\.)\s|^\s{2,}\S|^\s*\|', out[-1]) and not out[-1].lstrip().startswith(('#', '>', '!!!', '???')):
                out.append('')
            if re.match(r'^#{1,6}\s', line):  # `__len__` in a heading is a name, not bold text
                line = _protect_code(line, lambda t: re.sub(r'(?<!\\)_', r'\\_', t))
            out.append(indent + line if line else line)
        text = '\n'.join(out)
        text = self._math(text)
        return self._md_links(text) if links else text

    def _math(self, text):
        "TeX between $...$ / $$...$$ as MathML (the browser renders it; nothing is loaded from a CDN)"
        parts = re.split(r'(^```.*?^```)', text, flags=re.S | re.M)
        def conv(s):
            s = _re_math_block.sub(lambda m: '\n<div class="math-block">' + _mathml(m.group(1), True) + '</div>\n', s)
            return _re_math_inline.sub(lambda m: _mathml(m.group(1), False), s)
        return ''.join(p if p.startswith('```') else _protect_code(p, conv) for p in parts)

    # code cells ------------------------------------------------------------------------------------------------
    @staticmethod
    def _options(src):
        "Quarto cell options (`#| key: value` lines at the top) and the code below them"
        opts, lines = {}, src.split('\n')
        while lines and re.match(r'^\s*#\|', lines[0]):
            m = re.match(r'^\s*#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$', lines.pop(0))
            if m: opts[m.group(1)] = m.group(2).strip('"\'') or 'true'
        return opts, '\n'.join(lines).strip('\n')

    def _figure(self, data, ext, cell_idx):
        self.n_fig += 1
        rel = Path('figures')/f"{self.name}_{cell_idx}_{self.n_fig}.{ext}"
        self.assets[rel] = base64.b64decode(data) if ext == 'png' else data.encode()
        return rel.as_posix()

    def _outputs(self, cell, idx, opts):
        res = []
        for o in cell.get('outputs', []):
            kind = o.get('output_type')
            if kind == 'stream':
                text = _strip_ansi(''.join(o.get('text', ''))).rstrip('\n')
                if text.strip(): res.append(_fence(text, 'text', 'nb-output' + (' nb-stderr' if o.get('name') == 'stderr' else '')))
            elif kind == 'error':
                res.append(_fence(_strip_ansi('\n'.join(o.get('traceback', []))), 'text', 'nb-output nb-error'))
            elif kind in ('execute_result', 'display_data'):
                data = o.get('data', {})
                get = lambda k: ''.join(data[k]) if isinstance(data[k], list) else data[k]
                if 'text/markdown' in data: res.append(self.markdown(get('text/markdown')))
                elif 'image/png' in data:
                    alt = html.escape(opts.get('fig-cap', '') or opts.get('fig-alt', '') or 'figure', quote=True)
                    res.append(f'![{alt}]({self._figure(get("image/png").replace(chr(10), ""), "png", idx)}){{ .nb-figure }}')
                elif 'image/svg+xml' in data:
                    res.append(f'![figure]({self._figure(get("image/svg+xml"), "svg", idx)}){{ .nb-figure }}')
                elif 'text/html' in data:
                    res.append('<div class="nb-output nb-html" markdown="0">\n' + _html_block(get('text/html')) + '\n</div>')
                elif 'text/latex' in data:
                    res.append(self._math(get('text/latex')))
                elif 'text/plain' in data:
                    res.append(_fence(get('text/plain'), 'text', 'nb-output'))
        return res

    def code_cell(self, cell, idx):
        opts, code = self._options(''.join(cell.get('source', '')))
        false = lambda k: str(opts.get(k, '')).lower() == 'false'
        if false('include'): return ''
        show_src = not false('echo') and code.strip()
        outs = [] if false('output') else self._outputs(cell, idx, opts)
        parts = []
        if show_src:
            block = _fence(code, 'python', 'nb-source')
            if 'code-fold' in opts:
                summary = opts.get('code-summary', 'Code')
                block = ('???+ ' if opts['code-fold'] == 'show' else '??? ') + f'source "{summary}"\n\n' + _indent(block)
            parts.append(block)
        parts += outs
        return '\n\n'.join(p for p in parts if p.strip())

    def render(self):
        title, desc = self.title, self.fm.get('description')
        body = [f'# {title}']
        if desc:
            from nbdev.doclinks import NbdevLookup
            body.append(self.markdown(NbdevLookup().linkify(str(desc))) + '\n{ .nb-description }')
        for i, cell in enumerate(self.nb['cells']):
            src = ''.join(cell.get('source', ''))
            if cell['cell_type'] == 'markdown':
                if src.strip().startswith('<!-- WARNING: THIS FILE WAS AUTOGENERATED'): continue
                if src.strip(): body.append(self.markdown(src.strip('\n')))
            elif cell['cell_type'] == 'code':
                block = self.code_cell(cell, i)
                if block: body.append(block)
        head = f'---\ntitle: {json.dumps(title)}\n' + (f'description: {json.dumps(_plain(desc))}\n' if desc else '') + '---\n\n'
        return head + '\n\n'.join(body) + '\n'


def _strip_ansi(s): return re.sub(r'\x1B(?:[@-Z\\-_]|\[[0-?]*[ -/]*[@-~])', '', s)
def _indent(s): return '\n'.join('    ' + l if l else l for l in s.split('\n'))
def _plain(s): return re.sub(r'[`*_]', '', str(s))


def _fence(text, lang, cls):
    ticks = '`' * max(3, max((len(m) for m in re.findall(r'`{3,}', text)), default=0) + 1)
    return f"{ticks}{{ .{lang} .{' .'.join(cls.split())} }}\n{text.rstrip()}\n{ticks}"


def _html_block(h):
    "Notebook HTML as one raw block: no blank lines (they would end the block), no scripts that reach out"
    h = re.sub(r'\n\s*\n', '\n', h.strip())
    return h


def write_pages(nbs):
    if MD.exists(): shutil.rmtree(MD)
    (MD/'figures').mkdir(parents=True)
    pages = {page_name(nb) for nb in nbs}
    assets, nav = {}, {s: [] for s in SECTIONS}
    for nb_path in nbs:
        page = Page(nb_path, pages, assets)
        (MD/f'{page.name}.md').write_text(page.render(), encoding='utf-8')
        nav[section(nb_path, page.orig)].append((page.title, f'{page.name}.md'))
    for items in nav.values(): items.sort(key=lambda item: not item[1].endswith('_overview.md'))  # an overview leads its section
    for rel, content in assets.items():
        dst = MD/rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path): shutil.copy2(content, dst)
        else: dst.write_bytes(content)
    for f in ('extra.css',): shutil.copy2(DOCS_DIR/f, MD/f)
    return nav


# the package's layers (its folders, lowest first) as the API reference's groups; a top-level module is a group of its own
LAYERS = {'core': 'core', 'datasets': 'datasets and models', 'models': 'datasets and models', 'detector': 'datasets and models', 'data': 'data: ledger and splits',
          'uncertainty': 'uncertainty: posterior samples', 'acquisition': 'acquisition: scores and strategies',
          'semi': 'semi-supervised training', 'loop': 'loop: the ActiveLearner', 'scale': 'scale: chunked and Ray scoring',
          'interpret': 'interpret: uncertainty against error', 'people': 'people: answers, widget, Label Studio',
          'demo': 'demo and all', 'all': 'demo and all'}


def _by_layer(items):
    "`(layer, [(title, page), ...])` in the notebooks' order; a page `data.ledger.md` is in layer `data`"
    groups = {}
    for t, p in items: groups.setdefault(LAYERS.get(p.split('.')[0], p.split('.')[0]), []).append((t, p))
    return list(groups.items())


def write_config(nav):
    "mkdocs.yml: docs/mkdocs.yml (theme, extensions) plus the navigation made from the notebooks"
    import yaml
    entries = []
    for sec in SECTIONS:
        items = nav[sec]
        if not items: continue
        if sec == 'Get started': entries.append({sec: [{'Home': p} for _, p in items]})
        elif sec == 'API reference': entries.append({sec: [{g: [{t: p} for t, p in its]} for g, its in _by_layer(items)]})
        else: entries.append({sec: [{t: p} for t, p in items]})
    cfg = {'INHERIT': os.path.relpath(DOCS_DIR/'mkdocs.yml', SRC), 'docs_dir': 'md',
           'site_dir': os.path.relpath(SITE, SRC), 'hooks': [os.path.relpath(DOCS_DIR/'hooks.py', SRC)], 'nav': entries}
    (SRC/'mkdocs.yml').write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True), encoding='utf-8')
    return sum(len(v) for v in nav.values())


def build_site():
    cmd = [sys.executable, '-m', 'mkdocs', 'build', '--strict', '--clean', '-q', '-f', str(SRC/'mkdocs.yml')]
    r = subprocess.run(cmd, cwd=ROOT)
    if r.returncode: sys.exit(f"mkdocs build failed (exit {r.returncode}): see the messages above")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--workers', type=int, default=min(2, os.cpu_count() or 1), help='processes for step 1')
    ap.add_argument('--nbdev-eval', action='store_true', help="run cells as nbdev_docs does (mixed import cells too)")
    ap.add_argument('--force', action='store_true', help='process every notebook again')
    args = ap.parse_args(argv)
    os.chdir(ROOT)
    t0 = time.perf_counter()
    nbs = process_all(args.workers, args.nbdev_eval, args.force)
    t1 = time.perf_counter()
    n = write_config(write_pages(nbs))
    t2 = time.perf_counter()
    build_site()
    t3 = time.perf_counter()
    print(f"docs: {n} pages in {SITE.relative_to(ROOT)}/ in {t3 - t0:.1f} s "
          f"(nbdev processors {t1 - t0:.1f} s, Markdown {t2 - t1:.1f} s, mkdocs {t3 - t2:.1f} s)")


if __name__ == '__main__': main()
