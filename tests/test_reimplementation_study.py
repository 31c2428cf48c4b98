"""experiments/reimplementation_study in --smoke mode: seed 001's LCL row and its GRU
baseline on Empathetic Dialogues, seed 000's biLSTM and CharCNN on GoEmotions-28, and TSA
(files not shipped) printed as not run; the report carries the documents' numbers."""
import json
import os
import pathlib
import subprocess
import sys

import pytest

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_reimplementation_study_smoke(tmp_path, tiny_bert_dir, data_dir):
  env = dict(os.environ)
  env["XLA_FLAGS"] = ("--xla_force_host_platform_device_count=1 "
                      "--xla_backend_optimization_level=0")
  env["LCL_DATA_DIR"] = str(data_dir)
  env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), env.get("PYTHONPATH", "")])
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.reimplementation_study", f"--encoder={tiny_bert_dir}",
       f"--data_dir={data_dir}", f"--workdir={tmp_path}", "--smoke", "--progress_bar=false",
       "--seeds=0", "--datasets=empathetic_dialogues,goemotions_multilabel,tsa",
       "--objectives=lcl,gru,bilstm,charcnn"],
      cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=900)
  output = proc.stdout + proc.stderr
  assert proc.returncode == 0, output[-6000:]
  root = tmp_path / "smoke"
  runs = {
      ("empathetic_dialogues", "lcl"): root / "empathetic_dialogues" / "seed001" / "lcl" / "seed0",
      ("empathetic_dialogues", "gru"): root / "empathetic_dialogues" / "gru" / "ce" / "seed0",
      ("goemotions_multilabel", "bilstm"): root / "goemotions_multilabel" / "bilstm" / "ce" / "seed0",
      ("goemotions_multilabel", "charcnn"): root / "goemotions_multilabel" / "charcnn" / "ce" / "seed0",
  }
  report = json.loads((root / "reports" / "reimplementation_study" / "results.json").read_text())
  cells = {(c["column"], c["method"], c["metric"]): c for c in report["cells"]}
  for (dataset, row), run_dir in runs.items():
    results = json.loads((run_dir / "results.json").read_text())
    expected_encoder = str(tiny_bert_dir) if row == "lcl" else row
    assert results["encoder"] == expected_encoder and results["dataset"] == dataset
    metric = "macro_f1" if dataset == "goemotions_multilabel" else "accuracy"
    assert cells[(dataset, row, metric)]["values"] == {
        "0": pytest.approx(100 * results["test"][metric])}
  # The documents' numbers beside ours.
  assert cells[("empathetic_dialogues", "lcl", "accuracy")]["paper"] == 57.7
  assert cells[("empathetic_dialogues", "gru", "accuracy")]["paper"] == 30.0
  assert cells[("goemotions_multilabel", "bilstm", "macro_f1")]["paper"] == 42.0
  assert cells[("tsa", "lcl", "accuracy")]["paper"] == 85.7
  # Rows only where their document ran them; TSA printed as not run, with the reason.
  assert cells[("goemotions_multilabel", "gru", "accuracy")]["n"] == 0
  assert "tsa" in report["not_run"] and "test_62k.txt" in report["not_run"]["tsa"]
  md = (root / "reports" / "reimplementation_study" / "report.md").read_text()
  assert "## Not run" in md and "/ 57.7" in md and "/ 42.0" in md and "SMOKE RUN" in md
  # Each row's recipe is printed, with what the runs used (issue 18 item 17).
  assert "## Recipes" in md and "seed 001 Sec. 4 grid's best" in md
  lcl_used = report["recipes"]["lcl"]["used"]
  assert (lcl_used["alpha"], lcl_used["temperature"], lcl_used["texts_per_batch"],
          lcl_used["contrastive_reduction"], lcl_used["views"]) == (0.2, 10.0, 32, "sum", "texts")
  lcl_config = json.loads((runs[("empathetic_dialogues", "lcl")] / "config.json").read_text())
  assert lcl_config["config"]["lcl_views"] == "texts"
  for row in ("gru", "bilstm", "charcnn"):
    assert report["recipes"][row]["used"]["views"] == "texts"


def _script_json(script, *args):
  """The JSON printed last by `python -c script args` (a binary's flags parsed in a
  process of their own: two binaries' flags cannot share one)."""
  out = subprocess.run([sys.executable, "-c", script, *args], cwd=PROJECT_ROOT,
                       capture_output=True, text=True, timeout=300, check=True).stdout
  return json.loads(out.strip().splitlines()[-1])


