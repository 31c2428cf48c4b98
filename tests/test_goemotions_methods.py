"""Seed 004's study (issue 10 items 6-7): evaluations every N steps in the trainer, and
the rows, report and figures of `lcl_jax.studies.goemotions_methods`.

The binary itself runs in --smoke mode in tests/test_experiment_binaries.py.
"""
import json
import shutil

import numpy as np
import pytest

from lcl_jax.train import trainer
from lcl_jax.train.config import TrainConfig


def _step_config(tiny_bert_dir, data_dir, workdir, **overrides):
  values = dict(dataset="goemotions_multilabel", objective="ce", encoder=str(tiny_bert_dir),
                data_dir=str(data_dir), workdir=str(workdir), seed=1, epochs=2,
                max_steps_per_epoch=3, max_train_examples=48, max_eval_examples=16,
                texts_per_batch=8, eval_batch_size=16, max_length=16, length_buckets=(16,),
                learning_rate=1e-3, lr_schedule="constant", baseline_views="texts",
                thresholds=0.3, threshold_fit="none", checkpoint_every_steps=100,
                log_every_steps=1, progress_bar=False)
  values.update(overrides)
  return TrainConfig(**values)


def _records(workdir, kind):
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  return [r for r in map(json.loads, lines) if r.get("kind") == kind]


def test_eval_every_steps_records_the_params_of_that_step(tiny_bert_dir, data_dir, tmp_path):
  """Steps 2 and 4 are mid-epoch, step 6 ends epoch 2. With a constant rate the params
  after 2 steps are those a 2-step run ends with, so A's step-2 record must equal B's
  epoch evaluation; A's step-6 record is its epoch-2 evaluation; selection is per epoch."""
  a = trainer.train(_step_config(tiny_bert_dir, data_dir, tmp_path / "a", eval_every_steps=2))
  b = trainer.train(_step_config(tiny_bert_dir, data_dir, tmp_path / "b", epochs=1,
                                 max_steps_per_epoch=2))
  steps = _records(tmp_path / "a", "step_eval")
  assert [r["step"] for r in steps] == [2, 4, 6]
  assert [r["epoch"] for r in steps] == pytest.approx([2 / 3, 4 / 3, 2.0])
  for split in ("validation", "test"):
    assert steps[0]["eval"][split] == pytest.approx(b["history"][0][split], rel=1e-6)
    assert steps[2]["eval"][split] == pytest.approx(a["history"][1][split], rel=1e-12)
  # Mid-epoch parameters differ from the epoch-end ones (the record is not a copy).
  assert steps[1]["eval"]["validation"]["loss"] != steps[2]["eval"]["validation"]["loss"]
  assert not _records(tmp_path / "b", "step_eval")
  assert [h["epoch"] for h in a["history"]] == [1, 2] and a["steps"] == 6
  assert len(_records(tmp_path / "a", "eval")) == 2
  # Resume-safe: a resume from step 4 drops the later (replayed) records, keeps 2 and 4.
  copy = tmp_path / "copy"
  copy.mkdir()
  shutil.copy(tmp_path / "a" / "metrics.jsonl", copy / "metrics.jsonl")
  trainer._truncate_metrics(copy / "metrics.jsonl", 4)
  assert [r["step"] for r in _records(copy, "step_eval")] == [2, 4]
  # The field is resume-exempt (records only): a finished run is returned as it is.
  again = trainer.train(_step_config(tiny_bert_dir, data_dir, tmp_path / "a"))
  assert again == json.loads((tmp_path / "a" / "results.json").read_text())
  assert np.isfinite(steps[0]["eval"]["test"]["macro_f1"])


# --- lcl_jax.studies.goemotions_methods (no training) ------------------------------------------

from lcl_jax.studies import goemotions_methods as methods  # noqa: E402


