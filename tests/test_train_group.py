"""S runs in one program (`trainer.train_group`, jax.vmap over runs) against S separate
runs, and the group's resume after a SIGKILL (tiny random BERT, synthetic data)."""
import dataclasses
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from lcl_jax.train import throughput, trainer
from lcl_jax.train.config import TrainConfig

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
SEEDS = (0, 1, 2)
STEPS = 4  # 2 epochs x 2 steps


def _configs(tiny_bert_dir, root):
  base = TrainConfig(
      dataset="synthetic", objective="lcl", encoder=str(tiny_bert_dir), epochs=2,
      max_train_examples=40, max_eval_examples=16, max_steps_per_epoch=2,
      texts_per_batch=6, eval_batch_size=16, max_length=32, length_buckets=(8, 16, 32),
      learning_rate=1e-3, checkpoint_every_steps=1, log_every_steps=1, progress_bar=False,
      keep_checkpoints="all", workdir="unused")
  out = []
  for seed in SEEDS:
    # The last run also differs in the objective's alpha and temperature (traced scalars).
    extra = dict(alpha=0.3, temperature=0.2) if seed == SEEDS[-1] else {}
    out.append(dataclasses.replace(base, seed=seed, workdir=str(root / f"seed{seed}"), **extra))
  return out


def _final_state(workdir):
  step = max(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
  return step, ocp.StandardCheckpointer().restore(workdir / "checkpoints" / str(step) / "state")


def _comparable(results):
  drop = throughput.TIMING_KEYS | {"disk_bytes"}
  return {k: v for k, v in results.items() if k not in drop}


def _train_records(workdir):
  lines = (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines()
  return [r for r in map(json.loads, lines) if r["kind"] == "train"]


def _assert_same_run(got_dir, ref_dir, got_results, ref_results, *, learning_rate=1e-3):
  """Same run up to float32 rounding. Each step's loss agrees to 1e-6 and the gradient
  norms to 1e-5 relative (measured: losses bit-equal, gradient norms ~1e-7 apart: the
  vmapped matmuls reduce in another order). AdamW divides by sqrt(v), so a coordinate
  with a near-zero gradient can move by a different fraction of the learning rate:
  parameters must agree to 1e-6 of their global norm and each to 1% of one update
  (1e-2 * lr; measured max 1.8e-6 = 0.0018 * lr after 4 steps). A wrong alpha,
  temperature, dropout key or data order moves many coordinates by ~lr and fails."""
  got_records, ref_records = _train_records(got_dir), _train_records(ref_dir)
  assert [r["step"] for r in got_records] == [r["step"] for r in ref_records]
  for g, r in zip(got_records, ref_records):
    assert g["loss"] == pytest.approx(r["loss"], rel=1e-6)
    for key in ("grad_norm_primary", "grad_norm_weighting"):
      assert g[key] == pytest.approx(r[key], rel=1e-5)
  (got_step, got), (ref_step, ref) = _final_state(got_dir), _final_state(ref_dir)
  assert got_step == ref_step == STEPS
  assert jax.tree.structure(got) == jax.tree.structure(ref)
  got_leaves, ref_leaves = jax.tree.leaves(got["params"]), jax.tree.leaves(ref["params"])
  for a, b in zip(got_leaves, ref_leaves):
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-2 * learning_rate)
  difference = np.sqrt(sum(np.sum((np.asarray(a, np.float64) - b) ** 2)
                           for a, b in zip(got_leaves, ref_leaves)))
  norm = np.sqrt(sum(np.sum(np.asarray(b, np.float64) ** 2) for b in ref_leaves))
  assert difference <= 1e-6 * norm
  a, b = _comparable(got_results), _comparable(ref_results)
  for h_got, h_ref in zip(a.pop("history"), b.pop("history")):
    for split in ("validation", "test"):
      for key, value in h_ref[split].items():
        assert h_got[split][key] == pytest.approx(value, rel=1e-5, abs=1e-6), (split, key)
  for key in ("validation", "test"):
    assert a.pop(key) == pytest.approx(b.pop(key), rel=1e-5, abs=1e-6)
  assert a.pop("plots").keys() == b.pop("plots").keys()
  assert a == b


@pytest.fixture(scope="module")
def group_run(tiny_bert_dir, tmp_path_factory):
  root = tmp_path_factory.mktemp("group")
  configs = _configs(tiny_bert_dir, root)
  return configs, trainer.train_group(configs)


def test_group_of_three_equals_three_separate_runs(group_run, tiny_bert_dir, tmp_path):
  configs, group_results = group_run
  assert [r["seed"] for r in group_results] == list(SEEDS)
  separate = _configs(tiny_bert_dir, tmp_path)
  for cfg_group, cfg_alone, got in zip(configs, separate, group_results):
    alone = trainer.train(cfg_alone)
    _assert_same_run(pathlib.Path(cfg_group.workdir), pathlib.Path(cfg_alone.workdir),
                     got, alone)
    saved = json.loads((pathlib.Path(cfg_group.workdir) / "config.json").read_text())
    assert saved["runs_per_program"] == 3
  # The runs really differ (seeds, alpha/temperature): not one run copied three times.
  finals = [_final_state(pathlib.Path(c.workdir))[1]["params"] for c in configs]
  leaf = lambda tree: np.asarray(jax.tree.leaves(tree)[0])
  assert not np.allclose(leaf(finals[0]), leaf(finals[1]))
  # A finished group is returned at once, untouched.
  assert trainer.train_group(configs) == [json.loads(json.dumps(r)) for r in group_results]


def test_group_refuses_runs_that_differ_in_more_than_seed_alpha_temperature(
    tiny_bert_dir, tmp_path):
  a, b, _ = _configs(tiny_bert_dir, tmp_path)
  with pytest.raises(ValueError, match=r"differ only in.*\['learning_rate'\]"):
    trainer.train_group([a, dataclasses.replace(b, learning_rate=5e-4)])
  with pytest.raises(ValueError, match="--parallelism=jit"):
    trainer.train_group([dataclasses.replace(c, parallelism="pmap") for c in (a, b)])
  with pytest.raises(ValueError, match="distinct workdirs"):
    trainer.train_group([a, dataclasses.replace(b, workdir=a.workdir)])
  assert not any(tmp_path.iterdir())  # refused before anything was written


def test_group_killed_resumes_to_the_same_runs(group_run, tiny_bert_dir, tmp_path):
  """SIGKILL a group mid-training, then drop run 1's newest checkpoint (as a kill between
  two runs' saves would leave it): the re-run brings runs 0 and 2 back to the step all
  three saved, trains on, and ends with the reference group's parameters and metrics."""
  ref_configs, ref_results = group_run
  configs = _configs(tiny_bert_dir, tmp_path)
  payload = json.dumps([json.loads(c.to_json()) for c in configs])
  code = ("import json, sys; from lcl_jax.train import trainer; "
          "from lcl_jax.train.config import TrainConfig; "
          "trainer.train_group([TrainConfig.from_dict(c) for c in json.loads(sys.argv[1])])")
  # The devices of this process (conftest: 8 virtual CPUs), as the reference group had.
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(PROJECT_ROOT))
  proc = subprocess.Popen([sys.executable, "-c", code, payload], cwd=PROJECT_ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
  dirs = [pathlib.Path(c.workdir) / "checkpoints" for c in configs]
  saved = lambda d: sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) \
      if d.is_dir() else []
  deadline = time.time() + 900
  while not all(len(saved(d)) >= 2 for d in dirs):  # two steps kept by every run
    assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
    assert time.time() < deadline
    time.sleep(0.1)
  proc.send_signal(signal.SIGKILL)
  proc.communicate(timeout=120)
  assert not any((pathlib.Path(c.workdir) / "results.json").exists() for c in configs)
  behind = saved(dirs[1])[-2]
  shutil.rmtree(dirs[1] / str(saved(dirs[1])[-1]))  # run 1 is one save behind the others
  assert all(behind in saved(d) for d in dirs)

  results = trainer.train_group(configs)
  for index in range(3):
    _assert_same_run(pathlib.Path(configs[index].workdir),
                     pathlib.Path(ref_configs[index].workdir), results[index],
                     ref_results[index])
  for config in configs:
    metrics = [json.loads(line) for line in
               (pathlib.Path(config.workdir) / "metrics.jsonl").read_text().splitlines()]
    train_steps = [m["step"] for m in metrics if m["kind"] == "train"]
    assert train_steps == list(range(1, STEPS + 1))  # each step once, replays dropped

  # Finished runs are skipped: with run 1's results.json gone, the group finishes run 1
  # alone from its final checkpoint (no training step) and returns the others' as saved.
  (pathlib.Path(configs[1].workdir) / "results.json").unlink()
  again = trainer.train_group(configs)
  untimed = lambda r: {k: v for k, v in _comparable(r).items() if k != "compiled_train_shapes"}
  assert [untimed(r) for r in again] == [untimed(json.loads(json.dumps(r))) for r in results]


