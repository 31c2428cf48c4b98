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
      ("empathetic_dialogues", "lcl"): root / "empathetic_dialogues" / "lcl" / "seed0",
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


def test_hparam_search_reimplementation_preset_grid():
  """--preset=reimplementation: seed 001's alpha x tau x batch grid (45 points for LCL);
  explicit flags still win; the paper preset's grid is unchanged (no batch dimension)."""
  script = ("import sys, json\n"
            "from experiments import hparam_search as h\n"
            "h.FLAGS(['prog'] + sys.argv[1:])\n"
            "print(json.dumps([p.variant for p in h.grid('lcl')] + ['|'] +"
            " [p.variant for p in h.grid('ce')]))\n")

  def variants(*args):
    out = subprocess.run([sys.executable, "-c", script, *args], cwd=PROJECT_ROOT,
                         capture_output=True, text=True, timeout=300, check=True).stdout
    values = json.loads(out.strip().splitlines()[-1])
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
