"The docs tooling (docs/): notebook Markdown to the site's Markdown, heading ids, and the browser check on a broken site."
import importlib.util, json, re, shutil, sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent/'docs'
if not DOCS.is_dir(): pytest.skip("docs/ is not beside tests/ (an installed package is tested)", allow_module_level=True)
sys.path.insert(0, str(DOCS))
import hooks, nbproc  # noqa: E402


def test_heading_ids_are_pandoc_ids_as_nbdev_links_expect():
    assert hooks.pandoc_slugify('CandidateBatch.__len__') == 'candidatebatch.__len__'
    assert hooks.pandoc_slugify('Posterior log-probabilities') == 'posterior-log-probabilities'
    assert hooks.pandoc_slugify('1. Results of selection!') == 'results-of-selection'
    assert hooks.pandoc_slugify('ActiveLearner.fit') == 'activelearner.fit'
    assert hooks.pandoc_slugify('42') == 'section'


def test_signature_without_docment_comments():
    sig = "def f(\n    x:int=1, # the x\n    y:str='#', # a hash\n    # more about y\n)->int: # the result"
    assert nbproc._strip_comments(sig) == "def f(\n    x:int=1,\n    y:str='#',\n)->int:"


def test_only_top_level_imports_of_a_mixed_cell():
    src = "#| hide\nimport os\nfrom math import pi\ndef f():\n    import json\n    return 1\nx = f()\n%time y = 2"
    assert nbproc._top_level_imports(src) == "import os\nfrom math import pi"
    assert nbproc._top_level_imports("def f(:") is None


def test_docments_table():
    def f(a:int, # the a
          b:str='x|y', # a bar | inside
         )->float: # what comes back
        "Doc"
    table = nbproc._docments_table(f).strip().split('\n')
    assert table[0] == '|  | **Type** | **Default** | **Details** |'
    assert table[2] == '| a | int |  | the a |'
    assert table[3] == "| b | str | `'x\\|y'` | a bar \\| inside |"
    assert table[4] == '| **Returns** | float |  | what comes back |'
    def g(a, b=1): "No docments"
    assert nbproc._docments_table(g) == ''


@pytest.fixture
def page(tmp_path):
    pytest.importorskip('nbdev')
    import build
    p = object.__new__(build.Page)
    p.name, p.pages, p.assets, p.n_fig, p.src = 'core', {'core', 'loop.learner', 'index'}, {}, 0, None
    return p


def test_quarto_markdown_becomes_materials(page):
    md = page.markdown("::: {.callout-note}\n## Heads up\nBody with `x`.\n:::\n\nAfter")
    assert md == '!!! note "Heads up"\n    Body with `x`.\n\nAfter'
    md = page.markdown('::: {.callout-warning collapse="true"}\nCareful\n:::')
    assert md == '??? warning\n    Careful'
    assert page.markdown("::: {.column-margin}\nA note\n:::") == 'A note'
    # pandoc starts a list after a paragraph line; Python-Markdown needs the blank line
    assert page.markdown("Some text:\n- one\n- two") == 'Some text:\n\n- one\n- two'
    assert page.markdown("### CandidateBatch.__len__") == '### CandidateBatch.\\_\\_len\\_\\_'


def test_links_to_our_site_and_notebooks_become_page_links(page):
    md = page.markdown('[`check_log_probs`](https://fastai-active.github.io/fastai_active/core.html#check_log_probs)')
    assert md == '[`check_log_probs`](core.md#check_log_probs)'
    assert page.markdown('see [the loop](07a_loop.learner.ipynb#the-loop)') == 'see [the loop](loop.learner.md#the-loop)'
    # the README (the site's home page) links notebooks by their path from the repository's root
    assert page.markdown('[the loop](nbs/07a_loop.learner.ipynb)') == '[the loop](loop.learner.md)'
    md = page.markdown('[`ActiveLearner`](https://fastai-active.github.io/fastai_active/loop.learner.html#activelearner)')
    assert md == '[`ActiveLearner`](loop.learner.md#activelearner)'
    assert page.markdown('[fastai](https://docs.fast.ai/learner.html#learner)') == '[fastai](https://docs.fast.ai/learner.html#learner)'
    # nbdev links names inside show_doc's signature too: in code they must stay plain text
    md = page.markdown("```python\nx:int, # An [`Acquisition`](https://fastai-active.github.io/fastai_active/selection.html#acquisition)\n```")
    assert md == "```python\nx:int, # An `Acquisition`\n```"