def test_rows_carry_the_documents_table2_and_presets():
  # Seed 004's Table 2, typed from the document (fractions there, % here).
  document = {"baseline_4": 47.0, "baseline_10": 50.6, "aux_ekman": 51.0, "aux_senti": 51.3,
              "labelemb_4": 53.7, "labelemb_10": 53.7, "labelemb_aux_senti": 53.0,
              "mix_train_4": 47.2, "mix_train_10": 47.2, "mix_t5_4": 48.9, "mix_t5_10": 51.3,
              "mix_t5_aux": 48.9, "mix_t5_labelemb": 52.8}
  assert {k: methods.ROWS[k].document for k in methods.DOCUMENT_ROWS} == document
  assert methods.paper_lookup("test", "labelemb_10", "macro_f1") == 53.7
  assert methods.paper_lookup("test", "labelemb_10", "micro_f1") is None
  assert methods.paper_lookup("test", "mix_train_labelemb", "macro_f1") is None  # beyond
  fields = methods.row_fields(methods.ROWS["labelemb_aux_senti"], explicit=set(), smoke=False)
  assert fields["texts_per_batch"] == 16 and fields["learning_rate"] == 5e-5
  assert fields["thresholds"] == 0.3 and fields["epochs"] == 10
  assert fields["label_embeddings"] is True and fields["label_text_tokens"] == 50
  assert fields["head"] == "paper"  # the label-attention head replaces the baseline's
  assert fields["aux_task"] == "sentiment" and fields["aux_weight_start"] == 0.8
  assert fields["eval_every_steps"] == 1000 and fields["baseline_views"] == "texts"
  baseline = methods.row_fields(methods.ROWS["baseline_4"], explicit={"epochs", "thresholds"},
                                smoke=False)
  assert "epochs" not in baseline and "thresholds" not in baseline  # the flags win
  assert "aux_task" not in baseline and "label_embeddings" not in baseline
  smoke = methods.row_fields(methods.ROWS["baseline_10"], explicit=set(), smoke=True)
  assert "epochs" not in smoke and smoke["eval_every_steps"] == 1
  with pytest.raises(ValueError, match="mixing row"):
    methods.row_fields(methods.ROWS["mix_train_4"], explicit=set(), smoke=False)
  assert methods.trained_rows(["mix_t5_labelemb", "mix_train_4", "baseline_4"]) == [
      "labelemb_10", "baseline_4"]


def test_mix_jobs_reuse_the_source_run_and_refuse_other_settings(tmp_path):
  base = TrainConfig(dataset="goemotions_multilabel", objective="ce")
  specs = methods.make_specs(tmp_path, base, ["mix_train_4"], [0, 1], explicit=set(),
                             smoke=False)
  assert [s.key for s in specs] == ["goemotions_multilabel/baseline_4/ce/seed0",
                                    "goemotions_multilabel/baseline_4/ce/seed1"]
  options = dict(weight=0.92, similarity="cosine", paraphrase_file=None, t5_checkpoint=None)
  jobs, skipped = methods.make_mix_jobs(tmp_path, specs, ["mix_train_4", "mix_t5_4"], **options)
  assert [j.key for j in jobs] == ["goemotions_multilabel/mix_train_4/ce/seed0",
                                   "goemotions_multilabel/mix_train_4/ce/seed1"]
  assert list(skipped) == ["mix_t5_4"] and "--paraphrase_file" in skipped["mix_t5_4"]
  assert jobs[0].source is specs[0] and jobs[0].settings["embed_mix"] == "train"
  with_file = methods.mix_settings("t5", weight=0.9, similarity="cosine",
                                   paraphrase_file="p.tsv", t5_checkpoint="t5")
  assert with_file["embed_mix"] == "paraphrase" and with_file["paraphrase_file"] == "p.tsv"
  calls = []

  def fake(source, settings):
    calls.append(source.key)
    return {"seed": source.config.seed, "source": source.key, "mixed": dict(settings),
            "test": {"macro_f1": 0.25}}

  finished = {specs[0].key: {}}  # seed 1's source has not finished: its job waits
  results, failed = methods.run_mix_jobs(jobs, compute=True, evaluate=fake,
                                         source_results=finished)
  assert list(results) == [jobs[0].key] and not failed and calls == [specs[0].key]
  again, _ = methods.run_mix_jobs(jobs, compute=True, evaluate=fake, source_results=finished)
  assert again == results and calls == [specs[0].key]  # read back, not recomputed
  other, _ = methods.make_mix_jobs(tmp_path, specs, ["mix_train_4"], **{**options,
                                                                       "weight": 0.5})
  with pytest.raises(ValueError, match="other settings"):
    methods.run_mix_jobs(other, compute=False, evaluate=fake, source_results=finished)
  cells = methods.observations(results)
  assert [(o.column, o.method, o.seed) for o in cells] == [("test", "mix_train_4", 0)]