def test_group_step_equals_single_steps_and_freezes_a_stopped_run():
  """`steps.make_group_train_step` on the runs x data mesh (2 x 4 of the 8 devices), a
  small GRU pair: run i's update equals `make_train_step` with run i's alpha,
  temperature and dropout key (traced, one program); a run marked inactive (stopped
  early) comes back bit for bit unchanged, its step counter too."""
  from lcl_jax.data import batching, text_tokenizers
  from lcl_jax.train import data_pipeline, objectives, optim, parallel, steps

  texts = ["what a happy day", "so sad and alone", "angry at the noise", "calm blue sea",
           "joy joy joy", "tears again tonight", "furious driver honks", "quiet morning"]
  tokenizer = text_tokenizers.build_tokenizer("gru", texts)
  tokens = batching.tokenize_texts(texts, tokenizer, max_length=8)
  rows = len(texts)
  batch = {"input_ids": tokens.input_ids, "attention_mask": (
      np.arange(tokens.input_ids.shape[1])[None] < tokens.lengths[:, None]).astype(np.int32),
           "token_type_ids": np.zeros_like(tokens.input_ids),
           "labels": np.array([0, 1, 2, 0, 0, 1, 2, 0], np.int32), "valid": np.ones(rows, bool),
           "example_index": np.arange(rows, dtype=np.int32)}
  spec = objectives.get_spec("lcl")
  nets = [objectives.build_networks(spec, encoder="gru", weighting_encoder="gru",
                                    num_classes=3, rng=jax.random.key(seed),
                                    tokenizer=tokenizer) for seed in (0, 1)]
  modules = nets[0][0]
  optimizer = optim.make_optimizer(nets[0][1], learning_rate=1e-2, total_steps=10)
  hparams = [(0.5, 0.3), (0.2, 0.7)]
  group = parallel.RunsDataParallel(2)
  assert dict(group.mesh.shape) == {"runs": 2, "data": 4}
  step = group.compile_train_step(steps.make_group_train_step(
      spec, modules, optimizer, multilabel=False))
  states = [steps.init_state(p, optimizer) for _, p in nets]
  run_args = lambda active: group.put_run_args({
      "alpha": np.array([a for a, _ in hparams], np.float32),
      "temperature": np.array([t for _, t in hparams], np.float32),
      "dropout_key": jax.random.wrap_key_data(np.stack(
          [jax.random.key_data(jax.random.key(seed + 1)) for seed in (0, 1)])),
      "active": np.array(active)})
  stacked = group.put_batch(data_pipeline.stack_run_batches([batch, batch], pad_token_id=0))
  both, both_metrics = step(group.put_state(states), stacked, run_args([True, True]))
  one, one_metrics = step(group.put_state(states), stacked, run_args([True, False]))
  for index, (alpha, temperature) in enumerate(hparams):
    single = jax.jit(steps.make_train_step(
        spec, modules, optimizer, alpha=alpha, temperature=temperature, multilabel=False,
        dropout_key=jax.random.key(index + 1)))
    expected, metrics = single(jax.tree.map(np.copy, states[index]), batch)
    assert float(both_metrics["loss"][index]) == pytest.approx(float(metrics["loss"]), rel=1e-6)
    got = group.run_state(both, index)
    assert int(got["step"]) == 1
    for a, b in zip(jax.tree.leaves(got["params"]), jax.tree.leaves(expected["params"])):
      # AdamW's first update is lr * g / (|g| + eps): rounding-level gradient differences
      # (the vmapped matmuls) move a coordinate whose |g| is near eps by a fraction of
      # lr (measured 1.4e-7); 1e-3 of one update is allowed, a wrong alpha/tau/key
      # changes many coordinates by ~lr = 1e-2.
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-3 * 1e-2)
  jax.tree.map(np.testing.assert_array_equal, group.run_state(one, 1), states[1])
  jax.tree.map(np.testing.assert_array_equal, group.run_state(one, 0), group.run_state(both, 0))
