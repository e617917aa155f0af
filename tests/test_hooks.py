"""History and EpochRecord: what people read (reprs) and what they export (CSV, a dict of arrays)."""

import csv
import math

import numpy as np

from softmaxreg import EpochRecord, History


def history(epochs: int) -> History:
    return History([EpochRecord(e, 1 / e, 0.5 + e / 100, 0.9 / e, 0.6 + e / 1000, 0.0912) for e in range(1, epochs + 1)])


def test_epoch_record_repr_shows_each_figure_rounded():
    assert repr(EpochRecord(3, 0.52501234, 0.81889, 0.53481, 0.8189, 0.0912)) == (
        "EpochRecord(epoch=3, train_loss=0.5250, train_acc=0.8189, val_loss=0.5348, val_acc=0.8189, seconds=0.09)")
    assert "train_loss=nan" in repr(EpochRecord(1, math.nan, 1e-7, 3e6, 0.0, 1.5))
    assert "train_acc=1e-07" in repr(EpochRecord(1, math.nan, 1e-7, 3e6, 0.0, 1.5))


def test_history_repr_is_a_small_table():
    lines = repr(history(3)).splitlines()
    assert lines[0] == "History(3 epochs)"
    assert lines[1].split() == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "seconds"]
    assert lines[2].split() == ["1", "1.0000", "0.5100", "0.9000", "0.6010", "0.09"]
    assert len(lines) == 5 and len({len(line) for line in lines[1:]}) == 1          # aligned columns
    assert repr(History()) == "History(0 epochs)"


def test_a_long_history_shows_its_first_and_last_rows():
    h = history(1000)
    h.best_epoch, h.stopped_early = 990, True
    lines = repr(h).splitlines()
    assert lines[0] == "History(1000 epochs, best_epoch 990, stopped early)"
    assert [line.split()[0] for line in lines[2:]] == ["1", "2", "3", "4", "5", "...", "996", "997", "998", "999", "1000"]


def test_history_converts_to_a_dict_of_arrays():
    d = history(4).to_dict()
    assert list(d) == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "seconds"]
    assert d["epoch"].dtype == np.int64 and d["epoch"].tolist() == [1, 2, 3, 4]
    assert d["train_loss"].dtype == np.float64 and d["train_loss"].tolist() == [1.0, 0.5, 1 / 3, 0.25]
    assert History().to_dict()["val_acc"].shape == (0,)


def test_history_writes_its_csv_to_a_path(tmp_path):
    h = history(3)
    assert h.to_csv(tmp_path / "m.csv") is None
    assert (tmp_path / "m.csv").read_text() == h.to_csv()
    with open(tmp_path / "m.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["train_loss"]) for r in rows] == h.column("train_loss")        # full precision
    assert [p.name for p in tmp_path.iterdir()] == ["m.csv"]                         # no temporary left
