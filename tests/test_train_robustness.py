"""Bad inputs and accidents a user hits with the trainer (issue 14, items 5, 9-14, 16, 19).

Each test reproduces one kind of fault on the tiny random BERT of `conftest.py` and the
real release files, and checks the clear error (naming the flag), that nothing was
written, and that nothing was lost. Only the signal test runs the binary in a
subprocess (there the exit status and the signal are the point).
"""
import dataclasses
import errno
import json
import os
import pathlib
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time

import jax
import numpy as np
import pytest

from lcl_jax.train import checkpoint as checkpoint_lib
from lcl_jax.train import data_pipeline, run_flags, trainer
from lcl_jax.train import config as config_lib
from lcl_jax.train.config import TrainConfig, parse_thresholds
from test_train import _tiny_config  # pytest puts tests/ on sys.path (rootdir conftest)

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _config(tiny_bert_dir, data_dir, workdir, **overrides):
  """test_train's tiny ISEAR config, as a one-epoch CE run on 24 texts (3 steps of 8)
  that checkpoints every step."""
  values = dict(objective="ce", epochs=1, max_train_examples=24, max_eval_examples=16,
                checkpoint_every_steps=1)
  values.update(overrides)
  return _tiny_config(tiny_bert_dir, data_dir, workdir, **values)


# --- item 11: every field is validated, naming its flag, before anything is written.

# One bad value (or more) per TrainConfig field; the coverage test below fails when a
# field is added without a case here (and so, very likely, without validation).
_BAD_VALUES = {
    "dataset": ["", "no_such_dataset"],
    "objective": ["mse"],
    "encoder": [""],
    "weighting_encoder": [""],
    "data_dir": [""],
    "workdir": [""],
    "seed": [-1, 1.5],
    "classes": [(), ("",)],
    "learning_rate": [float("inf"), float("nan"), 0.0, -1e-5],
    "alpha": [float("nan"), 1.5, -0.1],
    "temperature": [float("inf"), 0.0],
    "epochs": [0, 2.0],
    "patience": [0],
    "texts_per_batch": [0, -3],
    "weight_decay": [-0.01, float("inf")],
    "adam_b1": [1.0, float("nan")],
    "adam_b2": [-0.1],
    "adam_eps": [0.0, float("inf")],
    "clip_norm": [0.0, float("nan")],
    "max_length": [1, 2],
    "length_buckets": [(), ("abc",), (2, 32), (16.5,)],
    "eval_batch_size": [0],
    "augment_p": [1.5, float("nan")],
    "fresh_views_per_epoch": ["yes"],
    "max_train_examples": [-5, 0],
    "max_eval_examples": [0, -1],
    "max_steps_per_epoch": [0],
    "thresholds": [1.5, (0.5, float("nan")), "0.5"],
    "dtype": ["float16"],
    "remat": [1],
    "parallelism": ["pjit"],
    "dropout_rng_impl": ["no_such_rng"],
    "checkpoint_every_steps": [0],
    "export_hf": ["no"],
    "log_every_steps": [0],
    "progress_bar": [None],
    "baseline_views": ["both"],
    "adam_epsilon_mode": ["torch"],
    "view_seed": [-1, 1.5],
    "head_init": ["zeros"],
    "lr_schedule": ["cosine"],
    "head": ["mlp"],
    "classifier_dropout": [1.0, -0.1, "0.3"],
    "head_epochs": [-1, 1.5],
    "head_learning_rate": [0.0, float("inf")],
    "threshold_fit": ["test"],
    "concat_expansion": [-1, 2.5],
    "save_features": ["yes"],
    "feature_pooling": ["max"],
    "glove_path": ["glove.txt"],
    "early_stopping_on": ["accuracy"],
    "contrastive_impl": ["sparse"],
    "contrastive_tile_size": [0, 64.0],
    "contrastive_auto_threshold": [-1],
    "matmul_precision": ["tf32"],
    "peak_flops": [0.0, -1e12, float("inf")],
    "keep_checkpoints": ["none"],
    "eval_every_steps": [-1, 2.5],
    "label_embeddings": ["yes", 1],
    "label_text_tokens": [0, 2.5],
    # "ekman" on the base config's ISEAR: the coarse labelings exist for GoEmotions-28 only.
    "aux_task": ["emotions", "ekman"],
    "aux_weight_start": [1.5, float("nan"), -0.1],
    "aux_weight_end": [1.2, 0.5],  # 0.5 < the default start 0.8: T must not decrease
    "aux_schedule": ["exponential"],
    "embed_mix": ["knn"],
    "embed_mix_weight": [1.5, -0.1, float("nan"), "0.9"],
    "embed_mix_similarity": ["jaccard"],
    "paraphrase_file": ["/no/such/paraphrases.tsv", ""],
    "t5_checkpoint": ["/no/such/t5"],
}


