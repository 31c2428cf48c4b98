"""The pictures of a finished run: training curves, validation per epoch, confusion matrix.

`write_run_plots(workdir, history, label_names, multilabel)` writes into
`<workdir>/plots/` (PNG, matplotlib's Agg renderer, no pyplot state, atomic writes):

* `training_curves.png` -- the training loss and the learning rate per step (from the
  `kind=train` records of metrics.jsonl, logged every `log_every_steps` steps;
  a resumed run's repeated steps keep their last record);
* `validation.png` -- validation accuracy and weighted / macro F1 per epoch (multi-label:
  micro / macro F1) of Φ, and of Ψ (LCL's weighting network, dashed) when present;
* `confusion_test.png` -- the confusion matrix of the best-validation epoch on test,
  normalised per true class (rows sum to 1; `sklearn.metrics.confusion_matrix(...,
  normalize='true')`), with the label names. Not drawn for multi-label runs (a
  confusion matrix is not defined for label sets).

Cheap: 7.7 s for all three (matplotlib import included) on the shared 2-core box at load ~17.
"""
from __future__ import annotations

import io
import json
import pathlib
from typing import Any, Sequence

import numpy as np

from lcl_jax.train.checkpoint import write_atomic

PLOTS_DIR = "plots"


def _figure(width: float, height: float):
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _save(fig, path: pathlib.Path) -> None:
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png")
  write_atomic(path, buffer.getvalue())


def train_records(metrics_path: pathlib.Path) -> list[dict[str, Any]]:
  """The `kind=train` records of metrics.jsonl, one per step (last wins), by step."""
  by_step: dict[int, dict[str, Any]] = {}
  if metrics_path.is_file():
    for line in metrics_path.read_text(encoding="utf-8").splitlines():
      if not line.strip():
        continue
      try:
        record = json.loads(line)
      except json.JSONDecodeError:
        continue  # a line cut by a kill; the curve just misses that point
      if record.get("kind") == "train" and "step" in record:
        by_step[int(record["step"])] = record
  return [by_step[s] for s in sorted(by_step)]


def plot_training_curves(records: Sequence[dict[str, Any]], path: pathlib.Path) -> None:
  """Loss and learning rate against the training step."""
  fig = _figure(9, 3.2)
  loss_ax, lr_ax = fig.subplots(1, 2)
  steps = [r["step"] for r in records]
  loss_ax.plot(steps, [r.get("loss", np.nan) for r in records], marker=".", color="C0")
  loss_ax.set(title="training loss", xlabel="step", ylabel="loss")
  lr_ax.plot(steps, [r.get("learning_rate", np.nan) for r in records], marker=".", color="C1")
  lr_ax.set(title="learning rate", xlabel="step", ylabel="learning rate")
  lr_ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
  for ax in (loss_ax, lr_ax):
    ax.grid(alpha=0.3)
  _save(fig, path)


def plot_validation(history: Sequence[dict[str, Any]], path: pathlib.Path, *,
                    multilabel: bool, best_epoch: int | None = None) -> None:
  """Validation metrics per epoch, Φ solid and Ψ dashed, in %."""
  names = ("micro_f1", "macro_f1") if multilabel else ("accuracy", "weighted_f1", "macro_f1")
  epochs = [h["epoch"] for h in history]
  fig = _figure(7.5, 3.6)
  ax = fig.subplots()
  for i, name in enumerate(names):
    for prefix, style, who in (("", "-", "Φ"), ("weighting_", "--", "Ψ")):
      values = [h["validation"].get(prefix + name) for h in history]
      if all(v is None for v in values):
        continue
      # Distinct markers and sizes: equal curves (weighted = macro F1 on balanced
      # classes) stay visible.
      ax.plot(epochs, [np.nan if v is None else 100 * v for v in values], style,
              marker="os^"[i], markersize=8 - 2 * i, color=f"C{i}",
              label=f"{who} {name.replace('_', ' ')}")
  if best_epoch is not None:
    ax.axvline(best_epoch, color="grey", alpha=0.4, label=f"best epoch ({best_epoch})")
  ax.set(title="validation", xlabel="epoch", ylabel="%")
  ax.set_xticks(epochs)
  ax.grid(alpha=0.3)
  ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
  _save(fig, path)


