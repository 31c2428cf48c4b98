"""Using a fine-tuned model (issue 13): predict, evaluate, plots, HF export + model card.

One shared smoke fixture: `experiments.train` (the binary, in a subprocess) trains the
BERT baseline and LCL on a tiny EmoInt subset with the tiny random BERT and --export_hf;
a second tiny run covers multi-label thresholds. Every test reads those runs.
"""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from sklearn import metrics as skm

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
TEXTS = ["I am so angry about the delay", "this is wonderful news, thank you!",
         "i am scared of the dark", "so sad today", "", "what a day"]


def _env():
  return dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="", PYTHONUNBUFFERED="1",
              PYTHONPATH=str(PROJECT_ROOT))


def _binary(module, *args, check=True):
  proc = subprocess.run([sys.executable, "-m", module, *args], cwd=PROJECT_ROOT, env=_env(),
                        capture_output=True, text=True, timeout=600)
  if check and proc.returncode != 0:
    raise AssertionError(f"{module} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
  return proc


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, tiny_bert_dir, data_dir):
  """`experiments.train` with bert_ce and lcl on 32 EmoInt texts (tiny BERT), exported."""
  root = tmp_path_factory.mktemp("use") / "emoint"
  proc = _binary("experiments.train", "--dataset=emoint", "--objective=bert_ce,lcl",
                 f"--encoder={tiny_bert_dir}", f"--data_dir={data_dir}", f"--workdir={root}",
                 "--epochs=1", "--max_train_examples=32", "--max_eval_examples=24",
                 "--max_steps_per_epoch=2", "--max_length=32", "--length_buckets=16,32",
                 "--texts_per_batch=8", "--eval_batch_size=16", "--learning_rate=1e-3",
                 "--noprogress_bar", "--export_hf")
  return {"root": root, "bert_ce": root / "bert_ce" / "seed0", "lcl": root / "lcl" / "seed0",
          "stdout": proc.stdout, "stderr": proc.stderr, "data_dir": data_dir}


@pytest.fixture(scope="module")
def multilabel_run(tmp_path_factory, tiny_bert_dir, data_dir):
  """A tiny CE run on GoEmotions multi-label (in-process)."""
  from lcl_jax.train import trainer
  from lcl_jax.train.config import TrainConfig

  workdir = tmp_path_factory.mktemp("use_ml") / "run"
  trainer.train(TrainConfig(
      dataset="goemotions_multilabel", objective="ce", encoder=str(tiny_bert_dir),
      data_dir=str(data_dir), workdir=str(workdir), epochs=1, max_train_examples=16,
      max_eval_examples=16, max_steps_per_epoch=1, texts_per_batch=8, eval_batch_size=16,
      max_length=32, length_buckets=(32,), progress_bar=False, thresholds=0.4,
      threshold_fit="none"))
  return workdir


def _results(run):
  return json.loads((run / "results.json").read_text())


def _test_texts(run, data_dir):
  """The run's test subset, exactly as the trainer evaluated it."""
  from lcl_jax.data import load_split
  from lcl_jax.train import data_pipeline

  config = json.loads((run / "config.json").read_text())["config"]
  split = load_split(config["dataset"], "test", data_dir=data_dir)
  return data_pipeline.fixed_subset(split, config["max_eval_examples"])


# ------------------------------------------------------------------------------- predict


def test_predict_equals_the_trainers_eval_probabilities(smoke):
  from lcl_jax import inference

  run = smoke["lcl"]
  saved = np.load(run / "predictions" / "best_test.npz")
  split = _test_texts(run, smoke["data_dir"])
  np.testing.assert_array_equal(saved["labels"], split.labels)
  predictor = inference.Predictor.load(run)
  assert predictor.networks == ("primary", "weighting")
  # Another batch size: other batch compositions and buckets, the same numbers.
  for batch_size in (None, 5):
    if batch_size:
      predictor = inference.Predictor.load(run, batch_size=batch_size)
    probs = predictor.probabilities(list(split.texts))
    np.testing.assert_allclose(probs["primary"], saved["probabilities"], atol=2e-6)
    np.testing.assert_allclose(probs["weighting"], saved["weighting_probabilities"], atol=2e-6)
  top = predictor.predict(list(split.texts), top_k=3)
  assert [p.labels[0] for p in top] == [predictor.label_names[i] for i in saved["predictions"]]
  assert all(len(p.labels) == 3 and p.scores[0] >= p.scores[1] >= p.scores[2] for p in top)
  psi = predictor.predict(list(split.texts), network="weighting")
  assert [p.labels[0] for p in psi] == [
      predictor.label_names[i] for i in saved["weighting_predictions"]]


