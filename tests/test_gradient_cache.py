"""Gradient caching (issue 19; Gao et al. 2021): the cached train step equals the plain one.

The reference is the plain step (`steps.make_train_step` without a chunk size) with each
row's dropout masks drawn from its own key (`dropout_per_row=True`): the masks the
cached step draws too, whatever the chunking. Dropout is on in every comparison.
Tolerances (float32; the cached step sums the chunks' parameter gradients in another
order): loss and components to 2e-6 relative, gradients to 1e-5 of the largest
gradient, AdamW-updated parameters to 1e-6 absolute (the learning rate is 1e-3).
"""
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lcl_jax import losses
from lcl_jax.data import label_inputs
from lcl_jax.models import pretrained
from lcl_jax.train import objectives, optim, parallel, steps, throughput, trainer
from lcl_jax.train.config import TrainConfig

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
NUM_CLASSES = 5
ROWS, LENGTH, CHUNK = 32, 16, 8
LABEL_NAMES = ("joy", "anger", "fear", "sadness", "surprise")


def _batch(seed=0, *, multilabel=False, input_ids=None, token_type_ids=None):
  """A paired global batch: rows i and i + 14 are views of one example; 4 padding rows."""
  rng = np.random.default_rng(seed)
  k, valid_rows = 14, 28
  if input_ids is None:
    input_ids = rng.integers(1000, 5000, size=(ROWS, LENGTH)).astype(np.int32)
    input_ids[:, 0] = 101
  lengths = rng.integers(input_ids.shape[1] // 2, input_ids.shape[1] + 1, size=ROWS)
  attention_mask = (np.arange(input_ids.shape[1])[None] < lengths[:, None]).astype(np.int32)
  if multilabel:
    labels = (rng.random((ROWS, NUM_CLASSES)) < 0.3).astype(np.int32)
  else:
    labels = rng.integers(0, NUM_CLASSES, size=ROWS).astype(np.int32)
  labels[k:2 * k] = labels[:k]
  aux_labels = (rng.random((ROWS, 2)) < 0.4).astype(np.int32)
  aux_labels[k:2 * k] = aux_labels[:k]
  valid = np.arange(ROWS) < valid_rows
  return {"input_ids": input_ids * attention_mask, "attention_mask": attention_mask,
          "token_type_ids": (np.zeros_like(input_ids) if token_type_ids is None
                             else token_type_ids),
          "labels": labels, "valid": valid, "aux_labels": aux_labels,
          "example_index": np.where(valid, np.arange(ROWS) % k, -1).astype(np.int32)}


# case -> (objective, multilabel, label embeddings + auxiliary head)
CASES = {"ce": ("ce", False, False), "scl": ("scl", False, False),
         "lcl": ("lcl", False, False), "lcl_multilabel": ("lcl", True, False),
         "lcl_multilabel_label_embeddings_aux": ("lcl", True, True)}


@pytest.fixture(scope="module")
def case_setup(tiny_bert_dir):
  """case name -> (spec, modules, params, batch, multilabel, aux_weight), built once."""
  built = {}

  def get(name):
    if name not in built:
      objective, multilabel, label_embeddings = CASES[name]
      spec = objectives.get_spec(objective)
      options, batch, aux = {}, _batch(multilabel=multilabel), None
      if label_embeddings:  # seed 004: label-prefixed rows, Φ's auxiliary head
        tok = pretrained.load_tokenizer(tiny_bert_dir)
        block = label_inputs.label_block(tok, LABEL_NAMES, 12)
        rows = label_inputs.tokenize_with_labels(
            [f"text number {i} of the batch" for i in range(ROWS)], tok, block)
        options = dict(label_layout=objectives.label_layout_for(
            block, aux_membership=np.eye(NUM_CLASSES, 2, dtype=np.int32)), num_aux_classes=2)
        batch = _batch(multilabel=True, input_ids=rows.input_ids.astype(np.int32),
                       token_type_ids=rows.token_type_ids.astype(np.int32))
        aux = objectives.aux_weight_schedule(0.7, 1.0, 4)
      modules, params = objectives.build_networks(
          spec, encoder=str(tiny_bert_dir), weighting_encoder=str(tiny_bert_dir),
          num_classes=NUM_CLASSES, rng=jax.random.key(0), **options)
      built[name] = (spec, modules, params, batch, multilabel, aux)
    return built[name]

  return get


def _step(spec, modules, optimizer, multilabel, aux, *, chunk, per_row=True, axis_name=None,
          use_dropout=True, contrastive=None):
  return steps.make_train_step(
      spec, modules, optimizer, alpha=0.5, temperature=0.3, multilabel=multilabel,
      dropout_key=jax.random.key(7), use_dropout=use_dropout, axis_name=axis_name,
      aux_weight=aux, gradient_cache_chunk_size=chunk, dropout_per_row=per_row,
      contrastive=contrastive)


def _run(step_fn, host_state, batch, dp=None):
  """One step from `host_state`: (new host state, float metrics)."""
  if dp is None:
    state, metrics = jax.jit(step_fn)(host_state, batch)
    return jax.device_get(state), {k: float(v) for k, v in metrics.items()}
  state, metrics = dp.compile_train_step(step_fn)(dp.put_state(host_state), dp.put_batch(batch))
  return (jax.device_get(dp.host_state(state)),
          {k: float(v) for k, v in dp.fetch_scalars(metrics).items()})


def _assert_same_step(got, want, params, what):
  """Same metrics (loss, components, grad norms) and, with SGD(1), the same gradients."""
  (got_state, got_metrics), (want_state, want_metrics) = got, want
  assert got_metrics.keys() == want_metrics.keys()
  for name, value in want_metrics.items():
    np.testing.assert_allclose(got_metrics[name], value, rtol=2e-6, atol=1e-8,
                               err_msg=f"{what}: {name}")
  grads = jax.tree.map(lambda p, s: np.asarray(p) - np.asarray(s), params, want_state["params"])
  got_grads = jax.tree.map(lambda p, s: np.asarray(p) - np.asarray(s), params,
                           got_state["params"])
  scale = max(float(np.abs(g).max()) for g in jax.tree.leaves(grads))
  assert scale > 1e-4, "no gradient"
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=1e-5 * scale,
                                                       err_msg=what), got_grads, grads)