def _same_value(a, b) -> bool:
  """Equal, of one type (1 and 1.0 are different cases); NaN equals NaN."""
  if type(a) is not type(b):
    return False
  return a == b or (isinstance(a, float) and a != a and b != b)


def _generated_bad_values() -> dict[str, list]:
  """More cases from each field's `config.setting`: a value outside its choices, values
  outside its numeric bounds (`Range.outside`), and for a run flag a value of the wrong
  type (a string for a number or a bool; an empty string for a string)."""
  wrong_type = {"integer": "1", "float": "0.5", "bool": "yes", "string": ""}
  out = {}
  for field in config_lib.settings():
    meta, cases = field.metadata, []
    if meta["choices"] is not None:
      cases.append("no_such_choice")
    if meta["bounds"] is not None:
      cases += meta["bounds"].outside()
    if meta["flag"] in wrong_type and field.name != "thresholds":
      cases.append(wrong_type[meta["flag"]])
    out[field.name] = cases
  return out


for _name, _cases in _generated_bad_values().items():
  _BAD_VALUES.setdefault(_name, [])
  _BAD_VALUES[_name] += [c for c in _cases
                         if not any(_same_value(c, v) for v in _BAD_VALUES[_name])]


def test_every_range_bound_field_has_its_outside_values_refused():
  """Each `setting(bounds=...)` field: its default is inside, every value outside is in
  the bad-value table (so the test below refuses it naming the flag), and validate
  refuses it without the trainer."""
  bounded = [f for f in config_lib.settings() if f.metadata["bounds"] is not None]
  assert len(bounded) >= 30
  for field in bounded:
    bounds = field.metadata["bounds"]
    assert field.default is None or bounds.contains(field.default), field.name
    outside = bounds.outside()
    assert outside and all(not bounds.contains(v) for v in outside), field.name
    for value in outside:
      assert any(_same_value(value, v) for v in _BAD_VALUES[field.name]), (field.name, value)
      with pytest.raises(ValueError, match=f"--{field.name}=.*must be"):
        dataclasses.replace(TrainConfig(), **{field.name: value}).validate()


def test_every_config_field_has_bad_value_cases():
  fields = {f.name for f in dataclasses.fields(TrainConfig)}
  assert fields == set(_BAD_VALUES), (
      f"fields without a bad-value case: {sorted(fields - set(_BAD_VALUES))}; "
      f"cases of no field: {sorted(set(_BAD_VALUES) - fields)}")


@pytest.mark.parametrize("field,value", [(f, v) for f, vs in _BAD_VALUES.items() for v in vs])
def test_bad_setting_is_named_and_nothing_is_written(field, value, tiny_bert_dir, data_dir,
                                                      tmp_path):
  workdir = tmp_path / "run"
  cfg = _config(tiny_bert_dir, data_dir, workdir)
  if field != "workdir":
    cfg = dataclasses.replace(cfg, **{field: value})
  else:
    cfg = dataclasses.replace(cfg, workdir=value)
  with pytest.raises(ValueError, match=f"--{field}"):
    trainer.train(cfg)
  assert not workdir.exists()


