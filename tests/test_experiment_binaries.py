"""Every experiment binary end to end in --smoke mode (real trainer, real data subsets).

The binaries run as users run them (`python -m experiments.<name>`), on a tiny random
BERT (the `tiny_bert_dir` fixture) and the shared data, in one sweep root that they
share, in this order: Table 1 trains, a second Table 1 run skips its finished runs,
Table 2 trains, Tables 4/5 and Figure 2 read those runs without training, Table 3
selects hard subsets from a CE run and trains on one of them, and the hyper-parameter
search runs two grid points at once in worker subprocesses. Each test checks the
report's numbers against the runs' own files, computed independently here.
"""
import csv
import io
import itertools
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from conftest import binary_env  # tests/ is on sys.path (rootdir conftest)
from sklearn import metrics as sk_metrics

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, tiny_bert_dir, data_dir):
  workdir = tmp_path_factory.mktemp("experiments")
  env = binary_env(data_dir)
  common = [f"--encoder={tiny_bert_dir}", f"--data_dir={data_dir}", f"--workdir={workdir}",
            "--smoke", "--progress_bar=false"]
  return {"root": workdir / "smoke", "env": env, "common": common, "tiny": tiny_bert_dir,
          "data": data_dir}


def _run(smoke, binary, *args, env=None):
  proc = subprocess.run([sys.executable, "-m", f"experiments.{binary}", *smoke["common"], *args],
                        cwd=PROJECT_ROOT, env=env or smoke["env"], capture_output=True, text=True,
                        timeout=900)
  output = proc.stdout + proc.stderr
  assert proc.returncode == 0, f"{binary} exited {proc.returncode}:\n{output[-6000:]}"
  return output


def _run_results(run_dir):
  return json.loads((run_dir / "results.json").read_text())


def _cells(report_dir):
  return {(c["column"], c["method"], c["metric"]): c
          for c in json.loads((report_dir / "results.json").read_text())["cells"]}


def _finished_runs(root):
  return sorted(p.parent for p in root.rglob("results.json") if "reports" not in p.parts)


def test_table1_trains_then_skips_finished_runs(smoke):
  args = ["--datasets=emoint", "--objectives=bert_ce,lcl", "--seeds=0"]
  out = _run(smoke, "table1_emotion", *args)
  assert "2 runs, 0 already finished, 2 to run" in out
  root = smoke["root"]
  for objective in ("bert_ce", "lcl"):
    results = _run_results(root / "emoint" / objective / "seed0")
    assert results["dataset"] == "emoint" and results["objective"] == objective
    assert results["encoder"] == str(smoke["tiny"])  # --bert_encoder follows --encoder in smoke
    assert results["split_sizes"]["train"] == 40 and results["epochs_trained"] == 1
  report_dir = root / "reports" / "table1"
  cells = _cells(report_dir)
  lcl = _run_results(root / "emoint" / "lcl" / "seed0")
  cell = cells[("emoint", "lcl", "accuracy")]
  assert cell["values"] == {"0": pytest.approx(100 * lcl["test"]["accuracy"])}
  assert cell["paper"] == 86.6
  assert cells[("emoint", "bert_ce", "weighted_f1")]["paper"] == 85.0
  md = (report_dir / "report.md").read_text()
  assert "SMOKE RUN" in md and "/ 86.6" in md and "tiny_bert" in md
  # The reading of the release the runs follow (issue 14) is in the settings block.
  for setting in ("baseline_views: `paired`", "adam_epsilon_mode: `optax`",
                  "view_seed: `per seed`", "head_init: `normal_0.02`"):
    assert f"- {setting}" in md, setting
  rows = list(csv.DictReader(io.StringIO((report_dir / "results.csv").read_text())))
  assert len(rows) == 4  # 2 methods x 2 metrics

  stamp = (root / "emoint" / "lcl" / "seed0" / "results.json").stat().st_mtime_ns
  again = _run(smoke, "table1_emotion", *args)
  assert "2 runs, 2 already finished, 0 to run" in again
  assert (root / "emoint" / "lcl" / "seed0" / "results.json").stat().st_mtime_ns == stamp


