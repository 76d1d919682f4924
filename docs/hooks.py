"""MkDocs hooks for the docs site (named in the generated _docs_src/mkdocs.yml)."""
import re


def pandoc_slugify(value, separator='-'):
    """Heading ids as pandoc (Quarto) makes them, so nbdev's doc links (`core.html#candidatebatch.__len__`) resolve:
    keep letters, digits, `_`, `-` and `.`; spaces become `-`; lower case; drop everything before the first letter or `_`"""
    s = re.sub(r'[^\w\s.-]', '', value.strip().lower())
    s = re.sub(r'\s+', separator, s)
    s = re.sub(r'^[^a-z_]+', '', s)  # a leading underscore stays: nbdev links private names as `#check_n`
    return s or 'section'


def on_config(config, **kwargs):
    config['mdx_configs'].setdefault('toc', {})['slugify'] = pandoc_slugify
    return config


_ID = re.compile(r'''<[^>]*?\b(?:id|name)="([^"]+)"''')
_HREF = re.compile(r'''(<a\b[^>]*?\bhref=")([^"#:]*\.html)#([^"]+)(")''')


def on_post_build(config, **kwargs):
    """Links to a name with no documentation of its own on the target page (a method or private helper that nbdev's doc
    links know but no `show_doc` renders) point to the page instead of to an anchor that is not there"""
    from pathlib import Path
    from posixpath import dirname, join, normpath
    site = Path(config['site_dir'])
    pages = {f.relative_to(site).as_posix(): f.read_text(encoding='utf-8') for f in site.rglob('*.html')}
    ids = {p: set(_ID.findall(html)) for p, html in pages.items()}
    for p, html in pages.items():
        def fix(m):
            target = normpath(join(dirname(p), m.group(2)))
            if target in ids and m.group(3) not in ids[target]: return m.group(1) + m.group(2) + m.group(4)
            return m.group(0)
        new = _HREF.sub(fix, html)
        if new != html: (site/p).write_text(new, encoding='utf-8')