def test_math_becomes_mathml_outside_code(page):
    pytest.importorskip('latex2mathml')
    md = page.markdown('The entropy $H[y]$ and `$HOME` and\n\n$$I = H - E$$')
    assert '<math' in md and 'display="block"' in md
    assert '`$HOME`' in md and '$' not in md.replace('`$HOME`', '')


def test_code_cells_follow_quarto_cell_options(page):
    show_doc = {'cell_type': 'code', 'source': "#| echo: false\n#| output: asis\nshow_doc(f)",
                'outputs': [{'output_type': 'execute_result', 'data': {'text/markdown': ['### f\n', '\n', 'Doc'], 'text/plain': ['f']}}]}
    assert page.code_cell(show_doc, 3) == '### f\n\nDoc'
    assert page.code_cell({'cell_type': 'code', 'source': '#| include: false\nx = 1', 'outputs': []}, 0) == ''
    assert page.code_cell({'cell_type': 'code', 'source': '#| hide_line\n', 'outputs': []}, 0) == ''  # no empty block
    out = page.code_cell({'cell_type': 'code', 'source': 'print(1)',
                          'outputs': [{'output_type': 'stream', 'name': 'stdout', 'text': ['1\n']}]}, 0)
    assert out == '```{ .python .nb-source }\nprint(1)\n```\n\n```{ .text .nb-output }\n1\n```'
    folded = page.code_cell({'cell_type': 'code', 'source': '#| code-fold: show\n#| code-summary: "Exported source"\ndef f(): pass',
                             'outputs': []}, 0)
    assert folded.startswith('???+ source "Exported source"\n\n    ```')
    png = page.code_cell({'cell_type': 'code', 'source': 'plot()', 'outputs': [
        {'output_type': 'display_data', 'data': {'image/png': 'iVBORw0KGgo=\n', 'text/plain': ['<Figure>']}}]}, 7)
    assert png.endswith('![figure](figures/core_7_1.png){ .nb-figure }') and 'figures/core_7_1.png' in {str(k) for k in page.assets}


def test_sections_from_notebook_names():
    pytest.importorskip('nbdev')
    import build
    exporting = {'cells': [{'cell_type': 'code', 'source': ['#| default_exp core']}]}
    plain = {'cells': [{'cell_type': 'markdown', 'source': ['# Title']}]}
    assert build.section(Path('index.ipynb'), plain) == 'Get started'
    assert build.section(Path('20_howto_image_folder.ipynb'), plain) == 'How-to guides'
    assert build.section(Path('25_explain_bald.ipynb'), plain) == 'Explanation'
    assert build.section(Path('00_core.ipynb'), exporting) == 'API reference'
    assert build.section(Path('31_label_efficiency.ipynb'), plain) == 'Results'
    assert build.page_name(Path('09a_interpret.correlation.ipynb')) == 'interpret.correlation'  # nbdev's page name
    assert build.section(Path('34_results_overview.ipynb'), plain) == 'Results'
    assert build.section(Path('28_explain_tour.ipynb'), plain) == 'Explanation'


def test_api_reference_grouped_by_layer():
    pytest.importorskip('nbdev')
    import build
    items = [('Core', 'core.md'), ('Ledger', 'data.ledger.md'), ('Split', 'data.split.md'), ('Learner', 'loop.learner.md'),
             ('Datasets', 'datasets.md'), ('Models', 'models.md'), ('Demo', 'demo.md'), ('All', 'all.md')]
    groups = build._by_layer(items)
    assert [g for g, _ in groups] == ['core', 'data: ledger and splits', 'loop: the ActiveLearner', 'datasets and models',
                                      'demo and all']
    assert dict(groups)['data: ledger and splits'] == [('Ledger', 'data.ledger.md'), ('Split', 'data.split.md')]
    assert dict(groups)['datasets and models'] == [('Datasets', 'datasets.md'), ('Models', 'models.md')]


ROOT = DOCS.parent


