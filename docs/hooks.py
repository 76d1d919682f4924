"""MkDocs hooks for the docs site (named in the generated _docs_src/mkdocs.yml)."""
import re


def pandoc_slugify(value, separator='-'):
    """Heading ids as pandoc (Quarto) makes them, so nbdev's doc links (`core.html#candidatebatch.__len__`) resolve:
    keep letters, digits, `_`, `-` and `.`; spaces become `-`; lower case; drop everything before the first letter"""
    s = re.sub(r'[^\w\s.-]', '', value.strip().lower())
    s = re.sub(r'\s+', separator, s)
    s = re.sub(r'^[^a-z]+', '', s)
    return s or 'section'


def on_config(config, **kwargs):
    config['mdx_configs'].setdefault('toc', {})['slugify'] = pandoc_slugify
    return config