def _write_inputs(directory, texts):
  directory.mkdir(parents=True, exist_ok=True)
  files = {}
  (directory / "in.txt").write_text("\n".join(t if t else "   " for t in texts) + "\n")
  files["txt"] = directory / "in.txt"
  import csv
  for suffix, delimiter in (("csv", ","), ("tsv", "\t")):
    with open(directory / f"in.{suffix}", "w", newline="", encoding="utf-8") as f:
      writer = csv.writer(f, delimiter=delimiter)
      writer.writerow(["id", "sentence"])
      writer.writerows([i, t] for i, t in enumerate(texts))
    files[suffix] = directory / f"in.{suffix}"
  (directory / "in.jsonl").write_text(
      "".join(json.dumps({"id": i, "sentence": t}) + "\n" for i, t in enumerate(texts)))
  files["jsonl"] = directory / "in.jsonl"
  return files


def test_file_formats_and_the_predict_binary(smoke, tmp_path):
  import csv

  from lcl_jax.inference import use
  from lcl_jax import inference

  run = smoke["bert_ce"]
  predictor = inference.Predictor.load(run)
  texts = [t for t in TEXTS if t]  # .txt skips blank lines
  expected = predictor.probabilities(texts)["primary"]
  labels = predictor.label_names
  files = _write_inputs(tmp_path, texts)
  for fmt, path in files.items():
    records = use.read_records(path, text_column="sentence")
    assert records.texts == texts, fmt
    assert records.lines == ([1, 2, 3, 4, 5] if fmt in ("txt", "jsonl") else [2, 3, 4, 5, 6])
  # The binary on a file: JSONL out, every probability equal to the library's.
  out = tmp_path / "out.jsonl"
  proc = _binary("experiments.predict", f"--run={run}", f"--input={files['tsv']}",
                 "--text_column=sentence", f"--output={out}", "--top_k=2", "--show=2")
  rows = [json.loads(l) for l in out.read_text().splitlines()]
  assert [r["text"] for r in rows] == texts
  got = np.array([[r["probabilities"][n] for n in labels] for r in rows])
  np.testing.assert_allclose(got, expected, atol=2e-6)
  assert [r["labels"][0] for r in rows] == [labels[i] for i in expected.argmax(-1)]
  assert all(len(r["labels"]) == 2 for r in rows)
  assert f"{len(texts)} predictions written to {out} (3 not shown)" in proc.stdout
  # CSV out.
  records = use.Records(texts, list(range(1, 6)))
  path = use.write_predictions(tmp_path / "out.csv", records,
                               predictor.predict(texts, top_k=2), labels)
  with open(path, newline="", encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
  assert [r["text"] for r in rows] == texts
  np.testing.assert_allclose([[float(r[n]) for n in labels] for r in rows], expected,
                             atol=2e-6)
  assert [r["labels"].split(";")[0] for r in rows] == [labels[i] for i in expected.argmax(-1)]


# Libraries a predict call has no use for, and what used to import each (issue 19 item 6:
# one call under 5 s; BUILD_NOTES "Predict latency (item 6)").
_NOT_ON_THE_PREDICT_PATH = ("sklearn", "scipy", "torch", "tensorflow", "nltk", "tensorboard",
                            "tensorboardX", "matplotlib", "pandas")


def test_the_predict_binary_imports_no_library_it_does_not_use(smoke):
  """`experiments.predict` on an LCL run (both networks) in a fresh interpreter: the same
  output as the library, and none of scikit-learn/scipy (metrics), torch, TensorFlow,
  NLTK/WordNet (augmentation), TensorBoard, matplotlib (plots) or pandas in sys.modules;
  only the network asked for is compiled. Not timed: the start-up time these imports cost
  is in BUILD_NOTES."""
  from lcl_jax import inference

  run = smoke["lcl"]
  code = (
      "import json, runpy, sys\n"
      f"sys.argv = ['predict', '--run={run}', '--text={TEXTS[0]}', '--top_k=2']\n"
      "try:\n"
      "  runpy.run_module('experiments.predict', run_name='__main__')\n"
      "except SystemExit as e:\n"
      "  assert not e.code, e.code\n"
      f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & "
      f"set({_NOT_ON_THE_PREDICT_PATH!r}))))\n")
  proc = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, env=_env(),
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr
  printed, imported = proc.stdout.strip().splitlines()[-2:]
  assert json.loads(imported) == []
  predictor = inference.Predictor.load(run)
  (expected,) = predictor.predict([TEXTS[0]], top_k=2)
  assert printed.startswith(f"'{TEXTS[0]}': {expected.labels[0]} ({expected.scores[0]:.3f})")
  assert list(predictor._eval_steps) == [("primary",)]  # Ψ was neither run nor compiled


def test_predict_errors_are_one_clear_line(smoke, tmp_path):
  from lcl_jax.inference import use
  from lcl_jax import inference

  unfinished = tmp_path / "unfinished"
  unfinished.mkdir()
  (unfinished / "config.json").write_text((smoke["bert_ce"] / "config.json").read_text())
  files = _write_inputs(tmp_path, ["a text"])
  (tmp_path / "empty.txt").write_text("\n\n")
  with pytest.raises(inference.RunNotUsableError, match="no such directory"):
    inference.Predictor.load(tmp_path / "nothing")
  cases = [(files["csv"], "sentence", "body", "no column 'body'"),
           (files["jsonl"], "sentence", "text", "line 1: no key 'text'"),
           (tmp_path / "empty.txt", None, "text", "no texts in the file"),
           (tmp_path / "x.parquet", None, "text", "unknown format")]
  for path, _, column, message in cases:
    with pytest.raises(use.InputError, match=message):
      use.read_records(path, text_column=column)
  with pytest.raises(use.InputError, match="unknown format"):
    use.check_output_path("x.parquet")
  # The binary: one line on stderr, status 2; the traceback only with --verbosity=1.
  proc = _binary("experiments.predict", f"--run={unfinished}", "--text=x", check=False)
  assert proc.returncode == 2 and "the run has not finished" in proc.stderr
  assert "Traceback" not in proc.stderr
  proc = _binary("experiments.predict", f"--run={smoke['bert_ce']}", f"--input={files['csv']}",
                 "--verbosity=1", check=False)
  assert proc.returncode != 0 and "Traceback" in proc.stderr
  assert "no column 'text'" in proc.stderr


def test_multilabel_thresholds_from_results_override_the_config(multilabel_run):
  from lcl_jax import inference

  predictor = inference.Predictor.load(multilabel_run)
  assert predictor.multilabel and predictor.num_classes == 28
  np.testing.assert_array_equal(predictor.thresholds, np.full(28, 0.4))
  probs = predictor.probabilities(TEXTS)["primary"]
  np.testing.assert_allclose(probs, 1 / (1 + np.exp(-predictor.logits(TEXTS)["primary"])),
                             rtol=1e-6)
  # Per-class thresholds fitted after training (threshold_fit) are in results.json: they win.
  thresholds = np.quantile(probs, 0.5, axis=0)
  results = _results(multilabel_run)
  results["per_class_thresholds"] = {"thresholds": thresholds.tolist()}
  (multilabel_run / "results.json").write_text(json.dumps(results))
  predictor = inference.Predictor.load(multilabel_run)
  np.testing.assert_allclose(predictor.thresholds, thresholds)
  for row, prediction in zip(probs, predictor.predict(TEXTS, top_k=1)):
    chosen = {predictor.label_names[i] for i in np.flatnonzero(row >= thresholds)}
    assert set(prediction.labels) == chosen
    assert list(prediction.scores) == sorted(prediction.scores, reverse=True)
  assert any(len(p.labels) > 1 for p in predictor.predict(TEXTS))


# ------------------------------------------------------------------------------ evaluate


def test_evaluate_reproduces_the_runs_test_metrics(smoke, tmp_path):
  run = smoke["lcl"]
  out = tmp_path / "eval"
  proc = _binary("experiments.evaluate", f"--run={run}", f"--data_dir={smoke['data_dir']}",
                 f"--output_dir={out}")
  report = json.loads((out / "metrics.json").read_text())
  test = _results(run)["test"]
  assert report["num_examples"] == 24
  for network, prefix in (("primary", ""), ("weighting", "weighting_")):
    metrics = report["networks"][network]["metrics"]
    for key in ("accuracy", "weighted_f1", "macro_f1"):
      assert metrics[key] == pytest.approx(test[prefix + key], abs=1e-12), (network, key)
  # Per-class P/R/F1 and the confusion matrix agree with scikit-learn on the saved
  # predictions of the same split.
  saved = np.load(run / "predictions" / "best_test.npz")
  entry = report["networks"]["primary"]
  np.testing.assert_array_equal(
      entry["confusion_matrix"], skm.confusion_matrix(saved["labels"], saved["predictions"],
                                                      labels=range(4)))
  p, r, f, s = skm.precision_recall_fscore_support(saved["labels"], saved["predictions"],
                                                   labels=range(4), zero_division=0)
  np.testing.assert_allclose([c["f1"] for c in entry["per_class"]], f)
  np.testing.assert_allclose([c["precision"] for c in entry["per_class"]], p)
  assert [c["support"] for c in entry["per_class"]] == s.tolist()
  markdown = (out / "report.md").read_text()
  assert "Confusion matrix" in markdown and "anger" in markdown
  assert f"report: {out / 'report.md'}" in proc.stdout


def test_evaluate_a_labelled_file(smoke, tmp_path):
  from lcl_jax.inference import use
  from lcl_jax import inference

  run = smoke["bert_ce"]
  predictor = inference.Predictor.load(run)
  texts = [t for t in TEXTS if t]
  names = ["anger", "joy", "fear", "sadness", "joy"]
  path = tmp_path / "labelled.tsv"
  path.write_text("text\tlabel\n" + "".join(f"{t}\t{n}\n" for t, n in zip(texts, names)))
  out = tmp_path / "eval"
  _binary("experiments.evaluate", f"--run={run}", f"--input={path}", f"--output_dir={out}")
  report = json.loads((out / "metrics.json").read_text())
  labels = np.array([predictor.label_names.index(n) for n in names])
  preds = predictor.probabilities(texts)["primary"].argmax(-1)
  assert report["networks"]["primary"]["metrics"]["accuracy"] == pytest.approx(
      skm.accuracy_score(labels, preds))
  with pytest.raises(use.InputError, match="line 2: unknown label"):
    use.encode_labels(["joy", "nope"], [1, 2], predictor.label_names, multilabel=False,
                      where="x")


# ------------------------------------------------------- plots, disk, console, export


def test_plots_exist_are_pngs_and_the_lr_is_logged(smoke):
  for name in ("bert_ce", "lcl"):
    run = smoke[name]
    results = _results(run)
    assert set(results["plots"]) == {"training_curves", "validation", "confusion_test"}
    for relative in results["plots"].values():
      data = (run / relative).read_bytes()
      assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    train = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()
             if json.loads(l).get("kind") == "train"]
    # Linear decay from 1e-3 to 0 over 2 steps: update s uses lr 1e-3 * (1 - (s - 1) / 2).
    assert [(r["step"], r["learning_rate"]) for r in train][-1] == pytest.approx((2, 5e-4))


