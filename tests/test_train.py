"""The training loop end to end, on subsets of the real release files.

Mechanics (metrics, checkpoints, resume, preemption, NaN handling) run on a tiny random
BERT (`tiny_bert_dir`) so each run takes seconds; `test_each_objective_learns_minilm`
trains the real pretrained MiniLM on real data.
"""
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from sklearn import metrics as skm

from lcl_jax.train import checkpoint as checkpoint_lib
from lcl_jax.train import data_pipeline, objectives, optim, steps, throughput, trainer
from lcl_jax.train.config import TrainConfig

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _tiny_config(tiny_bert_dir, data_dir, workdir, **overrides):
  values = dict(dataset="isear", objective="lcl", encoder=str(tiny_bert_dir),
                data_dir=str(data_dir), workdir=str(workdir), seed=3, epochs=2,
                max_train_examples=48, max_eval_examples=40, texts_per_batch=8,
                eval_batch_size=16, max_length=32, length_buckets=(16, 32),
                learning_rate=1e-3, checkpoint_every_steps=2, log_every_steps=1,
                progress_bar=False)
  values.update(overrides)
  return TrainConfig(**values)


def _comparable(results):
  drop = throughput.TIMING_KEYS | {"disk_bytes"}  # timings; log/event file sizes
  return {k: v for k, v in results.items() if k not in drop}


def test_metrics_equal_sklearn_on_saved_predictions(tiny_bert_dir, data_dir, tmp_path):
  results = trainer.train(_tiny_config(tiny_bert_dir, data_dir, tmp_path / "run"))
  assert results["epochs_trained"] == 2 and results["best_epoch"] in (1, 2)
  assert results["split_sizes"] == {"train": 48, "validation": 40, "test": 40}
  saved = json.loads((tmp_path / "run" / "results.json").read_text())
  assert saved == json.loads(json.dumps(results))
  for split in ("validation", "test"):
    arrays = np.load(tmp_path / "run" / "predictions" / f"best_{split}.npz")
    labels = arrays["labels"]
    assert len(labels) == 40
    for prefix in ("", "weighting_"):
      probs, preds = arrays[prefix + "probabilities"], arrays[prefix + "predictions"]
      np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
      np.testing.assert_array_equal(preds, probs.argmax(-1))
      m = results[split]
      assert m[prefix + "accuracy"] == pytest.approx(skm.accuracy_score(labels, preds))
      assert m[prefix + "weighted_f1"] == pytest.approx(
          skm.f1_score(labels, preds, average="weighted", labels=range(7), zero_division=0))
      assert m[prefix + "macro_f1"] == pytest.approx(
          skm.f1_score(labels, preds, average="macro", labels=range(7), zero_division=0))
  # The reported epoch is the best validation epoch, and its test metrics are reported.
  history = results["history"]
  # (ties of the metric go to the lower validation loss, then to the earlier epoch)
  best = max(history, key=lambda h: (h["validation"]["accuracy"], -h["validation"]["loss"]))
  assert results["best_epoch"] == best["epoch"]
  assert results["test"] == best["test"]
  lines = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
  assert {l["kind"] for l in lines} == {"train", "eval"}
  assert any(p.name.startswith("events") for p in (tmp_path / "run" / "tensorboard").iterdir())
  # A finished run is not trained again: same results, returned at once.
  t0 = time.perf_counter()
  assert trainer.train(_tiny_config(tiny_bert_dir, data_dir, tmp_path / "run")) == saved
  assert time.perf_counter() - t0 < 5