def test_readme_is_a_front_page():
    "README.md stays short and links pages that exist; the rest is on the docs pages it links"
    text = (ROOT/'README.md').read_text(encoding='utf-8')
    assert len(text) <= 15_000, len(text)
    links = re.findall(r'\]\((nbs/[^)#\s]+\.ipynb)(?:#[^)]*)?\)', text)
    assert len(links) >= 10, links
    assert [l for l in links if not (ROOT/l).is_file()] == []
    # nbdev links a backticked name to its API page: inside a link's text that makes a link in a link, shown as markup
    assert re.findall(r'\[`[^`\]]+`\]\(', text) == []


def test_notebooks_carry_no_large_outputs():
    "Results notebooks show committed PNG files (Markdown image links) instead of embedding them in their outputs"
    big = {p.name: p.stat().st_size for p in (ROOT/'nbs').glob('*.ipynb') if p.stat().st_size > 400_000}
    assert big == {}


def test_images_the_pages_show_exist():
    missing = []
    for nb in (ROOT/'nbs').glob('*.ipynb'):
        for cell in json.loads(nb.read_text(encoding='utf-8'))['cells']:
            if cell['cell_type'] != 'markdown': continue
            for target in re.findall(r'!\[[^\]]*\]\(([^)\s]+)\)', ''.join(cell['source'])):
                if '://' in target: continue
                base = ROOT if nb.name == 'index.ipynb' else ROOT/'nbs'  # README.md is read from the repository's root
                if not (base/target).is_file(): missing.append(f"{nb.name}: {target}")
    assert missing == []


_PAGE = """<!doctype html><html><head><title>{title}</title></head><body>
<nav><a class="md-nav__link" href="index.html">Home</a></nav><input class="md-search__input">
<article class="md-content__inner">{body}</article></body></html>"""


def test_browser_check_finds_what_a_reader_would_see(tmp_path, capsys):
    pytest.importorskip('selenium')
    if not (shutil.which('chromium') and shutil.which('chromedriver')): pytest.skip('needs chromium and chromium-driver')
    import check
    site = tmp_path/'site'
    site.mkdir()
    (site/'index.html').write_text(_PAGE.format(title='Home', body='<h1 id="top">Home</h1><a href="ok.html#here">ok</a>'))
    (site/'ok.html').write_text(_PAGE.format(title='Fine', body='<h1 id="here">Fine</h1><p>All good.</p>'))
    bad = ('<p>text</p><pre>#| hide\nx = 1</pre><p>show_doc(f)</p><pre>   </pre><a href="missing.html">gone</a>'
           '<a href="ok.html#nowhere">no anchor</a><img src="nope.png"><script>console.error("boom")</script>'
           '<img src="http://127.0.0.2:9/outside.png">')
    (site/'bad.html').write_text(_PAGE.format(title='', body=bad))
    rc = check.main(['--site', str(site), '--shots', str(tmp_path/'shots'), '--prefix', '/', '--api-page', 'ok.html'])
    out = capsys.readouterr().out
    assert rc == 1
    problems = [l.strip() for l in out.splitlines() if l.startswith('  ')]
    assert all(p.startswith(('bad.html', 'server answered', 'index.html: search')) for p in problems), problems
    for expected in ['bad.html: no <title>', 'bad.html: no <h1> heading', '`#|` directive visible', '`show_doc(` source visible',
                     'empty code block', 'broken link', 'missing.html', 'broken anchor', 'ok.html#nowhere', 'broken image',
                     'console error', 'boom', 'request outside the site: http://127.0.0.2:9/outside.png',
                     'server answered 404 for /nope.png', "index.html: search: no result for 'BatchBALD'"]:
        assert expected in out, (expected, out)
    assert (tmp_path/'shots'/'home.png').stat().st_size > 1000 and (tmp_path/'shots'/'api_ok.png').is_file()


def test_a_forward_reference_does_not_stop_the_docs():
    "`learn:Learner` under `from __future__ import annotations`, Learner imported for type checking only: shown as written"
    pytest.importorskip('nbdev')
    from nbdev.showdoc import show_doc
    nbproc._tolerate_forward_refs()
    def f(learn:'NotImportedHere')->int: "Doc"
    assert 'NotImportedHere' in show_doc(f)._repr_markdown_()
