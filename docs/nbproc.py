"""Step 1 of the docs build: nbdev's notebook processors on one notebook, in a worker process.

A module of its own because nbdev runs the notebook's cells in an IPython shell, which replaces `__main__`: a spawned
worker must find `process_nb` by module name, not in `__main__`.
"""
import ast, inspect, os, re, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent



def _docments_table(sym):
    "A Markdown table of the parameters of `sym` (type, default, docment), or '' when none is documented"
    import inspect
    from fastcore.docments import docments, _maybe_nm, _fmt_default
    try: dm = docments(sym, full=True)
    except Exception: return ''
    rows = [(k, v) for k, v in dm.items() if k not in ('self', 'cls') and (k != 'return' or v.get('docment'))]
    if not any(v.get('docment') for _, v in rows): return ''
    def cell(s): return str(s).replace('|', '\\|').replace('\n', ' ')
    out = ['', '|  | **Type** | **Default** | **Details** |', '| -- | -------- | ----------- | ----------- |']
    for k, v in rows:
        anno = v.get('anno', inspect._empty)
        default = v.get('default', inspect._empty)
        out.append(f"| {'**Returns**' if k == 'return' else cell(k)} | {cell(_maybe_nm(anno)) if anno is not inspect._empty else ''} "
                   f"| {cell('`' + _fmt_default(default) + '`') if default is not inspect._empty else ''} "
                   f"| {cell(v.get('docment') or '')} |")
    return '\n'.join(out)


def _strip_comments(sig):
    "A signature without its docment comments (`x:int=1, # the x` -> `x:int=1,`)"
    lines = [re.sub(r'\s+#\s.*$', '', l) for l in sig.split('\n') if not re.match(r'^\s*#\s', l)]
    return '\n'.join(lines)


def _install_docments_tables():
    "Give `show_doc` the parameter table that nbdev's docs show, beside nbdev 2.4's signature with docments"
    import nbdev.showdoc as sd
    base = sd.BasicMarkdownRenderer
    if getattr(base, '_docs_tables', False): return
    orig = base._repr_markdown_
    def _repr_markdown_(self):
        md = orig(self)
        if inspect.isclass(self.sym): md = md.replace('```python\ndef ', '```python\nclass ', 1)  # nbdev writes `def`
        table = _docments_table(self.sym) if callable(self.sym) else ''
        if not table: return md
        # the table holds the docments: the signature above it shows the parameters alone
        md = re.sub(r'```python\n(.*?)\n```', lambda m: '```python\n' + _strip_comments(m.group(1)) + '\n```', md, count=1, flags=re.S)
        return md + '\n' + table
    base._repr_markdown_, base._docs_tables = _repr_markdown_, True


def _tolerate_forward_refs():
    """A signature whose annotation names a type the module imports only for type checking (`learn:Learner` under
    `from __future__ import annotations`) is valid Python, but fastcore's `show_doc` evaluates annotations and raises
    `NameError`: show such a signature with its annotations as written, and stop the build on nothing else"""
    import fastcore.docments as fd
    if getattr(fd.signature, '_forward_refs', False): return
    orig = fd.signature
    def signature(obj, *args, eval_str=False, **kwargs):
        try: return orig(obj, *args, eval_str=eval_str, **kwargs)
        except NameError:
            if not eval_str: raise
            return orig(obj, *args, eval_str=False, **kwargs)
    signature._forward_refs = True
    fd.signature = signature


def _top_level_imports(src):
    "The top-level import statements of a cell's source, as source, or None if it does not parse"
    lines = [l for l in src.splitlines() if not l.lstrip().startswith(('%', '!'))]
    try: tree = ast.parse('\n'.join(lines))
    except SyntaxError: return None
    return '\n'.join(ast.unparse(n) for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom)))


def _filter_defaults(nbdev_eval):
    "nbdev's `FilterDefaults`; unless `nbdev_eval`, cells that mix imports with other code run their imports only"
    from nbdev.processors import FilterDefaults, exec_show_docs, _do_eval
    if nbdev_eval: return FilterDefaults

    class exec_imports_show_docs(exec_show_docs):
        """nbdev runs every cell that holds an import (even a nested one) to prepare `show_doc`: a test cell with an
        import then runs without the names earlier test cells defined, and fails. Run only such a cell's imports."""
        def __call__(self, cell):
            if (cell.cell_type == 'code' and cell.source and _do_eval(cell) and not cell.directives_.keys() & {
                    'export', 'exports', 'exporti', 'exec_doc'} and not re.search(r'^show_doc', cell.source, re.M)):
                imports = _top_level_imports(cell.source)
                if imports is None or imports.strip() == re.sub(r'(?m)^#\|.*\n?', '', cell.source).strip():
                    return super().__call__(cell)
                if not getattr(self.nb, 'has_docs_', False) or not hasattr(self, 'k'): return
                if imports: self.k.run_cell(imports)
                if self.k.exc: raise RuntimeError(f"importing in cell {cell.idx_}:\n{imports}") from self.k.exc[1]
                return
            return super().__call__(cell)
    exec_imports_show_docs.__name__ = 'exec_show_docs'

    class DocsFilter(FilterDefaults):
        def base_procs(self):
            return [exec_imports_show_docs if p is exec_show_docs else p for p in super().base_procs()]
    return DocsFilter


def process_nb(args):
    "Run nbdev's processors on notebook `src`, write the result to `dst`; return (name, seconds, error or None)"
    src, dst, nbdev_eval = args
    os.chdir(ROOT)
    os.environ['IN_TEST'] = '1'  # as nbdev's own driver does: notebooks may skip expensive work under it
    os.environ.setdefault('MPLBACKEND', 'Agg')
    start = time.perf_counter()
    try:
        import warnings
        from execnb.nbio import read_nb, write_nb
        _install_docments_tables()
        _tolerate_forward_refs()
        nb = read_nb(src)
        with warnings.catch_warnings():
            warnings.filterwarnings('ignore', message='Found cells containing imports')
            _filter_defaults(nbdev_eval)()(nb)
        write_nb(nb, dst)
        return src.name, time.perf_counter() - start, None
    except BaseException as e:
        cause = e.__cause__ or e
        return src.name, time.perf_counter() - start, f"{e}\n  caused by {type(cause).__name__}: {cause}"