@pytest.fixture(scope="module")
def plain_step(case_setup):
  """case name -> the reference: one plain step with per-row dropout masks and SGD(1)
  from the initial params, as (initial host state, (new host state, metrics))."""
  done = {}

  def get(name):
    if name not in done:
      spec, modules, params, batch, multilabel, aux = case_setup(name)
      state = jax.device_get(steps.init_state(params, optax.sgd(1.0)))
      done[name] = state, _run(_step(spec, modules, optax.sgd(1.0), multilabel, aux, chunk=0),
                               state, batch)
    return done[name]

  return get


@pytest.mark.parametrize("case", list(CASES))
def test_cached_step_equals_the_plain_step_on_one_device(case_setup, plain_step, case):
  spec, modules, params, batch, multilabel, aux = case_setup(case)
  sgd = optax.sgd(1.0)  # params - new params = the gradients
  state, plain = plain_step(case)
  cached = _run(_step(spec, modules, sgd, multilabel, aux, chunk=CHUNK), state, batch)
  _assert_same_step(cached, plain, params, f"{case}, chunks of {CHUNK}")
  if case != "lcl":
    return
  cached = _run(_step(spec, modules, sgd, multilabel, aux, chunk=16), state, batch)
  _assert_same_step(cached, plain, params, f"{case}, chunks of 16")
  # Dropout was on, and per-row masks are still dropout: the loss differs from the
  # deterministic step's and from the step whose masks come from one batch-wide key.
  off = _run(_step(spec, modules, sgd, multilabel, aux, chunk=0, use_dropout=False), state,
             batch)
  batch_wide = _run(_step(spec, modules, sgd, multilabel, aux, chunk=0, per_row=False),
                    state, batch)
  assert abs(off[1]["loss"] - plain[1]["loss"]) > 1e-5
  assert abs(batch_wide[1]["loss"] - plain[1]["loss"]) > 1e-6
  # The updated parameters under the trainer's optimiser (AdamW, clipping).
  adamw = optim.make_optimizer(params, learning_rate=1e-3, total_steps=10)
  state = jax.device_get(steps.init_state(params, adamw))
  plain_state, _ = _run(_step(spec, modules, adamw, multilabel, aux, chunk=0), state, batch)
  cached_state, _ = _run(_step(spec, modules, adamw, multilabel, aux, chunk=CHUNK), state,
                         batch)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=1e-6),
               cached_state, plain_state)


