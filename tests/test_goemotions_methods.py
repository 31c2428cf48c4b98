"""Seed 004's study (issue 10 items 6-7): evaluations every N steps in the trainer, and
the rows, report and figures of `lcl_jax.experiment.methods`.

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
