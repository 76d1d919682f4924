"The package's layers read from its folders: no import circles, no lower layer importing a higher one, no private name across layers"
import ast
from pathlib import Path

import fastai_active

PKG = Path(fastai_active.__file__).parent
# rank of each layer (a subpackage, or a top-level module): a module imports only its own layer and lower ranks
RANK = {'core': 0, 'datasets': 0, 'models': 0, 'detector': 0, 'data': 1, 'uncertainty': 2, 'acquisition': 3, 'semi': 3, 'loop': 4,
        'scale': 5, 'interpret': 5, 'people': 6, 'demo': 7, 'all': 8}

def _modules():
    return {'.'.join(p.relative_to(PKG).with_suffix('').parts): p for p in PKG.rglob('*.py')
            if p.name not in ('__init__.py', '_modidx.py')}

def _resolve(mod:str, node:ast.ImportFrom, mods:dict)->list[tuple[str, list[str]]]:
    "The package modules an import statement reads, with the names it takes from each"
    if node.level:
        base = mod.split('.')[:-node.level]
        target = '.'.join(base + ([node.module] if node.module else []))
    elif node.module and (node.module == 'fastai_active' or node.module.startswith('fastai_active.')):
        target = node.module[len('fastai_active.'):] if node.module != 'fastai_active' else ''
    else: return []
    if target in mods: return [(target, [a.name for a in node.names])]
    return [(f'{target}.{a.name}'.lstrip('.'), []) for a in node.names if f'{target}.{a.name}'.lstrip('.') in mods]

def import_graph():
    "`{module: {imported module: [names]}}` over every import in the package, at module level or inside functions"
    mods, graph = _modules(), {}
    for mod, path in mods.items():
        edges = graph.setdefault(mod, {})
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                for target, names in _resolve(mod, node, mods): edges.setdefault(target, []).extend(names)
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith('fastai_active.') and a.name[len('fastai_active.'):] in mods:
                        edges.setdefault(a.name[len('fastai_active.'):], [])
            elif (isinstance(node, ast.Call) and getattr(node.func, 'attr', getattr(node.func, 'id', None)) == 'import_module'
                  and node.args and isinstance(node.args[0], ast.JoinedStr)):
                pass  # `all` imports every module by name: it is the top layer
    return graph

def layer(mod:str)->str: return mod.split('.')[0]

def test_every_module_has_a_layer():
    assert {layer(m) for m in _modules()} <= set(RANK), {layer(m) for m in _modules()} - set(RANK)
    assert len(_modules()) > 30

def test_no_import_circles():
    graph, seen, stack, cycles = import_graph(), {}, [], []
    def visit(m):
        seen[m] = 'open'; stack.append(m)
        for t in graph.get(m, {}):
            if seen.get(t) == 'open': cycles.append(stack[stack.index(t):] + [t])
            elif t not in seen: visit(t)
        seen[m] = 'done'; stack.pop()
    for m in graph:
        if m not in seen: visit(m)
    assert not cycles, f"import circles: {cycles}"

def test_lower_layers_never_import_higher_ones():
    bad = [(m, t) for m, edges in import_graph().items() for t in edges
           if layer(t) != layer(m) and RANK[layer(t)] >= RANK[layer(m)]]
    assert not bad, f"imports against the layers (module -> what it imports): {bad}"

def test_no_private_name_across_layers():
    bad = [(m, t, n) for m, edges in import_graph().items() for t, names in edges.items() for n in names
           if layer(t) != layer(m) and n.startswith('_') and not n.startswith('__')]
    assert not bad, f"private names imported from another layer (module, from, name): {bad}"

def test_the_graph_sees_imports_inside_functions():
    "The checks above would pass vacuously if the graph missed imports: it holds ones known to be there"
    graph = import_graph()
    assert 'core' in graph['data.ledger'] and 'data.split' in graph['loop.learner'] and 'loop.scorer' in graph['scale.chunked']

def test_all_keeps_every_name_of_0_1():
    "Every name `from fastai_active.all import *` gave before the layers (0.1's flat modules) is still there"
    import fastai_active.all as a
    before = (Path(__file__).parent/'fixtures'/'all_names_0.1.txt').read_text().split()
    assert len(before) > 200
    assert not set(before) - set(a.__all__)
    assert all(hasattr(a, n) for n in before)


def test_all_lists_every_module():
    "`fastai_active.all` gives the names of every module (its `_MODULES` builds `__all__`), `demo` picked by name"
    import fastai_active.all as everything
    assert set(_modules()) - {'all', 'demo'} == set(everything._MODULES)
