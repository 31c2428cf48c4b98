"""Issue 18 items 1-13 ("Robustness and fidelity, round 3"): each test feeds the exact
input of the issue and checks the clear error (or the fixed behaviour)."""
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _squash(text: str) -> str:
  return " ".join(text.split())


# -- item 13: the temperature checks and docstrings say the same thing ------------------


@pytest.mark.parametrize("name", ["supcon_loss", "lcl_loss"])
def test_temperature_error_and_docstring_agree_and_strings_are_named(name):
  from lcl_jax.losses import contrastive
  loss = getattr(contrastive, name)
  f = jnp.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-0.6, 0.8]])
  y = jnp.array([0, 0, 1, 1])
  args = (f, y) if name == "supcon_loss" else (f, y, jnp.zeros((4, 2)))
  rule = "one <= 0 makes the loss NaN"
  with pytest.raises(ValueError) as error:
    loss(*args, temperature=0.0)
  assert rule in _squash(str(error.value))
  assert rule in _squash(loss.__doc__)
  # The traced case the docstring describes: NaN, not an error.
  assert np.isnan(jax.jit(lambda t: loss(*args, temperature=t))(0.0))
  with pytest.raises(ValueError, match="`temperature` must be a real number"):
    loss(*args, temperature="0.3")


# -- item 12: every binary keeps the error contract ---------------------------------------

BINARIES = sorted(p.stem for p in (PROJECT_ROOT / "experiments").glob("*.py")
                  if p.stem != "__init__")
_SEP = "\x1f"
# Runs a binary's main under `cli.run` (flag parsing included, as a user runs it) once
# per argument list, in one process; prints a marker with the exit status after each.
_DRIVER = f"""
import importlib, sys
from absl import flags
name, cases = sys.argv[1], sys.argv[2:]
module = importlib.import_module("experiments." + name)
from lcl_jax.studies import cli
for case in cases:
  flags.FLAGS.unparse_flags()
  sys.argv = [name] + case.split({_SEP!r})
  try:
    cli.run(module.main)
    status = 0
  except SystemExit as e:
    status = e.code
  print(f"@@status {{status}}", file=sys.stderr, flush=True)
"""


def _bad_cases(binary: str, tmp: pathlib.Path) -> list[tuple[list[str], str]]:
  """(arguments, what the error line must name): one bad flag, one bad file."""
  missing = str(tmp / "missing")
  if binary in ("predict", "evaluate"):
    text = ["--text=x"] if binary == "predict" else []
    return [([f"--run={missing}", "--batch_size=abc", *text], "--batch_size"),
            ([f"--run={missing}", *text], missing)]
  workdir = f"--workdir={tmp / binary}"
  return [(["--seeds=abc", workdir], "--seeds"), ([f"--data_dir={missing}", workdir], missing)]


def _drive(binary: str, cases: list[list[str]], cwd) -> list[tuple[str, str]]:
  """Runs `binary` (`_DRIVER`, one process) once per argument list: [(status, stderr)]."""
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1",
             PYTHONPATH=str(PROJECT_ROOT))
  proc = subprocess.run([sys.executable, "-c", _DRIVER, binary, *[_SEP.join(c) for c in cases]],
                        cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
  outputs = proc.stderr.split("@@status ")
  assert len(outputs) == len(cases) + 1, (binary, proc.stderr[-3000:])
  return [(after.split("\n", 1)[0], before) for before, after in zip(outputs, outputs[1:])]


def _assert_one_error_line(status: str, stderr: str, *named: str) -> str:
  errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
  assert status == "2" and len(errors) == 1, (status, stderr[-3000:])
  assert "Traceback" not in stderr and all(n in errors[0] for n in named), stderr[-3000:]
  return errors[0]


def test_every_binary_prints_one_error_line_exits_2_and_writes_nothing(tmp_path, data_dir):
  for binary in BINARIES:
    cases = _bad_cases(binary, tmp_path)
    for (args, named), (status, stderr) in zip(cases, _drive(binary, [a for a, _ in cases],
                                                             tmp_path)):
      _assert_one_error_line(status, stderr, named)
    assert sorted(p.name for p in tmp_path.iterdir()) == [], (binary, list(tmp_path.rglob("*")))


def _train_cli(tmp_path, *args, encoder=None):
  """`python -m experiments.train` with `args`: (exit status, stderr); its --workdir is
  <tmp_path>/run."""
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1",
             PYTHONPATH=str(PROJECT_ROOT))
  extra = [f"--encoder={encoder}"] if encoder else []
  proc = subprocess.run([sys.executable, "-m", "experiments.train", *extra, *args,
                         f"--workdir={tmp_path / 'run'}", "--progress_bar=false"],
                        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)
  return proc.returncode, proc.stderr