def test_flag_strings_are_parsed_with_errors_naming_the_flag():
  with pytest.raises(ValueError, match="--length_buckets='abc'"):
    run_flags._length_buckets(["abc"])
  with pytest.raises(ValueError, match="--length_buckets is empty"):
    run_flags._length_buckets([])
  assert run_flags._length_buckets(["32", " 64", "128"]) == (32, 64, 128)
  with pytest.raises(ValueError, match="--thresholds='abc'"):
    parse_thresholds("abc")
  with pytest.raises(ValueError, match="--thresholds"):
    parse_thresholds("0.5,1.2")
  assert parse_thresholds("0.3,0.4") == (0.3, 0.4)


def test_max_length_beyond_positions_and_missing_encoder_are_named(tiny_bert_dir, data_dir,
                                                                   tmp_path):
  """Item 5: --max_length is compared with max_position_embeddings (128 in the tiny BERT)
  when the run starts, for each network; a checkpoint that does not exist is named too."""
  workdir = tmp_path / "run"
  with pytest.raises(ValueError, match=r"--max_length=129 exceeds --encoder=.*"
                                       r"max_position_embeddings=128"):
    trainer.train(_config(tiny_bert_dir, data_dir, workdir, max_length=129,
                          length_buckets=(129,)))
  with pytest.raises(ValueError, match=r"--max_length=129 exceeds --weighting_encoder=.*128"):
    trainer.train(_config(tiny_bert_dir, data_dir, workdir, objective="lcl",
                          encoder="minilm", weighting_encoder=str(tiny_bert_dir),
                          max_length=129, length_buckets=(129,)))
  with pytest.raises(FileNotFoundError, match="--encoder=.*does not exist"):
    trainer.train(_config(tiny_bert_dir, data_dir, workdir,
                          encoder=str(tmp_path / "no_such_checkpoint")))
  assert not workdir.exists()


# --- item 10: a batch larger than the training set.

def test_batch_larger_than_training_set_is_refused(tiny_bert_dir, data_dir, tmp_path):
  workdir = tmp_path / "run"
  with pytest.raises(ValueError, match=r"--texts_per_batch=1000 is larger than the 20 "
                                       r"training texts of isear \(--max_train_examples=20\)"):
    trainer.train(_config(tiny_bert_dir, data_dir, workdir, max_train_examples=20,
                          texts_per_batch=1000))
  # Refused before the lock (issue 18): no folder, no config.json, no checkpoint.
  assert not workdir.exists()


# --- items 5, 12, 13: config.json after networks and data; truncation counts; fingerprint.

def _swapped_emoint(data_dir: pathlib.Path, root: pathlib.Path) -> pathlib.Path:
  """A copy of the EmoInt release with the anger and fear labels swapped."""
  target = root / "emoint"
  target.mkdir(parents=True)
  swap = {"anger": "fear", "fear": "anger"}
  for path in (data_dir / "emoint").iterdir():
    emotion = path.name.split("-")[0]
    if emotion in swap:
      lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
      lines = [l.replace(f"\t{emotion}\t", f"\t{swap[emotion]}\t") for l in lines]
      (target / path.name.replace(emotion, swap[emotion], 1)).write_text(
          "".join(lines), encoding="utf-8")
    else:
      (target / path.name).symlink_to(path)
  return root


def test_config_json_after_networks_and_data_and_resume_checks_the_data(
    tiny_bert_dir, data_dir, tmp_path):
  workdir = tmp_path / "run"
  # A checkpoint whose config and tokenizer load but whose weights do not: the run fails
  # when the networks are built, and must leave no config.json behind ...
  broken = tmp_path / "broken_encoder"
  shutil.copytree(tiny_bert_dir, broken)
  for weights in broken.glob("*.safetensors"):
    weights.unlink()
  cfg = _config(tiny_bert_dir, data_dir, workdir, dataset="emoint", max_length=8,
                length_buckets=(8,), max_steps_per_epoch=2)
  with pytest.raises(FileNotFoundError):
    trainer.train(dataclasses.replace(cfg, encoder=str(broken)))
  assert not (workdir / "config.json").exists()
  # ... so the corrected command runs in the same workdir.
  results = trainer.train(cfg)
  saved = json.loads((workdir / "config.json").read_text())
  # Item 5: the truncation of each split is counted and stored (here at 8 tokens, most
  # tweets are cut), equal to a direct count with the tokenizer.
  from lcl_jax.models import pretrained
  tokenizer = pretrained.load_tokenizer(str(tiny_bert_dir))
  prepared = data_pipeline.prepare(dataclasses.replace(cfg.resolved(), workdir=str(tmp_path / "p")),
                                   num_devices=1)
  for split, texts in ((s, prepared.splits[s].texts) for s in data_pipeline.SPLITS):
    expected = sum(len(ids) > 8 for ids in tokenizer(list(texts))["input_ids"])
    assert saved["dataset"]["truncated_texts"][split] == expected > 0
  assert saved["dataset"]["max_length"] == 8
  assert saved["dataset"]["fingerprint"] == prepared.fingerprint()

  # Item 13: an unfinished run (killed before results.json) resumed on other data is
  # refused, naming --data_dir; on its own data it resumes.
  (workdir / "results.json").unlink()
  swapped = _swapped_emoint(data_dir, tmp_path / "swapped")
  with pytest.raises(ValueError, match=f"--data_dir={swapped}"):
    trainer.train(dataclasses.replace(cfg, data_dir=str(swapped)))
  assert trainer.train(cfg)["test"] == results["test"]


