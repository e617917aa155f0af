"""Out-of-core training: memory-mapped .npy / IDX files and Dask arrays, streamed in blocks."""

import mmap
import os

import numpy as np
import pytest

from softmaxreg import SoftmaxRegression, fit
from softmaxreg.datasets.batches import num_batches
from softmaxreg.datasets.blocks import iterate_block_minibatches
from softmaxreg.engines.rows import PageRelease, check_rows, iterate_rows
from softmaxreg.engines import is_streamed
from softmaxreg.datasets.idx import open_idx_memmap, write_idx
from softmaxreg.errors import DataFormatError, InvalidArgumentError


def _data(n=1500, d=20, k=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 256, size=(n, d), dtype=np.uint8)
    y = (X[:, :k].argmax(axis=1) + (rng.random(n) < 0.2)) % k
    return X, y.astype(np.uint8)


def _model(d=20, k=4):
    return SoftmaxRegression(d, k, seed=3, input_scale=1 / 255)


def test_lbfgs_on_a_memmapped_npy_gives_the_in_memory_weights_bit_for_bit(tmp_path):
    X, y = _data()
    np.save(tmp_path / "X.npy", X)
    mapped = np.load(tmp_path / "X.npy", mmap_mode="r")
    assert is_streamed(mapped) and not is_streamed(X)
    models = []
    for data in (X, mapped):
        model = _model()
        fit(model, data, y, solver="lbfgs", max_iter=15, weight_decay=1e-3)
        models.append(model)
    assert np.array_equal(models[0].W, models[1].W) and np.array_equal(models[0].b, models[1].b)


def test_sgd_on_a_memmap_uses_the_block_shuffle_and_is_reproducible_and_resumable(tmp_path):
    X, y = _data(n=5000)                                        # two blocks of 4096 rows
    write_idx(tmp_path / "X.idx", X)
    mapped = open_idx_memmap(tmp_path / "X.idx")
    runs = []
    for data, options in ((mapped, {}), (X, {"shuffle": "blocks"}), (X, {})):
        model = _model()
        fit(model, data, y, epochs=2, batch_size=64, seed=5, **options)
        runs.append(model.W.copy())
    assert np.array_equal(runs[0], runs[1])                     # auto = blocks for a memory map
    assert not np.array_equal(runs[0], runs[2])                 # in memory: the lesson's full shuffle

    class Stop:                                                 # interrupt after epoch 1, resume
        def on_train_begin(self, run):
            self.run = run

        def on_epoch_end(self, record, history):
            if record.epoch == 1:
                self.state, self.W, self.b = self.run.state(), self.run.model.W.copy(), self.run.model.b.copy()
                self.run.stop = True

        def on_step_end(self):
            pass

        def on_train_end(self, history):
            pass
    stop, model = Stop(), _model()
    fit(model, mapped, y, epochs=2, batch_size=64, seed=5, callbacks=[stop])
    model.W[...], model.b[...] = stop.W, stop.b
    fit(model, mapped, y, epochs=2, batch_size=64, seed=5, resume=stop.state)
    assert np.array_equal(model.W, runs[0])


def test_block_shuffle_of_data_within_one_block_is_the_full_shuffle(tmp_path):
    X, y = _data(n=1500)
    runs = []
    for shuffle in ("full", "blocks"):
        model = _model()
        fit(model, X, y, epochs=2, batch_size=32, seed=5, shuffle=shuffle)
        runs.append(model.W)
    assert np.array_equal(*runs)


@pytest.mark.parametrize("n, batch, block, window", [(1000, 32, 64, 3), (1000, 300, 100, 2), (7, 3, 2, 8), (50, 64, 8, 1)])
def test_block_shuffle_visits_every_row_once_in_num_batches_batches(n, batch, block, window):
    ids = np.arange(n)
    seen, sizes = [], []
    for (batch_ids,) in iterate_block_minibatches((ids,), batch, np.random.default_rng(1), block_rows=block,
                                                  window=window):
        seen.extend(batch_ids.tolist())
        sizes.append(len(batch_ids))
    assert sorted(seen) == ids.tolist() and seen != ids.tolist()
    assert len(sizes) == num_batches(n, batch) and all(s == batch for s in sizes[:-1])
    again = [b[0].copy() for b in iterate_block_minibatches((ids,), batch, np.random.default_rng(1),
                                                            block_rows=block, window=window)]
    assert np.array_equal(np.concatenate(again), seen)