def test_figures_4_and_5_from_the_release_and_metrics_jsonl(tmp_path, data_dir):
  import csv

  # Fig. 4: label counts of the release's train.tsv, counted here from the file itself.
  expected = np.zeros(28, np.int64)
  with open(data_dir / "goemotions" / "train.tsv", newline="", encoding="utf-8") as f:
    for row in csv.reader(f, delimiter="\t"):
      if row:
        for label in set(row[1].split(",")):
          expected[int(label)] += 1
  names, full, subset = methods.train_counts(data_dir, 100)
  np.testing.assert_array_equal(full, expected)
  assert subset.sum() >= 100 and names[27] == "neutral"
  out = tmp_path / "figures"
  out.mkdir()
  methods.figure4_train_counts(out, data_dir, None)
  rows = list(csv.DictReader((out / "fig4_train_counts.csv").open()))
  assert [int(r["train"]) for r in rows] == expected.tolist()
  # Fig. 5: the step_eval records of metrics.jsonl, in step order (a replayed step once).
  run = tmp_path / "run"
  run.mkdir()
  records = [{"kind": "train", "step": 1, "loss": 1.0},
             {"kind": "step_eval", "step": 4, "eval": {"test": {"macro_f1": 0.4}}},
             {"kind": "step_eval", "step": 2, "eval": {"test": {"macro_f1": 0.2}}},
             {"kind": "eval", "step": 4, "test/macro_f1": 0.4}]
  (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
  assert methods.figure5_steps(out, [("baseline_4", "x/baseline_4/ce/seed0", run)])
  rows = list(csv.DictReader((out / "fig5_macro_f1_by_step.csv").open()))
  assert [(int(r["step"]), float(r["test_macro_f1"])) for r in rows] == [(2, 0.2), (4, 0.4)]
  assert (out / "fig5_macro_f1_by_step.png").read_bytes()[:4] == b"\x89PNG"


def test_attention_example_is_right_for_label_embeddings_and_wrong_for_the_baseline(tmp_path):
  labels = np.array([[1, 0], [0, 1], [1, 1], [0, 1]])
  for name, predictions in (("emb", [[1, 0], [0, 1], [1, 1], [1, 1]]),
                            ("base", [[1, 0], [0, 0], [1, 1], [0, 1]])):
    (tmp_path / name / "predictions").mkdir(parents=True)
    np.savez(tmp_path / name / "predictions" / "best_test.npz", labels=labels,
             predictions=np.array(predictions))
  assert methods.pick_attention_example(tmp_path / "emb", tmp_path / "base")[0] == 1
  assert methods.pick_attention_example(tmp_path / "emb", None)[0] == 0


def test_binary_refuses_a_missing_paraphrase_file_before_training(tmp_path, data_dir):
  import os
  import pathlib
  import subprocess
  import sys

  root = pathlib.Path(__file__).resolve().parents[1]
  env = {**os.environ, "PYTHONPATH": str(root)}
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.goemotions_methods", "--rows=mix_t5_4",
       f"--paraphrase_file={tmp_path / 'none.tsv'}", f"--workdir={tmp_path / 'w'}",
       f"--data_dir={data_dir}", "--encoder=minilm"],
      cwd=root, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode != 0
  assert "--paraphrase_file" in proc.stderr and "no such file" in proc.stderr
  assert not (tmp_path / "w" / "goemotions_multilabel").exists()
