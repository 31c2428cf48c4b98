"""Evaluation: logits of a compiled eval step in example order, probabilities, the metrics
the runs report, and the decisions of a multi-label run (global and per-class thresholds).

The trainer's, the predictor's and embedding mixing's one evaluation path (`evaluate_logits`
+ `probabilities` + `split_metrics`); `evaluate` is one split of a run (the loop's per-epoch
and per-step evaluation), as the module-level `evaluate` of the flax examples.
"""
from __future__ import annotations

import pathlib
from typing import Any

import numpy as np

from lcl_jax import metrics as metrics_lib
from lcl_jax import thresholds as thresholds_lib
from lcl_jax.train import checkpoint as checkpoint_lib
from lcl_jax.train.config import TrainConfig


def selection_metric(multilabel: bool) -> str:
  return "macro_f1" if multilabel else "accuracy"


def improves(progress: dict[str, Any], value: float, validation_loss: float) -> bool:
  """Whether an epoch with selection metric `value` and validation cross-entropy
  `validation_loss` beats the best epoch so far: a higher metric, or the same metric
  and a lower validation loss (e.g. macro F1 0.0 in two early epochs of a rare-label
  multi-label run: the later, better-fitted epoch is kept)."""
  best = progress["best_value"]
  if best is None or value > best:
    return True
  if value < best:
    return False
  best_record = next(h for h in progress["history"] if h["epoch"] == progress["best_epoch"])
  return validation_loss < best_record["validation"]["loss"]


def probabilities(logits: np.ndarray, multilabel: bool) -> np.ndarray:
  """Class probabilities (float64 [N, C]) from logits [N, C]: softmax, or per-class
  sigmoid for a multi-label dataset."""
  logits = logits.astype(np.float64)
  if multilabel:
    return 1.0 / (1.0 + np.exp(-logits))
  logits = logits - logits.max(axis=-1, keepdims=True)
  e = np.exp(logits)
  return e / e.sum(axis=-1, keepdims=True)


def mean_loss(labels: np.ndarray, probs: np.ndarray, multilabel: bool) -> float:
  """Mean cross-entropy (nats per example; multi-label: binary CE averaged over classes)."""
  p = np.clip(probs.astype(np.float64), 1e-12, 1.0 - 1e-12)
  if multilabel:
    y = np.asarray(labels, np.float64)
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log1p(-p)))
  return float(-np.mean(np.log(p[np.arange(len(labels)), np.asarray(labels)])))


def split_metrics(labels: np.ndarray, probs: np.ndarray, *, multilabel: bool,
                  thresholds: np.ndarray | float) -> tuple[dict[str, float], np.ndarray]:
  """The metrics the runs report (fractions) and the predictions they are computed from.

  Single-label: argmax -> accuracy, weighted/macro F1 (`metrics.classification_metrics`);
  multi-label: `probs >= thresholds` (per class) -> `metrics.multilabel_metrics`.
  """
  num_classes = probs.shape[-1]
  if multilabel:
    predictions = (probs >= np.asarray(thresholds)).astype(np.int32)
    m = metrics_lib.multilabel_metrics(labels, predictions)
  else:
    predictions = probs.argmax(axis=-1).astype(np.int32)
    m = metrics_lib.classification_metrics(labels, predictions, num_classes=num_classes)
  m["loss"] = mean_loss(labels, probs, multilabel)  # early stopping on validation loss
  return m, predictions


def evaluate_logits(eval_step, dp, params, batches, num_examples: int, *,
                    what: str = "evaluation") -> dict[str, np.ndarray]:
  """Runs the compiled eval step over `batches`; the trainer's (and predict's) only eval path.

  Returns `{'logits': [N, C][, 'weight_logits': [N, C]]}` float32 in example order
  (`example_index` puts back the rows of every device and host; padding rows dropped).

  Raises:
    AssertionError: the batches did not cover every example exactly once.
  """
  collected: dict[str, list] = {}
  indices = []
  for batch in batches:
    out = dp.fetch_rows(eval_step(params, dp.put_batch(batch)))
    example_index = out.pop("example_index")
    keep = example_index >= 0
    indices.append(example_index[keep])
    for name, value in out.items():
      collected.setdefault(name, []).append(value[keep])
  order = np.concatenate(indices) if indices else np.zeros(0, np.int64)
  if sorted(order.tolist()) != list(range(num_examples)):
    raise AssertionError(f"{what} did not cover every example once")
  inverse = np.argsort(order)
  return {name: np.concatenate(chunks)[inverse] for name, chunks in collected.items()}