# --- item 9: a finite loss with NaN gradients.

def _all_finite(tree) -> bool:
  return all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(tree)
             if np.issubdtype(np.asarray(x).dtype, np.inexact))


def test_nan_gradients_stop_the_run_and_no_nonfinite_state_is_saved(
    tiny_bert_dir, data_dir, tmp_path):
  """SCL at learning rate 1e6 on this tiny BERT: steps 1-2 are finite, step 3 has a finite
  loss (~1e27) but NaN gradients. The run stops at step 3 although metrics are logged
  only every 5 steps; the checkpoint of step 2 is kept, finite; nothing is evaluated."""
  workdir = tmp_path / "run"
  cfg = _config(tiny_bert_dir, data_dir, workdir, objective="scl", learning_rate=1e6,
                checkpoint_every_steps=1, log_every_steps=5)
  with pytest.raises(trainer.NonFiniteLossError,
                     match=r"the loss is finite \(.*\) but the gradients or the updated "
                           r"parameters hold NaN/inf at step 3.*checkpoint \(step 2\)"):
    trainer.train(cfg)
  assert not (workdir / "results.json").exists()
  assert not (workdir / "predictions").exists()
  best = workdir / "best"
  assert not best.exists() or not any(p.name.isdigit() for p in best.iterdir())
  ckpt = checkpoint_lib.RunCheckpoints(workdir)
  assert ckpt.latest_step == 2
  from lcl_jax.train import objectives, optim, steps
  _, params = objectives.build_networks(objectives.get_spec("scl"), encoder=str(tiny_bert_dir),
                                        weighting_encoder=str(tiny_bert_dir), num_classes=7,
                                        rng=jax.random.key(0))
  like = steps.init_state(params, optim.make_optimizer(params, learning_rate=1.0,
                                                       total_steps=3))
  state, _ = ckpt.restore_latest(like)
  ckpt.close()
  assert int(state["step"]) == 2 and _all_finite(state)


def test_all_finite_reduction():
  from lcl_jax.train import steps
  tree = {"a": np.ones(3, np.float32), "b": {"c": np.arange(4), "d": np.zeros((2, 2))}}
  assert bool(steps.all_finite(tree))
  for bad in (np.nan, np.inf, -np.inf):
    broken = {**tree, "b": {**tree["b"], "d": np.array([[0.0, bad], [0.0, 0.0]])}}
    assert not bool(steps.all_finite(broken))


# --- item 14: the workdir lock.

def test_workdir_lock_refuses_a_second_run_and_is_released(tiny_bert_dir, data_dir, tmp_path):
  workdir = tmp_path / "run"
  with checkpoint_lib.WorkdirLock(workdir):
    with pytest.raises(checkpoint_lib.WorkdirInUseError, match=f"in use by pid {os.getpid()}"):
      trainer.train(_config(tiny_bert_dir, data_dir, workdir))
    assert sorted(p.name for p in workdir.iterdir()) == [".lock"]
  # Released: it can be taken again (a killed holder's lock goes with its process: see
  # the signal test, which takes the lock of a binary after it exited).
  checkpoint_lib.WorkdirLock(workdir).acquire().release()