def test_export_hf_writes_the_best_params_as_a_loadable_checkpoint(
    tiny_bert_dir, data_dir, tmp_path):
  from lcl_jax import models

  results = trainer.train(_tiny_config(tiny_bert_dir, data_dir, tmp_path / "run", epochs=1,
                                       export_hf=True))
  assert set(results["export"]) == {"primary", "weighting"}
  ckpt = checkpoint_lib.RunCheckpoints(tmp_path / "run")
  spec = objectives.get_spec("lcl")
  modules, params = objectives.build_networks(
      spec, encoder=str(tiny_bert_dir), weighting_encoder=str(tiny_bert_dir), num_classes=7,
      rng=jax.random.key(0))
  best, _ = ckpt.restore_best(params)
  for name, head in (("primary", "paper"), ("weighting", "electra")):
    _, reloaded = models.build_classifier(head, results["export"][name], 7,
                                          rng=jax.random.key(5))
    jax.tree.map(np.testing.assert_array_equal, reloaded, jax.device_get(best[name]))


def test_same_seed_same_metrics_and_resume_refuses_other_config(tiny_bert_dir, data_dir, tmp_path):
  a = trainer.train(_tiny_config(tiny_bert_dir, data_dir, tmp_path / "a", epochs=1))
  b = trainer.train(_tiny_config(tiny_bert_dir, data_dir, tmp_path / "b", epochs=1))
  assert _comparable(a) == _comparable(b)
  with pytest.raises(ValueError, match="different configuration.*learning_rate"):
    trainer.train(_tiny_config(tiny_bert_dir, data_dir, tmp_path / "a", epochs=1,
                               learning_rate=5e-4))


def _run_binary(args, **kwargs):
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="", PYTHONUNBUFFERED="1")
  return subprocess.Popen([sys.executable, "-m", "experiments.train", *args], cwd=PROJECT_ROOT,
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kwargs)


def _binary_args(tiny_bert_dir, data_dir, workdir):
  return [f"--encoder={tiny_bert_dir}", f"--data_dir={data_dir}", f"--workdir={workdir}",
          "--dataset=emoint", "--objective=scl", "--seed=1", "--epochs=2",
          "--max_train_examples=64", "--max_eval_examples=32", "--texts_per_batch=8",
          "--max_length=32", "--length_buckets=16,32", "--learning_rate=1e-3",
          "--checkpoint_every_steps=3", "--noprogress_bar"]


def _wait_for(path_glob_dir, predicate, proc, timeout=240):
  deadline = time.time() + timeout
  while time.time() < deadline:
    if predicate():
      return True
    if proc.poll() is not None:
      return False
    time.sleep(0.2)
  raise TimeoutError(f"waited {timeout}s for {path_glob_dir}")


@pytest.fixture(scope="module")
def uninterrupted_scl_results(tiny_bert_dir, data_dir, tmp_path_factory):
  """results.json of the uninterrupted run of `_binary_args` (one run shared by the
  SIGKILL and SIGTERM cases: the same command in another workdir)."""
  workdir = tmp_path_factory.mktemp("uninterrupted") / "ref"
  reference = _run_binary(_binary_args(tiny_bert_dir, data_dir, workdir))
  out, _ = reference.communicate(timeout=600)
  assert reference.returncode == 0, out.decode()[-3000:]
  return json.loads((workdir / "scl" / "seed1" / "results.json").read_text())


@pytest.mark.parametrize("how", ["sigkill", "sigterm"])
def test_killed_run_resumes_to_the_same_results(tiny_bert_dir, data_dir, tmp_path, how,
                                                uninterrupted_scl_results):
  """A run killed mid-training (SIGKILL: no chance to save; SIGTERM: saves and exits)
  and re-run with the same command ends with the same metrics as an uninterrupted run."""
  ref = uninterrupted_scl_results
  run_dir = tmp_path / "killed" / "scl" / "seed1"
  proc = _run_binary(_binary_args(tiny_bert_dir, data_dir, tmp_path / "killed"))
  ckpt_dir = run_dir / "checkpoints"
  started = _wait_for(ckpt_dir, lambda: ckpt_dir.is_dir() and any(
      p.name.isdigit() for p in ckpt_dir.iterdir()), proc)
  assert started, "the run finished before it could be interrupted"
  proc.send_signal(signal.SIGKILL if how == "sigkill" else signal.SIGTERM)
  out, _ = proc.communicate(timeout=300)
  if how == "sigterm":
    assert proc.returncode == 143, out.decode()[-3000:]
    assert b"re-run the same command to resume" in out
  else:
    assert proc.returncode == -signal.SIGKILL
  assert not (run_dir / "results.json").exists()

  resumed = _run_binary(_binary_args(tiny_bert_dir, data_dir, tmp_path / "killed"))
  out, _ = resumed.communicate(timeout=600)
  assert resumed.returncode == 0, out.decode()[-3000:]
  got = json.loads((run_dir / "results.json").read_text())
  assert _comparable(got) == _comparable(ref)
  assert b"scl" in out and b"SYNTHETIC" not in out