def plot_confusion(labels: np.ndarray, predictions: np.ndarray, label_names: Sequence[str],
                   path: pathlib.Path, *, title: str) -> np.ndarray:
  """The row-normalised confusion matrix (true class rows); returns it ([C, C] float)."""
  from sklearn.metrics import confusion_matrix  # pylint: disable=g-import-not-at-top

  num_classes = len(label_names)
  with np.errstate(invalid="ignore", divide="ignore"):
    matrix = confusion_matrix(labels, predictions, labels=np.arange(num_classes),
                              normalize="true")
  size = max(4.0, 0.35 * num_classes + 2.5)
  fig = _figure(size + 1.0, size)
  ax = fig.subplots()
  image = ax.imshow(matrix, vmin=0.0, vmax=1.0, cmap="Blues")
  fig.colorbar(image, ax=ax, fraction=0.046, label="fraction of the true class")
  ticks = np.arange(num_classes)
  ax.set_xticks(ticks, labels=label_names, rotation=90, fontsize="small")
  ax.set_yticks(ticks, labels=label_names, fontsize="small")
  ax.set(title=title, xlabel="predicted", ylabel="true")
  if num_classes <= 12:
    for i in range(num_classes):
      for j in range(num_classes):
        ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize="x-small",
                color="white" if matrix[i, j] > 0.5 else "black")
  _save(fig, path)
  return matrix


def write_run_plots(workdir: str | pathlib.Path, *, history: Sequence[dict[str, Any]],
                    label_names: Sequence[str], multilabel: bool,
                    best_epoch: int | None) -> dict[str, str]:
  """Writes the run's plots; returns {name: path relative to the workdir}."""
  workdir = pathlib.Path(workdir)
  out = workdir / PLOTS_DIR
  written = {}
  records = train_records(workdir / "metrics.jsonl")
  if records:
    plot_training_curves(records, out / "training_curves.png")
    written["training_curves"] = f"{PLOTS_DIR}/training_curves.png"
  if history:
    plot_validation(history, out / "validation.png", multilabel=multilabel,
                    best_epoch=best_epoch)
    written["validation"] = f"{PLOTS_DIR}/validation.png"
  predictions_path = workdir / "predictions" / "best_test.npz"
  if not multilabel and predictions_path.is_file():
    with np.load(predictions_path) as arrays:
      plot_confusion(arrays["labels"], arrays["predictions"], label_names,
                     out / "confusion_test.png",
                     title=f"test, best epoch ({best_epoch}), Φ; rows normalised")
    written["confusion_test"] = f"{PLOTS_DIR}/confusion_test.png"
  return written


def plot_attention_map(probs: np.ndarray, tokens: Sequence[str], path: str | pathlib.Path, *,
                       layers: Sequence[int], heads: Sequence[int],
                       title: str = "") -> dict[str, str]:
  """Attention maps of one example (seed 004's Figures 6-8): one panel per (layer, head).

  Args:
    probs: float [len(layers), len(heads), T, T] attention probabilities (query rows,
      key columns; `lcl_jax.models.encoder.attention_probabilities`).
    tokens: the T token strings, on both axes (keys along x, queries along y).
    path: the PNG; the matrices go to the same name with ``.csv`` (long format:
      layer, head, query_index, query_token, key_index, key_token, probability).
    layers, heads: the 0-based layer / head indices of the panels.
    title: figure title.

  Returns:
    ``{'png': path, 'csv': path}``.

  Raises:
    ValueError: shapes that do not match ``layers``, ``heads`` and ``tokens``.
  """
  probs = np.asarray(probs, np.float64)
  count = len(tokens)
  if probs.shape != (len(layers), len(heads), count, count):
    raise ValueError(f"plot_attention_map: probs {probs.shape}; expected "
                     f"{(len(layers), len(heads), count, count)} (layers, heads, tokens, tokens)")
  path = pathlib.Path(path)
  side = max(2.5, 0.22 * count + 1.2)
  rows, cols = len(layers), len(heads)
  fig = _figure(side * cols + 0.8, side * rows + (0.4 if title else 0.0))
  axes = np.asarray(fig.subplots(rows, cols, squeeze=False))
  ticks = np.arange(count)
  image = None
  for r, layer in enumerate(layers):
    for c, head in enumerate(heads):
      ax = axes[r, c]
      image = ax.imshow(probs[r, c], vmin=0.0, vmax=1.0, cmap="viridis")
      ax.set_xticks(ticks, labels=tokens, rotation=90, fontsize="x-small")
      ax.set_yticks(ticks, labels=tokens, fontsize="x-small")
      ax.set_title(f"layer {layer}, head {head}", fontsize="small")
  if title:
    fig.suptitle(title)
  fig.colorbar(image, ax=axes.ravel().tolist(), fraction=0.03, label="attention probability")
  _save(fig, path)
  buffer = io.StringIO()
  import csv  # pylint: disable=g-import-not-at-top
  writer = csv.writer(buffer, lineterminator="\n")
  writer.writerow(["layer", "head", "query_index", "query_token", "key_index", "key_token",
                   "probability"])
  for r, layer in enumerate(layers):
    for c, head in enumerate(heads):
      for q in range(count):
        for k in range(count):
          writer.writerow([layer, head, q, tokens[q], k, tokens[k], f"{probs[r, c, q, k]:.6g}"])
  csv_path = path.with_suffix(".csv")
  write_atomic(csv_path, buffer.getvalue())
  return {"png": str(path), "csv": str(csv_path)}