def evaluate(eval_step, dp, params, split, *, name: str, multilabel: bool,
             thresholds: np.ndarray | float,
             aux_threshold: float) -> tuple[dict[str, float], dict[str, np.ndarray]]:
  """Evaluates `params` on one split (`data_pipeline.PreparedData.eval_split(name)`): the
  metrics of Φ (and Ψ, prefixed 'weighting_'; the auxiliary head's under 'aux') and the
  arrays saved with the best epoch's predictions (labels, probabilities, predictions,
  optionally features)."""
  outputs = evaluate_logits(eval_step, dp, params, split.batches(), split.num_examples,
                            what=f"evaluation on {name}")
  result_metrics: dict[str, float] = {}
  arrays: dict[str, np.ndarray] = {"labels": split.labels}
  if "features" in outputs:  # Φ's [CLS] vectors, saved with the predictions
    arrays["features"] = outputs.pop("features")
  aux_logits = outputs.pop("aux_logits", None)
  if aux_logits is not None:  # seed 004's auxiliary head: metrics under "aux"
    probs = probabilities(aux_logits, True)
    result_metrics["aux"], predictions = split_metrics(
        split.aux_labels, probs, multilabel=True, thresholds=aux_threshold)
    arrays.update(aux_labels=split.aux_labels, aux_probabilities=probs.astype(np.float32),
                  aux_predictions=predictions)
  for output_name, values in outputs.items():
    probs = probabilities(values, multilabel)
    m, predictions = split_metrics(split.labels, probs, multilabel=multilabel,
                                   thresholds=thresholds)
    prefix = "" if output_name == "logits" else "weighting_"
    result_metrics.update({prefix + k: v for k, v in m.items()})
    arrays[prefix + "probabilities"] = probs.astype(np.float32)
    arrays[prefix + "predictions"] = predictions
  return result_metrics, arrays


class _RunScores:
  """Labels and Φ's probabilities of a finished run's splits, read lazily per split
  (`thresholds.ScoreSource`): validation/test from predictions/best_*.npz, train from
  an evaluation of the best params."""

  def __init__(self, workdir: pathlib.Path, train_arrays: dict[str, np.ndarray] | None):
    self._workdir, self._train = workdir, train_arrays

  def split_scores(self, name: str) -> tuple[np.ndarray, np.ndarray]:
    if name == "train":
      if self._train is None:
        raise ValueError("train-split scores were not computed (threshold_fit != 'train')")
      arrays = self._train
    else:
      arrays = np.load(self._workdir / "predictions" / f"best_{name}.npz")
    return np.asarray(arrays["labels"]), np.asarray(arrays["probabilities"], np.float64)


def _per_class_record(labels, predictions, label_names) -> dict[str, Any]:
  per_class = metrics_lib.per_class_metrics(labels, predictions)
  return {"labels": list(label_names),
          **{k: per_class[k].tolist() for k in ("precision", "recall", "f1", "support")},
          "std": per_class["std"]}


def multilabel_decisions(workdir: pathlib.Path, cfg: TrainConfig, label_names,
                          global_thresholds: np.ndarray, *,
                          train_arrays: dict[str, np.ndarray] | None) -> dict[str, Any]:
  """Per-class test metrics under the global thresholds and, unless threshold_fit is
  'none', per-class thresholds fitted on the fitting split (never test) and applied to
  validation and test; writes <workdir>/thresholds.json."""
  scores = _RunScores(workdir, train_arrays)
  out: dict[str, Any] = {}
  test_labels, test_probs = scores.split_scores("test")
  out["per_class_test"] = {"global": _per_class_record(
      test_labels, thresholds_lib.apply_thresholds(test_probs, global_thresholds), label_names)}
  if cfg.threshold_fit == "none":
    return out
  # Fitted on the fitting split alone; test is only read above/below to apply them.
  fitted = thresholds_lib.fit_thresholds(scores, fit_split=cfg.threshold_fit,
                                         default=float(np.mean(global_thresholds)))
  record: dict[str, Any] = {"fit_split": cfg.threshold_fit, "thresholds": fitted.tolist()}
  for split in ("validation", "test"):
    labels, probs = scores.split_scores(split)
    record[split] = metrics_lib.multilabel_metrics(
        labels, thresholds_lib.apply_thresholds(probs, fitted))
  out["per_class_test"]["per_class_thresholds"] = _per_class_record(
      test_labels, thresholds_lib.apply_thresholds(test_probs, fitted), label_names)
  out["per_class_thresholds"] = record
  checkpoint_lib.write_json_atomic(workdir / "thresholds.json", {
      "fit_split": cfg.threshold_fit,
      "candidates": [float(thresholds_lib.DEFAULT_CANDIDATES[0]),
                     float(thresholds_lib.DEFAULT_CANDIDATES[-1]),
                     len(thresholds_lib.DEFAULT_CANDIDATES)],
      "global": np.asarray(global_thresholds).tolist(),
      "labels": list(label_names),
      "per_class": fitted.tolist(),
  })
  return out


def decision_thresholds(results: dict[str, Any], configured) -> list[float]:
  """The per-class thresholds fitted after training when there are any, else the config's."""
  fitted = (results.get("per_class_thresholds") or {}).get("thresholds")
  return list(fitted) if fitted is not None else np.asarray(configured).tolist()


def fmt(m: dict[str, float]) -> str:
  keys = [k for k in ("accuracy", "weighted_f1", "macro_f1", "micro_f1") if k in m]
  return " ".join(f"{k}={m[k]:.4f}" for k in keys)
