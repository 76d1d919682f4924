"""A ledger file records what kind of labels it holds ('plain' or 'boxes'), so a classification split and a BoxSplit with
the same classes cannot read each other's labels (a BoxSplit's `[boxes, classes]` read as class labels, or class names
as boxes). Files written before the kind was recorded have none: their kind is read off their labels, or taken from
the opener when they hold none. A refusal writes nothing."""
import gc, sqlite3
from pathlib import Path

import pytest
from fastai.vision.all import DataBlock, ImageBlock, BBoxBlock, BBoxLblBlock, CategoryBlock, Resize, get_image_files

from fastai_active.data.boxes import BoxSplit, coco_get_y
from fastai_active.data.ledger import LabelLedger
from fastai_active.data.split import ActiveSplit
from fastai_active.datasets import DETECTION_SHAPES, detection_folder


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    return detection_folder(tmp_path_factory.mktemp('kind')/'shapes', n=12, seed=0)


def box_split(folder, path):
    dblock = DataBlock(blocks=(ImageBlock, BBoxBlock, BBoxLblBlock), get_items=get_image_files, n_inp=1,
                       get_y=coco_get_y(Path(folder)/'annotations.json'), item_tfms=Resize(128, method='squish'))
    return ActiveSplit(dblock, folder, path=path, vocab=DETECTION_SHAPES)


def class_split(folder, path):
    "A plain image classification split of the same images, with the detector's classes as its vocab"
    dblock = DataBlock(blocks=(ImageBlock, CategoryBlock(vocab=DETECTION_SHAPES)), get_items=get_image_files,
                       get_y=lambda o: DETECTION_SHAPES[len(o.name) % 3], item_tfms=Resize(128))
    return ActiveSplit(dblock, folder, path=path, vocab=DETECTION_SHAPES)


def meta(path):
    con = sqlite3.connect(path)
    try: return dict(con.execute('SELECT key, value FROM meta'))
    finally: con.close()


def forget_kind(path):
    "The file as a ledger written before the kind was recorded left it"
    con = sqlite3.connect(path)
    con.execute("DELETE FROM meta WHERE key = 'label_kind'")
    con.commit()
    con.close()


def snapshot(path):
    "The file's bytes (after the WAL is folded in) and a dump of every table, read with sqlite3 alone"
    gc.collect()  # a refused open's connection, if any is still about
    con = sqlite3.connect(path)
    try:
        con.execute('PRAGMA wal_checkpoint(TRUNCATE)')
        dump = list(con.iterdump())
    finally: con.close()
    return Path(path).read_bytes(), dump


def labelled_box_file(folder, path, n=3):
    split = box_split(folder, path)
    assert type(split) is BoxSplit
    split.label_random(n, seed=0)
    split.ledger.close()


def test_new_files_record_their_kind(folder, tmp_path):
    labelled_box_file(folder, tmp_path/'boxes.db')
    assert meta(tmp_path/'boxes.db')['label_kind'] == 'boxes'
    split = class_split(folder, tmp_path/'classes.db')
    assert type(split) is ActiveSplit and meta(tmp_path/'classes.db')['label_kind'] == 'plain'
    assert split.ledger.state_dict()['meta']['label_kind'] == 'plain'
    split.ledger.close()


def test_box_ledger_refused_by_a_classification_split(folder, tmp_path):
    path = tmp_path/'boxes.db'
    labelled_box_file(folder, path)
    before = snapshot(path)
    with pytest.raises(ValueError) as e:
        class_split(folder, path)
    msg = str(e.value)
    assert msg.startswith(f"the ledger file {path} holds an image's boxes per item ([boxes, classes], as BoxSplit "
                          "writes them) (label kind 'boxes'), expected one class or value per item (label kind 'plain')")
    assert 'pass a new path' in msg
    assert snapshot(path) == before
    reopened = box_split(folder, path)
    assert reopened.ledger.n_labelled == 3 and all(len(l) == 2 for l in reopened.ledger.labels().values())


def test_classification_ledger_refused_by_a_box_split(folder, tmp_path):
    path = tmp_path/'classes.db'
    split = class_split(folder, path)
    split.label_random(3, seed=0)
    split.ledger.close()
    before = snapshot(path)
    with pytest.raises(ValueError, match=r"holds one class or value per item \(label kind 'plain'\), expected an image's "
                                         r"boxes per item .* pass a new path"):
        box_split(folder, path)
    assert snapshot(path) == before


def test_old_box_file_opened_by_a_box_split(folder, tmp_path):
    path = tmp_path/'old.db'
    labelled_box_file(folder, path)
    forget_kind(path)
    assert 'label_kind' not in meta(path)
    split = box_split(folder, path)
    assert split.ledger.n_labelled == 3 and meta(path)['label_kind'] == 'boxes'
    split.ledger.close()


def test_old_box_file_refused_by_a_classification_split(folder, tmp_path):
    path = tmp_path/'old.db'
    labelled_box_file(folder, path)
    forget_kind(path)
    before = snapshot(path)
    with pytest.raises(ValueError, match=r"holds an image's boxes per item .*\(label kind 'boxes'\), read off its labels "
                                         r"\(it was written before ledgers recorded their kind\), expected one class"):
        class_split(folder, path)
    assert snapshot(path) == before and 'label_kind' not in meta(path)
    # the refusal recorded nothing: a BoxSplit still opens it, and records its kind
    box_split(folder, path).ledger.close()
    assert meta(path)['label_kind'] == 'boxes'


def test_old_classification_file_refused_by_a_box_split(folder, tmp_path):
    path = tmp_path/'old.db'
    split = class_split(folder, path)
    split.label_random(3, seed=0)
    split.ledger.close()
    forget_kind(path)
    with pytest.raises(ValueError, match="read off its labels"): box_split(folder, path)
    assert 'label_kind' not in meta(path)
    class_split(folder, path).ledger.close()
    assert meta(path)['label_kind'] == 'plain'


@pytest.mark.parametrize('opener, kind', [(box_split, 'boxes'), (class_split, 'plain')])
def test_old_file_without_labels_takes_the_openers_kind(folder, tmp_path, opener, kind):
    path = tmp_path/'empty.db'
    class_split(folder, path).ledger.close()
    forget_kind(path)
    opener(folder, path).ledger.close()
    assert meta(path)['label_kind'] == kind
    other = class_split if opener is box_split else box_split
    with pytest.raises(ValueError, match=f"\\(label kind '{kind}'\\), expected"): other(folder, path)


def test_state_dict_carries_the_kind(folder, tmp_path):
    labelled_box_file(folder, tmp_path/'boxes.db')
    boxes = box_split(folder, tmp_path/'boxes.db')
    sd = boxes.ledger.state_dict()
    assert sd['meta']['label_kind'] == 'boxes'
    plain = class_split(folder, tmp_path/'classes.db')
    before = plain.ledger.state_dict()
    with pytest.raises(ValueError, match="the state dict holds an image's boxes per item"): plain.ledger.load_state_dict(sd)
    old_sd = {**sd, 'meta': {k: v for k, v in sd['meta'].items() if k != 'label_kind'}}  # a state dict from before
    with pytest.raises(ValueError, match="the state dict holds an image's boxes per item .* read off its labels"):
        plain.ledger.load_state_dict(old_sd)
    assert plain.ledger.state_dict() == before
    fresh = box_split(folder, tmp_path/'fresh.db')
    fresh.ledger.load_state_dict(old_sd)
    assert fresh.ledger.labels() == boxes.ledger.labels()
    for s in (boxes, plain, fresh): s.ledger.close()