def _assert_refused(status, stderr, tmp_path, *named):
  errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
  assert status == 2 and len(errors) == 1, stderr[-3000:]
  assert all(n in errors[0] for n in named), errors
  assert not (tmp_path / "run").exists(), sorted((tmp_path / "run").rglob("*"))


# -- item 1: --concat_expansion is bounded -------------------------------------------------


def test_unbounded_concat_expansion_is_refused_before_anything_is_written(
    tmp_path, tiny_bert_dir, data_dir):
  from lcl_jax.data import expansion
  status, stderr = _train_cli(
      tmp_path, "--dataset=goemotions_multilabel", "--objective=ce", "--epochs=1",
      "--max_train_examples=40", "--concat_expansion=1000000000", f"--data_dir={data_dir}",
      encoder=tiny_bert_dir)
  _assert_refused(status, stderr, tmp_path, "--concat_expansion=1000000000", "400")
  assert expansion.max_expansion(40) == 400 and expansion.max_expansion(5) == 20


# -- items 2 and 10: the GloVe reader ----------------------------------------------------------


def test_glove_reader_takes_word2vec_headers_and_refuses_wrong_value_counts(tmp_path):
  from lcl_jax.data import files, glove
  vocabulary = {"<PAD>": 0, "<UNK>": 1, "the": 2, "and": 3, ". . .": 4, "1999": 5}
  w2v = tmp_path / "w2v.txt"
  w2v.write_text("3 4\nthe 1 2 3 4\nand 1 2 3 4\n")
  found, mean, dim = glove.read_vectors(w2v, vocabulary)
  assert dim == 4 and sorted(found) == ["and", "the"] and mean.shape == (4,)
  # glove.840B tokens with spaces and number words stay accepted.
  spaced = tmp_path / "840b.txt"
  spaced.write_text("the 1 2\n. . . 3 4\n1999 5 6\n")
  found, _, dim = glove.read_vectors(spaced, vocabulary)
  assert dim == 2 and found[". . ."].tolist() == [3, 4] and found["1999"].tolist() == [5, 6]
  # One value too many is refused (it was read as the word "cat 1" and a shifted vector).
  extra = tmp_path / "extra.txt"
  extra.write_text("the 1 2 3 4\ncat 1 2 3 4 5\n")
  with pytest.raises(files.MalformedRowError, match=r"extra\.txt, line 2: expected a word and 4"):
    glove.read_vectors(extra, vocabulary)
  fewer = tmp_path / "fewer.txt"
  fewer.write_text("3 4\nthe 1 2 3\n")
  with pytest.raises(files.MalformedRowError, match=r"fewer\.txt, line 2: .*4 values"):
    glove.read_vectors(fewer, vocabulary)
  nan = tmp_path / "nan.txt"
  nan.write_text("the 1 2\nand nan nan\n")
  with pytest.raises(files.MalformedRowError, match=r"nan\.txt, line 2: .*not finite"):
    glove.read_vectors(nan, vocabulary)


@pytest.mark.parametrize("lines, named", [
    # item 10: no word shared with the vocabulary (only an info line before)
    ("zzqx 1 2 3 4\nqqzy 1 2 3 4\n", ["--glove_path", "coverage 0%"]),
    # item 10: a row of nan (the loss became NaN, and the error blamed the learning rate)
    ("the 1 2 3 4\nand nan nan nan nan\n", ["vectors.txt, line 2", "not finite"]),
], ids=["no_coverage", "nan_row"])
def test_bad_glove_file_is_refused_before_anything_is_written(tmp_path, data_dir, lines,
                                                               named):
  vectors = tmp_path / "vectors.txt"
  vectors.write_text(lines)
  status, stderr = _train_cli(
      tmp_path, "--dataset=emoint", "--objective=ce", "--epochs=1",
      "--max_train_examples=40", f"--glove_path={vectors}", f"--data_dir={data_dir}",
      encoder="bilstm")
  _assert_refused(status, stderr, tmp_path, *named)


def test_thresholds_of_the_wrong_count_are_refused_before_anything_is_written(
    tmp_path, tiny_bert_dir, data_dir):
  from lcl_jax.train import trainer
  from lcl_jax.train.config import TrainConfig
  workdir = tmp_path / "a" / "run"
  cfg = TrainConfig(dataset="goemotions_multilabel", objective="ce", encoder=str(tiny_bert_dir),
                    workdir=str(workdir), data_dir=str(data_dir), epochs=1,
                    max_train_examples=40, max_eval_examples=20, thresholds=(0.5, 0.4),
                    max_length=16, length_buckets=(16,), progress_bar=False)
  with pytest.raises(ValueError, match="--thresholds has 2 values"):
    trainer.train(cfg)
  assert sorted(tmp_path.rglob("*")) == []