@pytest.mark.parametrize("case", ["ce", "scl", "lcl", "lcl_multilabel"])
def test_cached_step_on_8_devices_equals_the_plain_step_on_one(case_setup, plain_step, case):
  assert len(jax.devices()) >= 8, "conftest must provide 8 CPU devices"
  spec, modules, params, batch, multilabel, aux = case_setup(case)
  state, plain = plain_step(case)
  jit8 = parallel.JitDataParallel(jax.devices()[:8])
  runs = [(jit8, None)]
  if case == "lcl":  # pmap (outputs all-gathered), and jit with the ring loss (the
    # contrastive term's tiles passed around the 8 devices, as --contrastive_impl=ring)
    runs += [(parallel.PmapDataParallel(jax.devices()[:8]), None),
             (jit8, losses.Contrastive("ring", tile_size=8, mesh=jit8.mesh,
                                       axis_name=parallel.DATA_AXIS))]
  for dp, contrastive in runs:
    assert contrastive is None or contrastive.choose(ROWS) == "ring"
    step_fn = _step(spec, modules, optax.sgd(1.0), multilabel, aux, chunk=CHUNK,
                    axis_name=dp.axis_name, contrastive=contrastive)
    what = f"{case}, {dp.name}" + (", ring" if contrastive is not None else "")
    _assert_same_step(_run(step_fn, state, batch, dp), plain, params, what)


def test_group_step_with_caching_runs_each_run_as_its_single_step(case_setup):
  """S = 2 runs vmapped (`make_group_train_step`) with caching: each run's update is its
  own cached single step's (alpha and dropout keys differ between the runs)."""
  spec, modules, params, batch, multilabel, aux = case_setup("lcl")
  adamw = optim.make_optimizer(params, learning_rate=1e-3, total_steps=10)
  state = jax.device_get(steps.init_state(params, adamw))
  group = jax.jit(steps.make_group_train_step(
      spec, modules, adamw, multilabel=False, gradient_cache_chunk_size=CHUNK))
  stack = lambda *xs: jax.tree.map(lambda *ys: jnp.stack(ys), *xs)
  keys = [jax.random.key(7), jax.random.key(8)]
  runs = {"alpha": jnp.asarray([0.5, 0.3]), "temperature": jnp.asarray([0.3, 0.3]),
          "dropout_key": jnp.stack(keys), "active": jnp.asarray([True, True])}
  states, metrics = group(stack(state, state), stack(batch, batch), runs)
  for i, alpha in enumerate((0.5, 0.3)):
    single = steps.make_train_step(spec, modules, adamw, alpha=alpha, temperature=0.3,
                                   multilabel=False, dropout_key=keys[i],
                                   gradient_cache_chunk_size=CHUNK)
    want_state, want_metrics = jax.jit(single)(state, batch)
    np.testing.assert_allclose(metrics["loss"][i], want_metrics["loss"], rtol=2e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a[i], b, rtol=0, atol=1e-6),
                 jax.device_get(states), jax.device_get(want_state))


def test_a_chunk_that_does_not_divide_the_rows_is_refused(case_setup):
  spec, modules, params, batch, multilabel, aux = case_setup("ce")
  sgd = optax.sgd(1.0)
  state = steps.init_state(params, sgd)
  with pytest.raises(ValueError, match="gradient_cache_chunk_size=12.*32 rows"):
    jax.jit(_step(spec, modules, sgd, multilabel, aux, chunk=12))(state, batch)
  with pytest.raises(ValueError, match="gradient_cache_chunk_size"):
    _step(spec, modules, sgd, multilabel, aux, chunk=-1)


def _train_config(tiny_bert_dir, data_dir, workdir, **overrides):
  values = dict(dataset="emoint", objective="lcl", encoder=str(tiny_bert_dir),
                data_dir=str(data_dir), workdir=str(workdir), seed=2, epochs=2,
                max_train_examples=40, max_eval_examples=24, texts_per_batch=5,
                eval_batch_size=16, max_length=32, length_buckets=(16, 32),
                learning_rate=1e-3, checkpoint_every_steps=3, log_every_steps=1,
                progress_bar=False, gradient_cache_chunk_size=4)
  values.update(overrides)
  return TrainConfig(**values)


