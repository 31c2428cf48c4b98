"""The asynchronous training loop (issue 12, item 4): batches prefetched by a background
thread (`data_pipeline.Prefetcher`) and no host synchronisation per step (metrics are
pulled every `log_every_steps`, before checkpoints and evaluations).

The NaN/inf guard that must survive this is tested in test_train_robustness.py
(`test_nan_gradients_stop_the_run_and_no_nonfinite_state_is_saved`).
"""
import json
import threading
import time

import jax
import numpy as np
import pytest

from lcl_jax.train import data_pipeline, parallel, throughput, trainer
from test_train import _comparable, _tiny_config  # pytest puts tests/ on sys.path


def _prefetch_threads():
  return [t for t in threading.enumerate() if t.name == "lcl_jax-prefetch" and t.is_alive()]


class _Source:
  """A batch generator that records how far it got and whether it was closed."""

  def __init__(self, n, *, fail_at=None, delay=0.0):
    self.n, self.fail_at, self.delay = n, fail_at, delay
    self.produced = 0
    self.closed = False

  def __iter__(self):
    try:
      for i in range(self.n):
        time.sleep(self.delay)
        if i == self.fail_at:
          raise KeyError(f"broken batch {i}")
        self.produced += 1
        yield {"x": np.full(3, i)}
    finally:
      self.closed = True


@pytest.mark.parametrize("depth", [0, 1, 2])
def test_prefetcher_keeps_order_and_bounds_the_queue(depth):
  source = _Source(7, delay=0.002)
  ahead = []
  with data_pipeline.Prefetcher(source, lambda b: b["x"] * 10, depth=depth) as batches:
    got = []
    for batch, placed in batches:
      ahead.append(source.produced - (len(got) + 1))  # built but not yet handed out
      time.sleep(0.005)  # a slow consumer: the producer runs ahead as far as allowed
      got.append((int(batch["x"][0]), placed.tolist()))
  assert got == [(i, [10 * i] * 3) for i in range(7)]
  # at most `depth` queued plus the one being placed by the producer
  assert max(ahead) <= depth + 1 and (depth == 0 or max(ahead) >= 1)
  assert source.closed and not _prefetch_threads()


def test_prefetcher_can_place_in_the_callers_thread():
  """Multi-process runs (place_in_thread=False): batches are built ahead by the thread,
  but `put` (which makes global arrays) runs in the consumer's thread, in order."""
  source = _Source(5, delay=0.002)
  put_threads, order = [], []

  def put(b):
    put_threads.append(threading.current_thread().name)
    order.append(int(b["x"][0]))
    return b["x"] + 1

  with data_pipeline.Prefetcher(source, put, depth=2, place_in_thread=False) as batches:
    got = []
    for batch, placed in batches:
      time.sleep(0.005)
      got.append((int(batch["x"][0]), placed.tolist()))
  assert got == [(i, [i + 1] * 3) for i in range(5)]
  assert order == list(range(5))
  assert set(put_threads) == {threading.main_thread().name}
  assert source.closed and not _prefetch_threads()


def test_prefetcher_reraises_the_producers_exception_in_order():
  source = _Source(5, fail_at=3)
  batches = data_pipeline.Prefetcher(source, lambda b: b, depth=2)
  got = [int(b["x"][0]) for b, _ in (next(batches) for _ in range(3))]
  assert got == [0, 1, 2]
  with pytest.raises(KeyError, match="broken batch 3") as e:
    next(batches)
  assert any(frame.name == "__iter__" for frame in __import__("traceback").extract_tb(
      e.value.__traceback__))  # the producer's traceback travels with it
  with pytest.raises(StopIteration):
    next(batches)
  batches.close()
  assert source.closed and not _prefetch_threads()


def test_prefetcher_close_stops_the_thread_early():
  """An early exit (SIGTERM's TrainingInterrupted, Ctrl-C, early stop) leaves no thread
  and closes the generator; the producer does not run to the end of the epoch."""
  source = _Source(1000)
  with pytest.raises(RuntimeError, match="stop"):
    with data_pipeline.Prefetcher(source, lambda b: b, depth=2) as batches:
      next(batches)
      raise RuntimeError("stop")
  assert source.closed and source.produced < 10 and not _prefetch_threads()


def test_loop_dispatches_ahead_and_equals_the_synchronous_loop(
    tiny_bert_dir, data_dir, tmp_path, monkeypatch):
  """One epoch of 6 steps, metrics logged every 4: steps 1-4 are all dispatched before the
  host pulls any metrics, which arrive in one transfer per log window (steps 1-4, then
  5-6 at the epoch end); the host waits otherwise only around compilations. The run,
  with prefetching and a slow batch producer, equals one without a prefetch thread."""
  events = []
  original_compile = parallel.JitDataParallel.compile_train_step
  original_fetch = parallel.JitDataParallel.fetch_scalars
  original_block = jax.block_until_ready

  def compile_train_step(self, fn):
    compiled = original_compile(self, fn)

    def dispatch(state, batch):
      events.append("dispatch")
      return compiled(state, batch)
    return dispatch

  def fetch_scalars(self, metrics):
    events.append(f"fetch{len(metrics)}")
    return original_fetch(self, metrics)

  def block_until_ready(x):
    events.append("block")
    return original_block(x)

  original_batches = data_pipeline.PreparedData.train_batches

  def slow_batches(self, epoch, *, start_step=0):
    for batch in original_batches(self, epoch, start_step=start_step):
      time.sleep(0.02)
      yield batch

  def run(name, depth):
    with monkeypatch.context() as m:
      m.setattr(data_pipeline, "PREFETCH_DEPTH", depth)
      m.setattr(data_pipeline.PreparedData, "train_batches", slow_batches)
      m.setattr(parallel.JitDataParallel, "compile_train_step", compile_train_step)
      m.setattr(parallel.JitDataParallel, "fetch_scalars", fetch_scalars)
      m.setattr(jax, "block_until_ready", block_until_ready)
      cfg = _tiny_config(tiny_bert_dir, data_dir, tmp_path / name, objective="ce", epochs=1,
                         log_every_steps=4, checkpoint_every_steps=100)
      events.clear()
      results = trainer.train(cfg)
      return results, list(events), (tmp_path / name / "metrics.jsonl").read_text()

  async_results, async_events, async_metrics = run("prefetch", 2)
  assert not _prefetch_threads()
  sync_results, _, sync_metrics = run("synchronous", 0)
  assert _comparable(async_results) == _comparable(sync_results)
  def records(text):  # every train and eval record, less the timing
    return [{k: v for k, v in json.loads(line).items() if k not in throughput.TIMING_KEYS}
            for line in text.splitlines()]
  assert records(async_metrics) == records(sync_metrics)

  assert async_results["steps"] == 6
  training = async_events[:async_events.index("fetch2") + 1]  # then the evaluation
  assert [e for e in training if e.startswith("fetch")] == ["fetch4", "fetch2"]
  first_fetch = training.index("fetch4")
  assert training[:first_fetch].count("dispatch") == 4
  assert training[first_fetch + 1:].count("dispatch") == 2
  # waits only around compilations: one before (if anything is pending) and one after
  assert training.count("block") <= 2 * async_results["compiled_train_shapes"]
  assert async_results["sequences_per_second"] > 0