def test_nan_loss_stops_with_clear_error_and_keeps_last_good_checkpoint(
    tiny_bert_dir, data_dir, tmp_path):
  cfg = _tiny_config(tiny_bert_dir, data_dir, tmp_path / "nan", objective="ce",
                     learning_rate=1e30, checkpoint_every_steps=1, epochs=1)
  with pytest.raises(trainer.NonFiniteLossError, match="last good checkpoint"):
    trainer.train(cfg)
  ckpt = checkpoint_lib.RunCheckpoints(tmp_path / "nan")
  assert ckpt.latest_step is not None and ckpt.latest_step >= 1
  assert not (tmp_path / "nan" / "results.json").exists()


def test_multilabel_run(tiny_bert_dir, data_dir, tmp_path):
  results = trainer.train(_tiny_config(
      tiny_bert_dir, data_dir, tmp_path / "ml", dataset="goemotions_multilabel",
      objective="lcl", epochs=1, thresholds=0.3))
  assert results["multilabel"] and results["selection_metric"] == "macro_f1"
  arrays = np.load(tmp_path / "ml" / "predictions" / "best_test.npz")
  labels, preds = arrays["labels"], arrays["predictions"]
  assert labels.shape == preds.shape == (40, 28)
  np.testing.assert_array_equal(preds, arrays["probabilities"] >= 0.3)
  assert results["test"]["micro_f1"] == pytest.approx(
      skm.f1_score(labels, preds, average="micro", zero_division=0))
  assert results["test"]["macro_f1"] == pytest.approx(
      skm.f1_score(labels, preds, average="macro", zero_division=0))


def test_wrong_number_of_thresholds_is_refused(tiny_bert_dir, data_dir, tmp_path):
  with pytest.raises(ValueError, match="thresholds has 3 values; goemotions_multilabel has 28"):
    trainer.train(_tiny_config(tiny_bert_dir, data_dir, tmp_path / "t",
                               dataset="goemotions_multilabel", thresholds=(0.3, 0.4, 0.5)))


@pytest.mark.parametrize("objective", ["ce", "scl", "lcl", "bert_ce"])
def test_each_objective_learns_minilm(objective, data_dir, tmp_path):
  """A few steps of each objective on real EmoInt texts + WordNet views with the real
  pretrained MiniLM: finite losses that go down on the batch being fitted."""
  cfg = TrainConfig(dataset="emoint", objective=objective, encoder="minilm",
                    data_dir=str(data_dir), workdir=str(tmp_path), seed=0,
                    max_train_examples=10, texts_per_batch=10, max_length=16,
                    length_buckets=(16,), learning_rate=5e-5).resolved()
  data = data_pipeline.prepare(cfg, num_devices=1)
  batch = next(data.train_batches(0))
  assert batch["input_ids"].shape == (20, 16) and batch["valid"].all()
  np.testing.assert_array_equal(batch["labels"][:10], batch["labels"][10:])
  spec = objectives.get_spec(objective)
  modules, params = objectives.build_networks(
      spec, encoder="minilm", weighting_encoder="minilm", num_classes=4,
      rng=jax.random.key(0))
  optimizer = optim.make_optimizer(params, learning_rate=cfg.learning_rate, total_steps=100)
  step = jax.jit(steps.make_train_step(
      spec, modules, optimizer, alpha=cfg.alpha, temperature=cfg.temperature,
      multilabel=False, dropout_key=jax.random.key(1), use_dropout=False))
  state = steps.init_state(params, optimizer)
  losses = []
  for _ in range(6):
    state, m = step(state, batch)
    losses.append(float(m["loss"]))
  assert np.all(np.isfinite(losses)), losses
  assert losses[-1] < losses[0] - 0.05, losses