def test_released_lock_of_a_run_that_wrote_nothing_removes_its_folders(tmp_path):
  from lcl_jax.train import checkpoint
  lock = checkpoint.WorkdirLock(tmp_path / "a" / "run").acquire()
  lock.release()
  lock.discard_if_unused()
  assert sorted(tmp_path.rglob("*")) == []
  lock = checkpoint.WorkdirLock(tmp_path / "a" / "run").acquire()
  (tmp_path / "a" / "run" / "config.json").write_text("{}")
  lock.release()
  lock.discard_if_unused()  # something was written: everything stays
  assert sorted(p.name for p in (tmp_path / "a" / "run").iterdir()) == [".lock", "config.json"]


# -- item 5: the ring on jax.make_mesh's default (Explicit) axes ------------------------------


def test_ring_losses_on_the_default_explicit_mesh_match_the_dense_ones():
  from lcl_jax import tiled_losses
  from lcl_jax.losses import contrastive
  assert len(jax.devices()) >= 4  # conftest: --xla_force_host_platform_device_count=8
  mesh = jax.make_mesh((4,), ("data",), devices=jax.devices()[:4])  # default axis types
  assert mesh.axis_types == (jax.sharding.AxisType.Explicit,)
  rng = np.random.RandomState(0)
  f = jnp.asarray(rng.randn(8, 5), jnp.float32)
  y = jnp.array([0, 1, 2, 0, 1, 2, 0, 1])
  w = jnp.asarray(rng.randn(8, 3), jnp.float32)
  ring = tiled_losses.lcl_loss(f, y, w, temperature=0.3, mesh=mesh, tile_size=2)
  np.testing.assert_allclose(ring, contrastive.lcl_loss(f, y, w, temperature=0.3), rtol=1e-5)
  ring = tiled_losses.supcon_loss(f, y, temperature=0.3, mesh=mesh, tile_size=2)
  np.testing.assert_allclose(ring, contrastive.supcon_loss(f, y, temperature=0.3), rtol=1e-5)
  with jax.set_mesh(mesh):
    grad = jax.grad(lambda f: tiled_losses.lcl_loss(f, y, w, temperature=0.3, mesh=mesh,
                                                    tile_size=2))(f)
  np.testing.assert_allclose(
      grad, jax.grad(lambda f: contrastive.lcl_loss(f, y, w, temperature=0.3))(f), atol=1e-6)


# -- items 3, 4: the exported folder's tokenizer length and model card ---------------------

LONG_TEXT = ("I can not believe they cancelled the trip again after we waited for months and "
             "paid for everything twice while nobody at the office ever answered a single one "
             "of our many increasingly desperate and angry messages")


@pytest.fixture(scope="module")
def exported_multilabel(tmp_path_factory, tiny_bert_dir, data_dir):
  """A tiny GoEmotions multi-label CE run with the transformers head, --max_length=16,
  per-class thresholds fitted on validation, exported (in-process)."""
  from lcl_jax.train import trainer
  from lcl_jax.train.config import TrainConfig
  workdir = tmp_path_factory.mktemp("r3_export") / "run"
  results = trainer.train(TrainConfig(
      dataset="goemotions_multilabel", objective="ce", encoder=str(tiny_bert_dir),
      data_dir=str(data_dir), workdir=str(workdir), epochs=1, max_train_examples=16,
      max_eval_examples=16, max_steps_per_epoch=1, texts_per_batch=8, eval_batch_size=16,
      max_length=16, length_buckets=(16,), progress_bar=False, head="hf", export_hf=True))
  return workdir, results


def test_export_tokenizer_has_the_runs_max_length_and_pipeline_matches_predict(
    exported_multilabel, tmp_path):
  import json
  import shutil

  import transformers
  from safetensors import numpy as safetensors_numpy

  from lcl_jax import inference
  workdir, _ = exported_multilabel
  folder = tmp_path / "export"
  shutil.copytree(workdir / "export" / "primary", folder)
  tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
  assert tokenizer_config["model_max_length"] == 16
  assert "truncation=True" in (folder / "README.md").read_text()
  # A head far from uniform (the tiny run's is near 0.5 everywhere): both sides read it.
  weights = safetensors_numpy.load_file(folder / "model.safetensors")
  key = next(k for k in weights if k.endswith("classifier.weight"))
  weights[key] = weights[key] * 300.0
  safetensors_numpy.save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
  tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
  assert len(tokenizer(LONG_TEXT)["input_ids"]) > 16
  classify = transformers.pipeline("text-classification", model=str(folder), top_k=None,
                                   function_to_apply="sigmoid")
  out = classify([LONG_TEXT], truncation=True)[0]
  predictor = inference.Predictor.load(folder)
  ours = predictor.probabilities([LONG_TEXT])["primary"][0]
  theirs = np.array([{o["label"]: o["score"] for o in out}[n] for n in predictor.label_names])
  assert np.ptp(ours) > 0.2  # not near-uniform
  np.testing.assert_allclose(theirs, ours, atol=1e-4)