def test_the_trainer_pads_rows_to_whole_chunks_and_refuses_a_chunk_the_devices_cannot_split(
    tiny_bert_dir, data_dir, tmp_path):
  """On the tests' 8 devices, K = 5 texts + 5 views = 10 rows are padded to 16 for chunks
  of 8 (one row a device a chunk); chunks of 4 rows cannot be split over 8 devices, which
  is refused before anything is written."""
  assert jax.device_count() == 8
  workdir = tmp_path / "run"
  results = trainer.train(_train_config(tiny_bert_dir, data_dir, workdir, epochs=1,
                                        max_steps_per_epoch=2, gradient_cache_chunk_size=8))
  assert results["steps"] == 2
  metrics = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  train = [m for m in metrics if m["kind"] == "train"]
  assert train and all(np.isfinite(m["loss"]) for m in train)
  with pytest.raises(ValueError, match="gradient_cache_chunk_size=4 must be a multiple of "
                                       "the 8 devices"):
    trainer.check_group([_train_config(tiny_bert_dir, data_dir, tmp_path / "other")])
  assert not (tmp_path / "other").exists()


def _binary(args, workdir):
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="", PYTHONUNBUFFERED="1")
  return subprocess.Popen([sys.executable, "-m", "experiments.train", *args,
                           f"--workdir={workdir}"], cwd=PROJECT_ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_a_killed_cached_two_stage_run_resumes_bit_identically(tiny_bert_dir, data_dir,
                                                                 tmp_path):
  """LCL with gradient caching and two-stage training through the binary (one device):
  SIGKILL after a checkpoint, re-run: the final state (every parameter and optimiser
  moment) and the results equal an uninterrupted run's, bit for bit."""
  import orbax.checkpoint as ocp

  args = [f"--encoder={tiny_bert_dir}", f"--data_dir={data_dir}", "--dataset=emoint",
          "--objective=lcl", "--seed=1", "--epochs=1", "--head_epochs=1",
          "--max_train_examples=40", "--max_eval_examples=16", "--texts_per_batch=5",
          "--max_length=32", "--length_buckets=16,32", "--learning_rate=1e-3",
          "--checkpoint_every_steps=2", "--keep_checkpoints=all", "--noprogress_bar",
          "--gradient_cache_chunk_size=4"]
  reference = _binary(args, tmp_path / "ref")
  out, _ = reference.communicate(timeout=600)
  assert reference.returncode == 0, out.decode()[-3000:]
  ref_dir, run_dir = tmp_path / "ref" / "lcl" / "seed1", tmp_path / "killed" / "lcl" / "seed1"
  ref = json.loads((ref_dir / "results.json").read_text())
  assert ref["steps"] == 16  # 8 steps a stage; 10 rows padded to 12 = 3 chunks a step

  proc = _binary(args, tmp_path / "killed")
  ckpt_dir = run_dir / "checkpoints"
  deadline = time.time() + 300
  while not (ckpt_dir.is_dir() and any(p.name.isdigit() and int(p.name) >= 4
                                       for p in ckpt_dir.iterdir())):
    assert proc.poll() is None, "the run finished before it could be interrupted"
    assert time.time() < deadline
    time.sleep(0.2)
  proc.send_signal(signal.SIGKILL)
  proc.communicate(timeout=300)
  assert not (run_dir / "results.json").exists()
  resumed = _binary(args, tmp_path / "killed")
  out, _ = resumed.communicate(timeout=600)
  assert resumed.returncode == 0, out.decode()[-3000:]
  drop = throughput.TIMING_KEYS | {"disk_bytes"}
  got = json.loads((run_dir / "results.json").read_text())
  assert {k: v for k, v in got.items() if k not in drop} == {
      k: v for k, v in ref.items() if k not in drop}

  def final_state(directory):
    step = max(int(p.name) for p in (directory / "checkpoints").iterdir() if p.name.isdigit())
    return step, ocp.StandardCheckpointer().restore(directory / "checkpoints" / str(step) / "state")

  (ref_step, ref_state), (got_step, got_state) = final_state(ref_dir), final_state(run_dir)
  assert ref_step == got_step == 16
  jax.tree.map(np.testing.assert_array_equal, got_state, ref_state)