def test_multilabel_per_class_thresholds_are_fitted_on_validation_saved_and_applied(
    tiny_bert_dir, data_dir, tmp_path):
  """Issue 9: seed 000's direct head, a constant rate; per-class thresholds fitted on the
  best epoch's validation predictions (thresholds.json) and applied to test."""
  from lcl_jax import thresholds as thresholds_lib
  run = tmp_path / "ml"
  results = trainer.train(_tiny_config(
      tiny_bert_dir, data_dir, run, dataset="goemotions_multilabel", objective="ce",
      head="direct", lr_schedule="constant", epochs=1, thresholds=0.3))
  val = np.load(run / "predictions" / "best_validation.npz")
  test = np.load(run / "predictions" / "best_test.npz")
  fitted = thresholds_lib.fit_per_class_thresholds(val["labels"], val["probabilities"],
                                                   default=0.3)
  record = results["per_class_thresholds"]
  assert record["fit_split"] == "validation"
  np.testing.assert_array_equal(record["thresholds"], fitted)
  saved = json.loads((run / "thresholds.json").read_text())
  assert saved["per_class"] == record["thresholds"] and saved["labels"][-1] == "neutral"
  assert len(saved["per_class"]) == 28 and saved["global"] == [0.3] * 28
  preds = (test["probabilities"] >= fitted).astype(int)  # column c against fitted[c]
  for average in ("micro", "macro", "weighted"):
    assert record["test"][f"{average}_f1"] == pytest.approx(
        skm.f1_score(test["labels"], preds, average=average, zero_division=0))
  assert record["test"]["exact_match"] == pytest.approx(skm.accuracy_score(test["labels"], preds))
  per_class = results["per_class_test"]["per_class_thresholds"]
  np.testing.assert_allclose(per_class["f1"], skm.f1_score(test["labels"], preds, average=None,
                                                           zero_division=0))
  assert per_class["support"] == test["labels"].sum(0).tolist()
  glob = results["per_class_test"]["global"]
  np.testing.assert_allclose(glob["recall"], skm.recall_score(
      test["labels"], test["predictions"], average=None, zero_division=0))
  # Seed 003's choice: fit on train (one more evaluation pass with the best params).
  on_train = trainer.train(_tiny_config(
      tiny_bert_dir, data_dir, tmp_path / "ml_train", dataset="goemotions_multilabel",
      objective="ce", head="direct", lr_schedule="constant", epochs=1, thresholds=0.3,
      threshold_fit="train", max_train_examples=24))
  fitted_train = np.asarray(on_train["per_class_thresholds"]["thresholds"])
  assert on_train["per_class_thresholds"]["fit_split"] == "train"
  test = np.load(tmp_path / "ml_train" / "predictions" / "best_test.npz")
  assert on_train["per_class_thresholds"]["test"]["macro_f1"] == pytest.approx(skm.f1_score(
      test["labels"], test["probabilities"] >= fitted_train, average="macro", zero_division=0))