def test_model_card_states_the_per_class_thresholds_the_folder_applies(exported_multilabel):
  import json
  workdir, results = exported_multilabel
  folder = workdir / "export" / "primary"
  fitted = results["per_class_thresholds"]["thresholds"]
  applied = json.loads((folder / "config.json").read_text())["lcl_jax"]["thresholds"]
  np.testing.assert_allclose(applied, fitted)
  card = (folder / "README.md").read_text()
  assert "per-class thresholds** fitted on the validation split" in card
  assert ", ".join(f"{t:.2f}" for t in fitted) in card
  assert "| thresholds | 0.5 |" not in card


# -- items 7, 8, 9: predict / evaluate on damaged runs and bad inputs --------------------------


def _damaged_copies(run: pathlib.Path, root: pathlib.Path) -> dict[str, pathlib.Path]:
  """Copies of a finished run: best/'s largest data file zeroed / cut in half, garbage
  _METADATA, config.json cut at 50 characters, best/ deleted, a gru run's config, a
  config.json naming another head than the one best/ holds."""
  import json
  import shutil
  copies = {}
  for name in ("zeroed", "truncated", "metadata", "config", "no_best", "gru", "head"):
    copies[name] = root / name
    shutil.copytree(run, copies[name], ignore=shutil.ignore_patterns("export"))
  def params(copy):
    return next((copy / "best").glob("*/params"))
  def biggest(copy):
    return max((f for f in params(copy).rglob("*") if f.is_file() and f.name[0] != "_"),
               key=lambda f: f.stat().st_size)
  zeroed = biggest(copies["zeroed"])
  zeroed.write_bytes(bytes(zeroed.stat().st_size))
  truncated = biggest(copies["truncated"])
  truncated.write_bytes(truncated.read_bytes()[:truncated.stat().st_size // 2])
  (params(copies["metadata"]) / "_METADATA").write_text("garbage{")
  config = copies["config"] / "config.json"
  config.write_text(config.read_text()[:50])
  shutil.rmtree(copies["no_best"] / "best")
  saved = json.loads((copies["gru"] / "config.json").read_text())
  saved["config"]["encoder"] = "gru"
  (copies["gru"] / "config.json").write_text(json.dumps(saved))
  saved = json.loads((copies["head"] / "config.json").read_text())
  saved["config"]["head"] = "paper" if saved["config"]["head"] != "paper" else "hf"
  (copies["head"] / "config.json").write_text(json.dumps(saved))
  return copies


def test_predict_and_evaluate_on_damaged_runs_print_one_line_naming_the_file(
    exported_multilabel, tmp_path):
  workdir, _ = exported_multilabel
  copies = _damaged_copies(workdir, tmp_path)
  names = list(copies)
  outcomes = _drive("predict", [[f"--run={copies[n]}", "--text=x"] for n in names], tmp_path)
  checks = {"zeroed": [str(copies["zeroed"] / "best"), "damaged"],
            "truncated": [str(copies["truncated"] / "best"), "damaged"],
            "metadata": [str(copies["metadata"] / "best"), "damaged"],
            "config": [str(copies["config"] / "config.json"), "not valid JSON"],
            "no_best": [str(copies["no_best"] / "best"), "deleted or moved"],
            "gru": ["gru baseline", "transformer encoders only"],
            # best/ is restored with its own shapes: a mismatch shows when orbax restores
            # it (here) or at the first apply (`Predictor.logits`): one line either way
            "head": [str(copies["head"])]}
  for name, (status, stderr) in zip(names, outcomes):
    line = _assert_one_error_line(status, stderr, *checks[name])
    assert "has not finished an epoch)" not in line and "huggingface" not in line.lower()
  (status, stderr), = _drive("evaluate", [[f"--run={copies['config']}"]], tmp_path)
  _assert_one_error_line(status, stderr, str(copies["config"] / "config.json"))


def test_predict_bad_text_inputs_are_named(exported_multilabel, tmp_path):
  from lcl_jax.inference import use
  workdir, _ = exported_multilabel
  latin1 = tmp_path / "latin1.txt"
  latin1.write_bytes("first line\nthe caf\xe9 was closed\n".encode("latin-1"))
  with pytest.raises(use.InputError, match=r"latin1\.txt, line 2: not UTF-8 \(byte 0xe9"):
    use.read_records(latin1)
  wide = tmp_path / "wide.csv"
  wide.write_text("text,id\nhello, world,1\nfine,2\n")
  with pytest.raises(use.InputError, match=r"wide\.csv, line 2: 3 cells, the header has 2"):
    use.read_records(wide)
  # Invalid UTF-8 on the command line (bytes the shell passes through) -> one error line.
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1",
             PYTHONPATH=str(PROJECT_ROOT))
  proc = subprocess.run([sys.executable.encode(), b"-m", b"experiments.predict",
                         f"--run={workdir}".encode(), b"--text=caf\xe9 \xff"],
                        cwd=PROJECT_ROOT, env=env, capture_output=True, timeout=300)
  stderr = proc.stderr.decode(errors="replace")
  _assert_one_error_line(str(proc.returncode), stderr, "--text #1", "not valid UTF-8")


# -- items 6, 11: --export_hf on a finished run, into an unwritable place; a full disk ------


def test_export_hf_on_a_finished_run_says_why_nothing_is_exported(exported_multilabel,
                                                                  tmp_path, caplog):
  import dataclasses
  import json
  import logging
  import shutil

  from lcl_jax.train import trainer
  from lcl_jax.train.config import TrainConfig
  workdir, _ = exported_multilabel
  copy = tmp_path / "run"
  shutil.copytree(workdir, copy, ignore=shutil.ignore_patterns("export"))
  results = json.loads((copy / "results.json").read_text())
  results.pop("export")
  (copy / "results.json").write_text(json.dumps(results))
  saved = TrainConfig.from_dict(json.loads((copy / "config.json").read_text())["config"])
  with caplog.at_level(logging.WARNING, logger="lcl_jax"):
    trainer.train(dataclasses.replace(saved, workdir=str(copy), export_hf=True))
  assert any("finished without --export_hf: nothing was exported" in r.getMessage()
             for r in caplog.records)


def test_export_hf_into_an_unusable_place_is_refused_before_training(tmp_path, tiny_bert_dir,
                                                                     data_dir):
  from lcl_jax.train import trainer
  from lcl_jax.train.config import TrainConfig
  workdir = tmp_path / "run"
  workdir.mkdir()
  (workdir / "export").write_text("a file where the export folder goes")
  cfg = TrainConfig(dataset="emoint", objective="ce", encoder=str(tiny_bert_dir),
                    workdir=str(workdir), data_dir=str(data_dir), epochs=1,
                    max_train_examples=16, export_hf=True, progress_bar=False)
  with pytest.raises(ValueError, match=r"--export_hf: .*export is not a folder"):
    trainer.train(cfg)
  assert sorted(p.name for p in workdir.iterdir()) == ["export"]


def test_a_full_disk_is_one_line_naming_the_file(capsys):
  import errno

  from lcl_jax.studies import cli

  def main(argv):
    try:  # what orbax does: the OSError of the write, wrapped
      raise OSError(errno.ENOSPC, "No space left on device", "/runs/x/checkpoints/7/params")
    except OSError as e:
      raise RuntimeError("async save failed") from e

  assert cli.report_user_errors(main)([]) == 2
  err = capsys.readouterr().err
  lines = [line for line in err.splitlines() if line.startswith("error: ")]
  assert lines == ["error: disk full / file too large while writing "
                   "/runs/x/checkpoints/7/params (No space left on device); free space (or "
                   "raise `ulimit -f`) and re-run the same command to resume"]


def test_nonfinite_loss_of_a_float32_run_does_not_suggest_float32(tmp_path, tiny_bert_dir,
                                                                  data_dir):
  from lcl_jax.train import trainer
  from lcl_jax.train.config import TrainConfig
  cfg = TrainConfig(dataset="emoint", objective="ce", encoder=str(tiny_bert_dir),
                    workdir=str(tmp_path / "run"), data_dir=str(data_dir), epochs=1,
                    max_train_examples=16, texts_per_batch=8, learning_rate=1e30,
                    max_length=16, length_buckets=(16,), progress_bar=False)
  assert cfg.dtype == "float32"
  with pytest.raises(trainer.NonFiniteLossError) as error:
    trainer.train(cfg)
  assert "--learning_rate" in str(error.value) and "--dtype=float32" not in str(error.value)