def test_keep_checkpoints_best_drops_the_latest_state_and_reports_disk(smoke):
  from lcl_jax.train import checkpoint as checkpoint_lib

  for name in ("bert_ce", "lcl"):
    run = smoke[name]
    results = _results(run)
    assert results["keep_checkpoints"] == "best"
    assert not (run / "checkpoints").exists() and (run / "best").is_dir()
    # Measured just before results.json was written.
    assert results["disk_bytes"] == checkpoint_lib.disk_usage(run, exclude=("results.json",))


def test_console_reads_like_a_tool(smoke):
  out, err = smoke["stdout"], smoke["stderr"]
  assert "[1/2] bert_ce on emoint" in err and "[2/2] lcl on emoint" in err
  assert not any(line[:1] in "IWE" and line[1:5].isdigit() for line in err.splitlines())
  assert f"summary: {smoke['root'] / 'summary_seed0.md'}" in out
  assert (smoke["root"] / "train.log").stat().st_size > 0


def test_a_repeated_load_report_is_logged_once(caplog):
  import logging

  from lcl_jax.models import convert

  report = convert.LoadReport(source="/x/model.safetensors", loaded=["a", "b"],
                              ignored={"pooler.dense.bias": "unused"})
  other = convert.LoadReport(source="/x/model.safetensors", loaded=["a"])
  logger = logging.getLogger("lcl_jax.test_use")
  with caplog.at_level(logging.DEBUG, logger="lcl_jax.test_use"):
    report.log(logger)
    report.log(logger)  # e.g. the same encoder for the next objective
    other.log(logger)
  levels = [r.levelno for r in caplog.records]
  assert levels == [logging.INFO, logging.DEBUG, logging.INFO]