def test_block_shuffle_keeps_rows_within_a_window_of_blocks():
    ids = np.arange(4096)
    for (batch_ids,) in iterate_block_minibatches((ids,), 64, np.random.default_rng(0), block_rows=256, window=2):
        assert len(np.unique(batch_ids // 256)) <= 4        # two blocks, plus a tail carried from the last window


def test_page_release_drops_resident_pages_of_a_mapping(tmp_path):
    path = tmp_path / "big.npy"
    np.save(path, np.full((2048, 4096), 7, dtype=np.uint8))   # 8 MiB
    X = np.load(path, mmap_mode="r")
    mm = X.base
    assert isinstance(mm, mmap.mmap)

    def resident_pages() -> int:     # mincore would be exact; VmRSS is robust enough at 8 MiB
        with open(f"/proc/{os.getpid()}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("RssFile:"))
    before = resident_pages()
    total = sum(int(block.sum()) for _, _, block in iterate_rows(X, 256))
    after = resident_pages()
    assert total == 7 * X.size
    assert after - before < 2048, (before, after)           # < 2 MiB of the 8 MiB stayed resident
    assert PageRelease(np.zeros(3)).mm is None              # in memory: nothing to release


def test_gzipped_idx_cannot_be_memory_mapped(tmp_path):
    write_idx(tmp_path / "x.gz", np.zeros((2, 3), np.uint8))
    with pytest.raises(DataFormatError, match="decompress"):
        open_idx_memmap(tmp_path / "x.gz")


def test_sgd_streams_a_dask_array_in_its_chunks():
    da = pytest.importorskip("dask.array", reason="needs dask")
    X, y = _data(n=700)
    lazy = da.from_array(X, chunks=(100, 20))
    models = []
    for data in (lazy, X):
        model = _model()
        fit(model, data, y, epochs=2, batch_size=50, seed=2, shuffle="blocks", standardize=True)
        models.append(model)
    # the blocks differ (Dask chunks of 100 rows vs blocks of 4096), so only the trained quality is compared
    assert abs(models[0].evaluate(X, y)[1] - models[1].evaluate(X, y)[1]) < 0.1
    model = _model()
    fit(model, lazy, y, epochs=2, batch_size=50, seed=2, standardize=True)         # auto: blocks
    np.testing.assert_array_equal(model.W, models[0].W)


def test_early_stopping_refuses_streamed_x_and_says_to_pass_validation_data(tmp_path):
    X, y = _data()
    np.save(tmp_path / "X.npy", X)
    mapped = np.load(tmp_path / "X.npy", mmap_mode="r")
    with pytest.raises(InvalidArgumentError, match="early_stopping: not available for streamed X.*validation_data"):
        fit(_model(), mapped, y, epochs=1, early_stopping=True)
    fit(_model(), X, y, epochs=1, early_stopping=True)                         # in memory: as before


def test_nan_in_streamed_x_under_sgd_names_the_chunk_not_divergence(tmp_path):
    da = pytest.importorskip("dask.array", reason="needs dask")
    X = np.random.default_rng(0).normal(size=(700, 20)).astype(np.float32)
    y = np.arange(700) % 4
    X[450, 3] = np.nan
    with pytest.raises(InvalidArgumentError, match=r"X: chunk 4 \(rows 400..499\) contains NaN or infinite values"):
        fit(SoftmaxRegression(20, 4, seed=3), da.from_array(X, chunks=(100, 20)), y, epochs=1)
    np.save(tmp_path / "X.npy", X)                               # a memory map: the model's check, before training
    with pytest.raises(InvalidArgumentError, match="X: contains NaN or infinite values"):
        fit(SoftmaxRegression(20, 4, seed=3), np.load(tmp_path / "X.npy", mmap_mode="r"), y, epochs=1)


def test_dask_rows_and_the_engine_share_one_shape_check():
    pytest.importorskip("dask.array", reason="needs dask")
    import dask.array as da
    from softmaxreg.engines import dask as dask_engine

    wrong = da.zeros((30, 7), chunks=(10, 7))
    for run in (lambda: fit(_model(), wrong, np.zeros(30, int), epochs=1),
                lambda: dask_engine.align(_model(), wrong, np.zeros(30, int))):
        with pytest.raises(InvalidArgumentError, match=r"X: expected .* of shape \(n, 20\)"):
            run()
    with pytest.raises(InvalidArgumentError, match="of real numbers, got complex"):
        check_rows(np.zeros((3, 20), complex), 20)


def test_row_chunks_of_a_memory_map_reads_the_file_in_its_tasks(tmp_path):
    pytest.importorskip("dask.array", reason="needs dask")
    import pickle

    import dask
    from softmaxreg.engines.dask_cluster import row_chunks

    X, y = _data(n=5000)
    np.save(tmp_path / "X.npy", X)
    write_idx(tmp_path / "X.idx", X.astype(">i2"))
    for mapped in (np.load(tmp_path / "X.npy", mmap_mode="r"), open_idx_memmap(tmp_path / "X.idx")):
        lazy = row_chunks(mapped, 1000)
        assert lazy.chunks[0] == (1000,) * 5
        assert len(pickle.dumps(dict(lazy.__dask_graph__()))) < 20_000        # the file's name, not its bytes
        np.testing.assert_array_equal(dask.compute(lazy)[0], X)
    assert len(pickle.dumps(dict(row_chunks(X, 1000).__dask_graph__()))) > X.nbytes    # in memory: the data
