"""One process of a person's project on an image folder that grows (run three times by test_growth.py).

Usage: python _growth_worker.py FOLDER LEDGER NAME ROUNDS N_PER_ROUND

Opens the folder's split and ledger; labels 4 initial images on the first run; then ROUNDS times: fit, evaluate,
acquire N, answer them (the folder name is the class, as a person would see it), label with annotator NAME.
Prints one JSON line: what opening found, and the keys of the pool and of the picks each round.
"""
import json, sys, warnings
from pathlib import Path

import torch
from torch import nn
from fastai.vision.all import DataBlock, ImageBlock, CategoryBlock, PILImageBW, get_image_files, parent_label, Learner, accuracy
from fastai.losses import CrossEntropyLossFlat

from fastai_active.data.split import ActiveSplit
from fastai_active.loop.learner import ActiveLearner


def make_learner(dls):
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, dls.c))
    return Learner(dls, model, loss_func=CrossEntropyLossFlat(), metrics=accuracy)


if __name__ == '__main__':
    torch.set_num_threads(1)
    folder, ledger, name, rounds, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    dblock = DataBlock(blocks=(ImageBlock(cls=PILImageBW), CategoryBlock), get_items=get_image_files, get_y=parent_label)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        split = ActiveSplit(dblock, Path(folder), path=ledger, vocab=['dark', 'light'],
                            valid_items=get_image_files(Path(folder).parent/'valid'))  # a fixed labelled set beside it
    keys = split.ledger.keys
    out = dict(added=sorted(keys(split.ledger.report.added)), missing=sorted(keys(split.ledger.missing_idxs())),
               warnings=[str(w.message) for w in caught if issubclass(w.category, UserWarning)], rounds=[])
    if split.ledger.n_labelled == 0: split.label_random(4, balanced=True, seed=0)
    al = ActiveLearner(split, make_learner, acquisition='entropy', epochs=2, lr=1e-2, dl_kwargs=dict(num_workers=0),
                       show_progress=False)
    for _ in range(rounds):
        al.fit()
        al.evaluate()
        pool = sorted(keys(split.pool().ds_idxs))
        picked = al.acquire(n)
        answers = [parent_label(item) for item in picked['item']]  # the person looks at each image
        al.label(picked.assign(label=answers), annotator=name)
        out['rounds'].append(dict(pool=pool, picked=sorted(picked.key)))
    al.fit()
    al.evaluate()
    print(json.dumps(out))