def test_export_loads_in_transformers_pipeline_like_predict(smoke):
  import transformers

  from lcl_jax import inference

  folder = smoke["bert_ce"] / "export" / "primary"
  config = json.loads((folder / "config.json").read_text())
  assert config["id2label"] == {"0": "anger", "1": "fear", "2": "joy", "3": "sadness"}
  assert config["label2id"]["joy"] == 2 and config["lcl_jax"]["dataset"] == "emoint"
  card = (folder / "README.md").read_text()
  for needle in ("emoint", "bert_ce", "Suresh", "pipeline('text-classification'",
                 "experiments.train", "accuracy"):
    assert needle in card
  texts = [t for t in TEXTS if t]
  classify = transformers.pipeline("text-classification", model=str(folder), top_k=None)
  outputs = classify(texts)
  for predictor in (inference.Predictor.load(smoke["bert_ce"]), inference.Predictor.load(folder)):
    ours = predictor.probabilities(texts)[predictor.default_network()]
    for row, out in zip(ours, outputs):
      theirs = {o["label"]: o["score"] for o in out}
      np.testing.assert_allclose([theirs[n] for n in predictor.label_names], row, atol=1e-4)
      assert max(out, key=lambda o: o["score"])["label"] == predictor.label_names[row.argmax()]