def test_hparam_search_reimplementation_preset_grid():
  """--preset=reimplementation: seed 001's alpha x tau x batch grid (45 points for LCL);
  explicit flags still win; the paper preset's grid is unchanged (no batch dimension)."""
  script = ("import sys, json\n"
            "from experiments import hparam_search as h\n"
            "h.FLAGS(['prog'] + sys.argv[1:])\n"
            "print(json.dumps([p.variant for p in h.grid('lcl')] + ['|'] +"
            " [p.variant for p in h.grid('ce')]))\n")

  def variants(*args):
    values = _script_json(script, *args)
    split = values.index("|")
    return values[:split], values[split + 1:]

  lcl, ce = variants("--preset=reimplementation")
  assert len(lcl) == 3 * 5 * 3 and len(set(lcl)) == 45
  assert "lr2e-05_alpha0.2_tau10_batch32" in lcl  # seed 001's best point
  assert ce == ["lr2e-05_batch4", "lr2e-05_batch8", "lr2e-05_batch32"]
  lcl, _ = variants("--preset=reimplementation", "--alphas=0.5", "--batch_sizes=16")
  assert lcl == [f"lr2e-05_alpha0.5_tau{t}_batch16" for t in ("0.07", "7", "10", "100", "1000")]
  lcl, _ = variants()
  assert len(lcl) == 45 and lcl[0] == "lr1e-05_alpha0.1_tau0.1"
  # Seed 001's setup with its grid (issue 18 item 16): no views, the sum, 10 epochs.
  script = ("import sys, json\n"
            "from experiments import hparam_search as h\n"
            "h.FLAGS(['prog'] + sys.argv[1:])\n"
            "print(json.dumps({o: h.preset_overrides(o) for o in ('ce', 'scl', 'lcl')}))\n")
  assert _script_json(script, "--preset=reimplementation") == {
      "ce": {"epochs": 10, "baseline_views": "texts"},
      "scl": {"epochs": 10, "baseline_views": "texts", "contrastive_reduction": "sum"},
      "lcl": {"epochs": 10, "lcl_views": "texts", "contrastive_reduction": "sum"}}
  assert _script_json(script, "--preset=reimplementation", "--epochs=2",
                      "--lcl_views=paired")["lcl"] == {"contrastive_reduction": "sum"}
  assert _script_json(script) == {"ce": {}, "scl": {}, "lcl": {}}


_SPECS_SCRIPT = (
    "import sys, json\n"
    "from experiments import reimplementation_study as r\n"
    "from lcl_jax.studies import study_numbers as study\n"
    "r.FLAGS(['prog'] + sys.argv[1:])\n"
    "specs, row_of = r.run_specs(list(study.DATASETS), list(study.ROWS), [0])\n"
    "print(json.dumps({s.key: [row_of[s.key], json.loads(s.config.to_json())] "
    "for s in specs}))\n")


def _row_configs(*args):
  """run key -> (row, TrainConfig fields) of every run of the binary (no training)."""
  return _script_json(_SPECS_SCRIPT, *args)


def test_rows_train_with_their_documents_recipes():
  """Issue 18 items 14-17, the values read from the documents (not from the study's
  table): seed 001 Sec. 4 (CE: 10 epochs, batch 8; SCL/LCL: its grid's best alpha 0.2,
  tau 10, batch 32, summed over the K texts, LCL without views), seed 000 Sec. 5.2.2
  (BERTweet as the direct models: 6 epochs, batch 8, fixed 1e-5, dense + tanh head,
  dropout 0.3) and Sec. 5.1.2 (biLSTM: Adam, fixed 1e-3); no row augments."""
  configs = _row_configs()
  rows = {row for row, _ in configs.values()}
  assert rows == {"bert_ce", "ce", "scl", "lcl", "rnn", "gru", "bilstm", "bilstm_es",
                  "charcnn", "bertweet"}
  seed001_ce = dict(epochs=10, texts_per_batch=8)
  seed001_contrastive = dict(epochs=10, texts_per_batch=32, alpha=0.2, temperature=10.0,
                             contrastive_reduction="sum")
  bertweet = dict(epochs=6, texts_per_batch=8, learning_rate=1e-5, lr_schedule="constant",
                  classifier_dropout=0.3, head="direct", thresholds=0.5)
  bilstm = dict(learning_rate=1e-3, lr_schedule="constant", weight_decay=0.0)
  expected = {"bert_ce": seed001_ce, "ce": seed001_ce, "scl": seed001_contrastive,
              "lcl": seed001_contrastive, "bertweet": bertweet, "bilstm": bilstm,
              "bilstm_es": dict(bilstm, patience=3, early_stopping_on="loss")}
  for key, (row, config) in configs.items():
    for name, value in expected.get(row, {}).items():
      assert config[name] == value, (key, name)
    # Neither document augments: no views for any row.
    views = config["lcl_views"] if config["objective"] == "lcl" else config["baseline_views"]
    assert views == "texts", key
    if row not in ("scl", "lcl"):
      assert config["contrastive_reduction"] == "mean", key
  # Seed 001's transformer runs live apart from table1's paper runs.
  assert configs["empathetic_dialogues/seed001/lcl/seed0"][0] == "lcl"
  assert configs["parsinlu_sentiment/seed001_mbert/lcl/seed0"][0] == "lcl"
  assert configs["goemotions_multilabel/bertweet/ce/seed0"][1]["dataset"] == "goemotions_multilabel"
  # A flag given on the command line wins over the recipe; --smoke keeps its epochs.
  given = _row_configs("--epochs=3", "--alpha=0.5", "--lcl_views=paired")
  lcl = given["sst5/seed001/lcl/seed0"][1]
  assert (lcl["epochs"], lcl["alpha"], lcl["temperature"], lcl["lcl_views"]) == (
      3, 0.5, 10.0, "paired")
  assert given["goemotions_multilabel/bertweet/ce/seed0"][1]["epochs"] == 3
  smoke = _row_configs("--smoke")
  assert {config["epochs"] for _, config in smoke.values()} == {1}
  assert smoke["sst5/seed001/scl/seed0"][1]["texts_per_batch"] == 32