# --- item 16: umask, metrics.jsonl on resume, read-only finished run.

@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_result_files_respect_the_umask(tmp_path, umask):
  old = os.umask(umask)
  try:
    checkpoint_lib.write_json_atomic(tmp_path / "a.json", {"x": 1})
    checkpoint_lib.save_npz_atomic(tmp_path / "b.npz", x=np.arange(3))
  finally:
    os.umask(old)
  for name in ("a.json", "b.npz"):
    assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask
  assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.npz"]  # no temporaries


def test_resume_truncates_metrics_to_the_resumed_step(tiny_bert_dir, data_dir, tmp_path,
                                                      monkeypatch):
  """A run stopped after step 1 (as by SIGTERM), whose metrics.jsonl also holds records
  of two later steps and a torn line (what a SIGKILL after the checkpoint leaves),
  resumes with every step recorded once: the replayed steps' new records only."""
  workdir = tmp_path / "run"
  cfg = _config(tiny_bert_dir, data_dir, workdir, max_steps_per_epoch=3,
                checkpoint_every_steps=100)

  def stop_at_once(self):
    self.signum = signal.SIGTERM
    return self

  with monkeypatch.context() as m:
    m.setattr(trainer._StopSignals, "__enter__", stop_at_once)
    with pytest.raises(trainer.TrainingInterrupted, match="SIGTERM at step 1") as e:
      trainer.train(cfg)
  assert e.value.exit_code == 143
  metrics = workdir / "metrics.jsonl"
  assert [json.loads(l)["step"] for l in metrics.read_text().splitlines()] == [1]
  with metrics.open("a") as f:
    for step in (2, 3):
      f.write(json.dumps({"kind": "train", "step": step, "loss": -1.0}) + "\n")
    f.write('{"kind": "tr')
  trainer.train(cfg)
  records = [json.loads(l) for l in metrics.read_text().splitlines()]
  assert [(r["kind"], r["step"]) for r in records] == [
      ("train", 1), ("train", 2), ("train", 3), ("eval", 3)]
  assert all(r["loss"] > 0 for r in records if r["kind"] == "train")


def test_finished_run_in_read_only_workdir_prints_results_and_exits_0(
    tiny_bert_dir, data_dir, tmp_path):
  """The binary on a finished run whose folder cannot be written: results printed, a
  warning, status 0. (Tests run as root, where chmod cannot make a folder read-only, so
  the summary's path is taken by a folder: os.replace then fails like on a read-only
  file system.)"""
  root = tmp_path / "sweep"
  args = _binary_args(tiny_bert_dir, data_dir, root) + ["--max_steps_per_epoch=1",
                                                        "--epochs=1"]
  cfg = _config(tiny_bert_dir, data_dir, root / "ce" / "seed1", dataset="emoint", seed=1,
                max_train_examples=16, max_eval_examples=16, texts_per_batch=8,
                max_steps_per_epoch=1, checkpoint_every_steps=200, log_every_steps=10,
                eval_batch_size=64, learning_rate=1e-3)
  trainer.train(cfg)
  (root / "summary_seed1.md").mkdir()
  before = sorted(str(p) for p in root.rglob("*"))
  proc = subprocess.run([sys.executable, "-m", "experiments.train", *args], cwd=PROJECT_ROOT,
                        env=_env(), capture_output=True, text=True, timeout=300)
  out = proc.stdout + proc.stderr
  assert proc.returncode == 0, out[-3000:]
  assert "| ce " in proc.stdout and "warning: the summary was not written" in proc.stderr
  # Only the command's log (appended by every invocation) may be added; in a truly
  # read-only folder it is skipped with a warning (test_log_file_that_cannot_be_opened...).
  assert sorted(str(p) for p in root.rglob("*") if p.name != "train.log") == before


# --- items 14 and 19: Ctrl-C saves, says how to resume, exits 130; lock while running.

def _env():
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1",
             XLA_FLAGS="--xla_force_host_platform_device_count=1")
  env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), env.get("PYTHONPATH", "")])
  return env