def test_paper_head_export_is_a_bare_encoder_for_transformers(smoke):
  import torch
  import transformers

  from lcl_jax import inference

  folder = smoke["lcl"] / "export" / "primary"
  card = (folder / "README.md").read_text()
  assert "inference.Predictor.load" in card and "bare encoder" in card
  model = transformers.AutoModel.from_pretrained(str(folder))
  tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
  predictor = inference.Predictor.load(folder)
  # The exported encoder's [CLS] vector equals the lcl_jax features of the same text.
  import jax
  batch = tokenizer(["so sad today"], return_tensors="pt")
  with torch.no_grad():
    cls = model(**batch).last_hidden_state[:, 0].numpy()
  ids = batch["input_ids"].numpy()
  out = predictor.modules["primary"].apply(
      {"params": predictor.params["primary"]}, ids, np.ones_like(ids), None,
      deterministic=True)
  np.testing.assert_allclose(np.asarray(jax.device_get(out.features)), cls, atol=1e-4)
  # Ψ (ELECTRA head on a BERT encoder) is reloaded by lcl_jax with the run's numbers.
  weighting = inference.Predictor.load(smoke["lcl"] / "export" / "weighting")
  run = inference.Predictor.load(smoke["lcl"])
  texts = [t for t in TEXTS if t]
  np.testing.assert_allclose(weighting.probabilities(texts)["weighting"],
                             run.probabilities(texts)["weighting"], atol=1e-6)


def test_table_reports_link_each_runs_plots(smoke, tmp_path):
  import re

  from lcl_jax.studies import report as report_lib

  run = smoke["lcl"]
  obs = report_lib.Observation("emoint", "lcl", 0, _results(run), "emoint/lcl/seed0", str(run))
  report = report_lib.Report(name="t", title="t", split="test", columns=["emoint"],
                             methods=["lcl"], metrics=["accuracy"],
                             cells=report_lib.build_cells([obs], columns=["emoint"],
                                                          methods=["lcl"],
                                                          metrics=["accuracy"], split="test"),
                             runs=[report_lib.run_record(obs)])
  paths = report_lib.write_report(report, tmp_path / "reports" / "t")
  markdown = paths["markdown"].read_text()
  links = re.findall(r"\]\(([^)]+\.png)\)", markdown)
  assert len(links) == 3 and "Training plots" in markdown
  for link in links:
    assert not link.startswith("/")  # relative: the folder can be moved as a whole
    assert (paths["markdown"].parent / link).resolve().is_file()


def test_help_lists_the_run_flags_and_user_errors_are_one_line(smoke):
  proc = _binary("experiments.train", "--help", check=False)  # absl exits 1 after help
  for flag in ("--epochs", "--data_dir", "--encoder", "--keep_checkpoints", "]export_hf",
               "--learning_rate"):
    assert flag in proc.stdout, flag
  assert "3 for the synthetic" in " ".join(proc.stdout.split())  # --epochs: real defaults
  proc = _binary("experiments.train", "--dataset=nope", check=False)
  assert proc.returncode != 0 and "--dataset='nope' is not a known dataset" in proc.stderr
  assert "Traceback" not in proc.stderr
  # The smoke workdir again with another learning rate: refused in one line.
  args = ["--dataset=emoint", "--objective=bert_ce", f"--workdir={smoke['root']}",
          f"--data_dir={smoke['data_dir']}", "--learning_rate=5e-4", "--epochs=1",
          "--max_train_examples=32", "--max_eval_examples=24", "--max_steps_per_epoch=2",
          "--max_length=32", "--length_buckets=16,32", "--texts_per_batch=8",
          "--eval_batch_size=16", "--noprogress_bar", "--export_hf",
          f"--encoder={json.loads((smoke['bert_ce'] / 'config.json').read_text())['config']['encoder']}"]
  proc = _binary("experiments.train", *args, check=False)
  assert proc.returncode == 2, proc.stderr
  assert "error:" in proc.stderr and "different configuration" in proc.stderr
  assert "learning_rate: 0.001 -> 0.0005" in proc.stderr and "Traceback" not in proc.stderr