def test_table2_with_published_rows(smoke):
  _run(smoke, "table2_sentiment", "--datasets=sst5", "--objectives=scl", "--seeds=0")
  report_dir = smoke["root"] / "reports" / "table2"
  scl = _run_results(smoke["root"] / "sst5" / "scl" / "seed0")
  cell = _cells(report_dir)[("sst5", "scl", "accuracy")]
  assert cell["mean"] == pytest.approx(100 * scl["test"]["accuracy"]) and cell["paper"] == 57.4
  md = (report_dir / "report.md").read_text()
  assert "| SentiLARE (published) | – / 58.6 |" in md
  assert "not finished" not in md


def test_tables_4_5_read_validation_results_without_training(smoke):
  before = _finished_runs(smoke["root"])
  _run(smoke, "table4_5_validation", "--datasets=emoint,sst5", "--seeds=0")
  assert _finished_runs(smoke["root"]) == before
  reports = smoke["root"] / "reports"
  lcl = _run_results(smoke["root"] / "emoint" / "lcl" / "seed0")
  t5 = _cells(reports / "table5")
  assert t5[("emoint", "lcl", "weighted_f1")]["values"] == {
      "0": pytest.approx(100 * lcl["validation"]["weighted_f1"])}
  assert t5[("emoint", "lcl", "accuracy")]["paper"] == 88.8
  assert t5[("emoint", "ce", "accuracy")]["n"] == 0  # CE was not run: listed as missing
  t4 = _cells(reports / "table4")
  scl = _run_results(smoke["root"] / "sst5" / "scl" / "seed0")
  assert t4[("sst5", "scl", "accuracy")]["mean"] == pytest.approx(
      100 * scl["validation"]["accuracy"])
  assert t4[("sst5", "scl", "accuracy")]["paper"] == 54.5
  combined = (reports / "table4_5" / "report.md").read_text()
  assert "Table 4" in combined and "Table 5" in combined and "`emoint/ce/seed0`" in combined