def _binary_args(tiny_bert_dir, data_dir, workdir):
  return [f"--encoder={tiny_bert_dir}", f"--data_dir={data_dir}", f"--workdir={workdir}",
          "--dataset=emoint", "--objective=ce", "--seed=1", "--max_train_examples=16",
          "--max_eval_examples=16", "--texts_per_batch=8", "--max_length=32",
          "--length_buckets=16,32", "--learning_rate=1e-3", "--noprogress_bar"]


def test_ctrl_c_saves_and_exits_130_and_the_workdir_is_locked_meanwhile(
    tiny_bert_dir, data_dir, tmp_path):
  root = tmp_path / "sweep"
  run_dir = root / "ce" / "seed1"
  args = _binary_args(tiny_bert_dir, data_dir, root) + ["--epochs=50",
                                                        "--checkpoint_every_steps=100000"]
  proc = subprocess.Popen([sys.executable, "-m", "experiments.train", *args],
                          cwd=PROJECT_ROOT, env=_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT)
  try:
    deadline = time.time() + 240
    metrics = run_dir / "metrics.jsonl"
    while not (metrics.exists() and metrics.read_text().count('"kind": "eval"') >= 1):
      assert proc.poll() is None and time.time() < deadline, proc.communicate()[0][-3000:]
      time.sleep(0.2)
    # While it runs, a second command into its workdir fails at once, naming its pid.
    with pytest.raises(checkpoint_lib.WorkdirInUseError, match=f"in use by pid {proc.pid}"):
      trainer.train(_config(tiny_bert_dir, data_dir, run_dir, dataset="emoint", seed=1))
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=240)
  finally:
    if proc.poll() is None:
      proc.kill()
  text = out.decode()
  assert proc.returncode == 130, text[-3000:]
  assert "SIGINT at" in text and "re-run the same command to resume" in text
  assert "Traceback" not in text
  # The state of the step it stopped at was saved (no periodic checkpoint in between).
  ckpt = checkpoint_lib.RunCheckpoints(run_dir)
  last_logged = max(json.loads(l)["step"] for l in (run_dir / "metrics.jsonl").read_text()
                    .splitlines())
  assert ckpt.latest_step == last_logged >= 2
  ckpt.close()
  # The lock went with the process.
  checkpoint_lib.WorkdirLock(run_dir).acquire().release()


def test_second_ctrl_c_aborts_at_once():
  """The handler itself (main thread): SIGTERM and a first SIGINT set the flag; a second
  SIGINT raises KeyboardInterrupt at once; on leaving, the previous handlers come back
  and a signal caught while the run finished is handed on to a Python handler."""
  before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
  with pytest.raises(KeyboardInterrupt, match="second Ctrl-C"):
    with trainer._StopSignals() as stop:
      assert not stop.raised
      signal.raise_signal(signal.SIGINT)
      assert stop.raised and stop.name == "SIGINT"
      signal.raise_signal(signal.SIGINT)
      pytest.fail("the second Ctrl-C did not abort")
  assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before

  received = []
  previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
  try:
    with trainer._StopSignals() as stop:
      signal.raise_signal(signal.SIGTERM)
      signal.raise_signal(signal.SIGTERM)  # repeated SIGTERM: still one clean stop
      assert stop.name == "SIGTERM" and received == []
    assert received == [signal.SIGTERM]  # handed on once, on leaving
  finally:
    signal.signal(signal.SIGTERM, previous)


def test_log_file_that_cannot_be_opened_warns_and_logs_to_the_console(tmp_path, capsys):
  """A binary's log file in a folder that cannot be written (here its parent is a file,
  which fails like a read-only folder for root) must not stop the command."""
  import logging

  from lcl_jax.studies import cli

  blocker = tmp_path / "not_a_folder"
  blocker.write_text("")
  cli.setup_logging(blocker / "train.log")
  logging.getLogger("lcl_jax.test").info("still on the console")
  err = capsys.readouterr().err
  assert "warning: no log file" in err and "still on the console" in err
  assert not (blocker / "train.log").exists()
  cli.setup_logging()  # leave the console handler only