def test_two_stage_freezes_encoders_bit_identically_and_trains_new_heads(
    tiny_bert_dir, data_dir, tmp_path, monkeypatch):
  """Stage 2: every encoder leaves stage 2 exactly as it ended stage 1; the heads are
  re-initialised and change during stage 2."""
  boundary = {}
  original = trainer._reinitialise_heads

  def capture(host_state, modules, seed):
    boundary["state"] = jax.tree.map(np.array, host_state)
    out = original(host_state, modules, seed)
    boundary["new"] = jax.tree.map(np.array, out)
    return out

  monkeypatch.setattr(trainer, "_reinitialise_heads", capture)
  run = tmp_path / "two"
  results = trainer.train(_tiny_config(tiny_bert_dir, data_dir, run, objective="lcl",
                                       epochs=1, head_epochs=1, head_learning_rate=5e-3,
                                       keep_checkpoints="all",
                                       lr_schedule="constant"))
  assert results["epochs_trained"] == 2 and results["two_stage"]["stage2_start_step"] == 6
  assert int(boundary["state"]["step"]) == 6
  ckpt = checkpoint_lib.RunCheckpoints(run)
  final, _ = ckpt.restore_latest(jax.tree.map(np.asarray, boundary["state"]))
  assert int(final["step"]) == 12
  for net in ("primary", "weighting"):
    jax.tree.map(np.testing.assert_array_equal, final["params"][net]["encoder"],
                 boundary["state"]["params"][net]["encoder"])
    old, new, end = (boundary["state"]["params"][net]["head"],
                     boundary["new"]["params"][net]["head"], final["params"][net]["head"])
    for a, b, c in zip(jax.tree.leaves(old), jax.tree.leaves(new), jax.tree.leaves(end)):
      assert a.shape == b.shape == c.shape
      if a.ndim == 2:  # kernels: re-initialised, then trained
        assert not np.array_equal(a, b) and not np.array_equal(b, c)


def test_run_killed_in_stage_two_resumes_bit_identically(tiny_bert_dir, data_dir, tmp_path):
  """Two-stage training through the binary: SIGKILL after stage 2 has checkpointed, re-run:
  the final state (every parameter and optimiser moment) equals an uninterrupted run's."""
  import orbax.checkpoint as ocp

  extra = ["--epochs=1", "--head_epochs=3", "--head_learning_rate=5e-3",
           "--lr_schedule=constant", "--keep_checkpoints=all"]  # final states compared
  reference = _run_binary(_binary_args(tiny_bert_dir, data_dir, tmp_path / "ref") + extra)
  out, _ = reference.communicate(timeout=600)
  assert reference.returncode == 0, out.decode()[-3000:]
  ref_dir = tmp_path / "ref" / "scl" / "seed1"
  ref = json.loads((ref_dir / "results.json").read_text())
  stage2_start = ref["two_stage"]["stage2_start_step"]
  assert ref["epochs_trained"] == 4 and stage2_start == 8

  run_dir = tmp_path / "killed" / "scl" / "seed1"
  ckpt_dir = run_dir / "checkpoints"
  proc = _run_binary(_binary_args(tiny_bert_dir, data_dir, tmp_path / "killed") + extra)
  started = _wait_for(ckpt_dir, lambda: ckpt_dir.is_dir() and any(
      p.name.isdigit() and int(p.name) > stage2_start for p in ckpt_dir.iterdir()), proc)
  assert started, "the run finished before it could be interrupted in stage 2"
  proc.send_signal(signal.SIGKILL)
  proc.communicate(timeout=300)
  assert not (run_dir / "results.json").exists()
  resumed = _run_binary(_binary_args(tiny_bert_dir, data_dir, tmp_path / "killed") + extra)
  out, _ = resumed.communicate(timeout=600)
  assert resumed.returncode == 0, out.decode()[-3000:]
  assert _comparable(json.loads((run_dir / "results.json").read_text())) == _comparable(ref)

  def final_state(directory):
    step = max(int(p.name) for p in (directory / "checkpoints").iterdir() if p.name.isdigit())
    return step, ocp.StandardCheckpointer().restore(directory / "checkpoints" / str(step) / "state")

  (ref_step, ref_state), (got_step, got_state) = final_state(ref_dir), final_state(run_dir)
  assert ref_step == got_step == 32
  assert jax.tree.structure(ref_state) == jax.tree.structure(got_state)
  jax.tree.map(np.testing.assert_array_equal, got_state, ref_state)