def test_figure2_curves_from_saved_predictions(smoke):
  before = _finished_runs(smoke["root"])
  _run(smoke, "figure2_entropy", "--datasets=emoint", "--objectives=lcl", "--seeds=0")
  assert _finished_runs(smoke["root"]) == before  # reused Table 1's run
  out = smoke["root"] / "reports" / "figure2"
  assert (out / "figure2_entropy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  with np.load(smoke["root"] / "emoint" / "lcl" / "seed0" / "predictions" / "best_test.npz") as f:
    probs = f["probabilities"].astype(np.float64)
  # Eq. 7 by hand: top-k scores renormalised, their entropy in bits (log2), averaged.
  top = -np.sort(-probs, axis=1)
  expected = []
  for k in range(2, probs.shape[1] + 1):
    q = top[:, :k] / top[:, :k].sum(axis=1, keepdims=True)
    expected.append(np.mean(-np.sum(np.where(q > 0, q * np.log2(np.where(q > 0, q, 1)), 0),
                                    axis=1)))
  rows = list(csv.DictReader(io.StringIO((out / "entropy.csv").read_text())))
  assert [int(r["k"]) for r in rows] == [2, 3, 4]
  np.testing.assert_allclose([float(r["mean_entropy_bits"]) for r in rows], expected, rtol=1e-4)
  assert "bits" in (out / "report.md").read_text()
  data = json.loads((out / "entropy.json").read_text())
  assert data["emoint"]["lcl"]["n"] == 1 and data["emoint"]["lcl"]["k"] == [2, 3, 4]


def test_table3_selects_hard_subsets_and_trains_on_them(smoke):
  _run(smoke, "table3_class_subsets", "--datasets=4_hard_a", "--objectives=lcl", "--seeds=0",
       "--hard_subsets=found")
  root = smoke["root"]
  selection_run = root / "empathetic_dialogues" / "ce" / "seed0"
  with np.load(selection_run / "predictions" / "best_validation.npz") as f:
    labels, predictions = f["labels"], f["predictions"]
  confusion = sk_metrics.confusion_matrix(labels, predictions, labels=range(32))
  report = json.loads((root / "reports" / "table3" / "results.json").read_text())
  selection = report["selection"]
  assert np.array_equal(np.asarray(selection["confusion_matrix"]), confusion)
  assert selection["combinations_scored"] == 35960

  def score(combo):
    return sum(int(confusion[i, j]) for i in combo for j in combo if i != j)

  found = selection["found"]
  names = selection["labels"]
  hard_a = [names.index(n) for n in found["4_hard_a"]["names"]]
  assert found["4_hard_a"]["score"] == score(hard_a)
  assert score(hard_a) == max(score(c) for c in itertools.combinations(range(32), 4))
  used = [n for key in found for n in found[key]["names"]]
  assert len(used) == len(set(used)) == 16  # four disjoint subsets
  run = json.loads((root / "empathetic_dialogues" / "found_4_hard_a" / "lcl" / "seed0" /
                    "config.json").read_text())["config"]
  assert run["classes"] == found["4_hard_a"]["names"]
  md = (root / "reports" / "table3" / "report.md").read_text()
  assert "Hard subsets: found here vs the paper's" in md
  assert "anxious, apprehensive, afraid, terrified" in md  # the paper's hard-a beside ours


def test_hparam_search_runs_grid_points_in_parallel_workers(smoke):
  env = dict(smoke["env"])
  env["XLA_FLAGS"] = env["XLA_FLAGS"].replace("device_count=1", "device_count=2")
  out = _run(smoke, "hparam_search", "--datasets=emoint", "--objectives=lcl", "--seeds=0",
             "--learning_rates=2e-5", "--alphas=0.5", "--temperatures=0.1,0.3",
             "--parallel_runs=2", "--devices_per_run=1", env=env)
  assert "2 to run (2 at once)" in out
  base = smoke["root"] / "hparam" / "emoint"
  accuracy = {}
  for tau in ("0.1", "0.3"):
    run_dir = base / f"lr2e-05_alpha0.5_tau{tau}" / "lcl" / "seed0"
    results = _run_results(run_dir)
    assert results["num_devices"] == 1  # restricted to its slot
    assert "worker started" in (run_dir / "worker.log").read_text()
    config = json.loads((run_dir / "config.json").read_text())["config"]
    assert config["temperature"] == float(tau) and config["alpha"] == 0.5
    accuracy[float(tau)] = results["validation"]["accuracy"]
  best = json.loads((smoke["root"] / "reports" / "hparam_search" / "best.json").read_text())
  chosen = best["emoint"]["lcl"]
  # Highest validation accuracy; a tie goes to the earlier grid point (tau 0.1).
  expected_tau = 0.3 if accuracy[0.3] > accuracy[0.1] else 0.1
  assert chosen["temperature"] == expected_tau
  assert chosen["validation"]["mean"] == pytest.approx(100 * accuracy[expected_tau])


def test_goemotions_multilabel_smoke_report_carries_the_seeds_numbers(smoke):
  """Issue 9's binary: a direct model, an LCL pair and seed 003's two-stage + per-class
  threshold row; both decision-rule columns, the seeds' numbers, Tables 5/6, figures."""
  rows = "direct_bert,lcl_bert+bert,s003_06"
  out = _run(smoke, "goemotions_multilabel", f"--rows={rows}", "--seeds=0")
  assert "3 runs, 0 already finished, 3 to run" in out
  base = smoke["root"] / "goemotions_multilabel"
  direct = _run_results(base / "direct_bert" / "ce" / "seed0")
  lcl = _run_results(base / "lcl_bert+bert" / "lcl" / "seed0")
  s003 = _run_results(base / "s003_06" / "ce" / "seed0")
  config = json.loads((base / "s003_06" / "ce" / "seed0" / "config.json").read_text())["config"]
  assert (config["head"], config["lr_schedule"], config["classifier_dropout"]) == (
      "dense1", "linear", 0.1)
  assert s003["two_stage"]["stage2_epochs"] == 1 and s003["epochs_trained"] == 2
  direct_config = json.loads(
      (base / "direct_bert" / "ce" / "seed0" / "config.json").read_text())["config"]
  assert direct_config["baseline_views"] == "texts" and direct_config["head"] == "direct"
  lcl_config = json.loads((base / "lcl_bert+bert" / "lcl" / "seed0" / "config.json").read_text())
  assert lcl_config["config"]["head"] == "direct"
  assert lcl_config["config"]["lr_schedule"] == "constant"
  assert lcl_config["config"]["texts_per_batch"] == 16
  report_dir = smoke["root"] / "reports" / "goemotions28"
  cells = _cells(report_dir)
  # Global-threshold column: the run's own test metrics; per-class column: the fitted ones,
  # recomputed here from the saved predictions and thresholds.json.
  cell = cells[("global", "direct_bert", "macro_f1")]
  assert cell["values"] == {"0": pytest.approx(100 * direct["test"]["macro_f1"])}
  assert cell["paper"] == 46.2
  assert cells[("global", "lcl_bert+bert", "macro_recall")]["paper"] == 44.5
  assert cells[("per_class", "s003_06", "macro_f1")]["paper"] == 38.0
  assert cells[("per_class", "s003_06", "exact_match")]["paper"] == 23.0
  run_dir = base / "lcl_bert+bert" / "lcl" / "seed0"
  arrays = np.load(run_dir / "predictions" / "best_test.npz")
  fitted = json.loads((run_dir / "thresholds.json").read_text())["per_class"]
  preds = (arrays["probabilities"] >= np.asarray(fitted)).astype(int)
  assert cells[("per_class", "lcl_bert+bert", "macro_f1")]["values"]["0"] == pytest.approx(
      100 * sk_metrics.f1_score(arrays["labels"], preds, average="macro", zero_division=0))
  assert arrays["features"].shape == (40, 32)
  report = (report_dir / "report.md").read_text()
  assert "Seed 000 Table 5" in report and "Seed 000 Table 6" in report
  assert "CharBert" in report and "not run" in report
  for name in ("tsne.png", "per_class_f1.png"):
    assert (report_dir / "figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  tsne = list(csv.DictReader(io.StringIO((report_dir / "figures" / "tsne.csv").read_text())))
  single = int((arrays["labels"].sum(1) == 1).sum())
  assert len(tsne) == 2 * single
  assert {r["group"] for r in tsne} <= {"positive", "negative", "ambiguous", "neutral"}
  assert lcl["per_class_thresholds"]["fit_split"] == "validation"


def test_goemotions_methods_smoke_report_carries_the_documents_numbers(smoke, tmp_path):
  """Issue 10's binary: the baseline, an auxiliary task and label embeddings (one step
  each), training-set mixing of the baseline's and the label-embedding model's
  checkpoints and paraphrase mixing of the latter, the document's Table 2/3 numbers,
  and Figs. 3-8. The paraphrase file maps every text to itself, so that row must
  reproduce the label-embedding model's test metrics exactly (the document's
  self-mixing check, through the binary, on the label positions)."""
  texts = {}
  for name in ("dev.tsv", "test.tsv"):
    with open(smoke["data"] / "goemotions" / name, newline="", encoding="utf-8") as f:
      texts.update((row[0], None) for row in csv.reader(f, delimiter="\t") if row)
  paraphrases = tmp_path / "paraphrases.tsv"
  paraphrases.write_text("text\tparaphrase\n" + "".join(f"{t}\t{t}\n" for t in texts),
                         encoding="utf-8")
  rows = "baseline_4,aux_senti,labelemb_10,mix_train_4,mix_train_labelemb,mix_t5_labelemb"
  out = _run(smoke, "goemotions_methods", f"--rows={rows}", "--seeds=0",
             "--max_steps_per_epoch=1", f"--paraphrase_file={paraphrases}")
  assert "3 runs, 0 already finished, 3 to run" in out
  base = smoke["root"] / "goemotions_multilabel"
  results = {row: _run_results(base / row / "ce" / "seed0") for row in rows.split(",")}
  configs = {row: json.loads((base / row / "ce" / "seed0" / "config.json").read_text())["config"]
             for row in ("baseline_4", "aux_senti", "labelemb_10")}
  assert configs["aux_senti"]["aux_task"] == "sentiment" and results["aux_senti"]["aux"]
  assert configs["labelemb_10"]["label_embeddings"]
  assert configs["labelemb_10"]["label_text_tokens"] == 50
  assert configs["baseline_4"]["thresholds"] == 0.3 and configs["baseline_4"]["head"] == "dense1"
  assert configs["baseline_4"]["texts_per_batch"] == 16
  # Self-mixing: the same predictions, so every thresholded metric is equal; the mean
  # BCE of the probabilities only to rounding (w h + (1 - w) h is h to within an ulp).
  mixed, plain = results["mix_t5_labelemb"]["test"], results["labelemb_10"]["test"]
  assert {k: v for k, v in mixed.items() if k != "loss"} == {
      k: v for k, v in plain.items() if k != "loss"}
  assert mixed["loss"] == pytest.approx(plain["loss"], rel=1e-9)
  assert results["mix_train_4"]["source"] == "goemotions_multilabel/baseline_4/ce/seed0"
  train_texts = set(_train_texts(smoke["data"]))
  assert set(results["mix_train_labelemb"]["candidates"]["test"]) <= train_texts
  report_dir = smoke["root"] / "reports" / "goemotions_methods"
  cells = _cells(report_dir)
  for row, document in (("baseline_4", 47.0), ("aux_senti", 51.3), ("labelemb_10", 53.7),
                        ("mix_train_4", 47.2), ("mix_t5_labelemb", 52.8)):
    cell = cells[("test", row, "macro_f1")]
    assert cell["paper"] == document
    assert cell["values"] == {"0": pytest.approx(100 * results[row]["test"]["macro_f1"])}
  assert cells[("test", "mix_train_labelemb", "macro_f1")]["paper"] is None  # beyond
  report = (report_dir / "report.md").read_text()
  assert "Table 3" in report and "3.44e-17" in report and "0.00833" in report
  figures = report_dir / "figures"
  for name in ("fig3_per_class_f1", "fig4_train_counts", "fig5_macro_f1_by_step",
               "fig6_label_emb_attention", "fig7_label_emb_layers", "fig8_baseline_last_layer"):
    assert (figures / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert (figures / f"{name}.csv").stat().st_size > 0, name
  # Fig. 6's tokens are the label-embedding model's rows: the label block comes first.
  fig6 = list(csv.DictReader((figures / "fig6_label_emb_attention.csv").open()))
  assert fig6[1]["key_token"] == "admiration"
  steps = [json.loads(line) for line in
           (base / "labelemb_10" / "ce" / "seed0" / "metrics.jsonl").read_text().splitlines()]
  steps = [r for r in steps if r.get("kind") == "step_eval"]
  curve = [r for r in csv.DictReader((figures / "fig5_macro_f1_by_step.csv").open())
           if r["row"] == "labelemb_10"]
  assert steps and [(int(r["step"]), float(r["test_macro_f1"])) for r in curve] == [
      (s["step"], pytest.approx(s["eval"]["test"]["macro_f1"], abs=1e-6)) for s in steps]


def _train_texts(data_dir):
  with open(data_dir / "goemotions" / "train.tsv", newline="", encoding="utf-8") as f:
    return [row[0] for row in csv.reader(f, delimiter="\t") if row]
