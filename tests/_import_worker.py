"""Imports a Label Studio export into a ledger file, pausing inside the import's transaction (after the first answers
and corrections are written, before the confirmations) so that test_people.py can SIGKILL it there.

Usage: python _import_worker.py LEDGER_PATH EXPORT_PATH
"""
import json, sys, time

import fastai_active.people.label_studio as label_studio
from test_people import make_al, USERS

real_confirm = label_studio.confirm_answers


def confirm_after_a_pause(*args, **kwargs):
    print('WRITING', flush=True)  # the labels and corrections of this import are written, not committed
    time.sleep(120)
    return real_confirm(*args, **kwargs)


if __name__ == '__main__':
    path, export = sys.argv[1:3]
    label_studio.confirm_answers = confirm_after_a_pause
    split = make_al(path=path).split
    label_studio.import_annotations(split, json.loads(open(export).read()), users=USERS)
    print('DONE', flush=True)
