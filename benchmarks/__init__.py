"""fastai_active's benchmarks, one module each; their results are committed under benchmarks/results/.

Run one from the repository root as a module, so that the scripts can share code through the package:

    python -m benchmarks.label_efficiency run --dataset digits --strategies random bald --out benchmarks/results/digits

and import the shared code the same way (`from benchmarks.label_efficiency import read_runs, markdown_table`).
Not part of the installed `fastai_active`: the package is importable from the repository root (the notebooks run by
`nbdev_test` have the root on `sys.path`; `tests/conftest.py` registers it for the tests without putting the root on
`sys.path`, where the source tree would shadow an installed `fastai_active`). Importing it runs nothing.
"""
