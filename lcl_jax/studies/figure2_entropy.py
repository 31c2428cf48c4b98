"""Figure 2: average entropy of the top-k normalised prediction scores (Eq. 7).

For each run, the best-epoch probabilities saved by the trainer
(`predictions/best_<split>.npz`, array `probabilities [N, C]`) give one curve
`H(k), k = 2..C` through :func:`lcl_jax.metrics.topk_entropy_curve_bits`: per example,
the k largest scores renormalised to sum to one, their entropy in **bits** (log base 2,
as Eq. 7), averaged over examples. A
lower curve means a more differentiated output distribution (the paper's claim for
LCL). Curves are averaged over seeds (mean and sample sd per k) and plotted per
dataset, one line per objective, with a band of +- 1 sd.
"""
from __future__ import annotations

import dataclasses
import csv
import io
import os
import pathlib
from typing import Mapping, Sequence

import numpy as np


@dataclasses.dataclass
class Curve:
  """Mean and sample sd over seeds of H(k) in bits for k = `ks`."""
  ks: np.ndarray          # int [K]
  mean: np.ndarray        # float [K], bits
  sd: np.ndarray          # float [K], bits (NaN with one seed)
  per_seed: dict[int, np.ndarray]

  @property
  def n(self) -> int:
    return len(self.per_seed)

  def as_dict(self) -> dict:
    return {"k": self.ks.tolist(), "mean": self.mean.tolist(), "sd": self.sd.tolist(),
            "n": self.n, "per_seed": {str(s): v.tolist() for s, v in sorted(self.per_seed.items())}}


def predictions_path(run_dir: str | os.PathLike, split: str) -> pathlib.Path:
  return pathlib.Path(run_dir) / "predictions" / f"best_{split}.npz"


def run_curve(run_dir: str | os.PathLike, *, split: str = "test",
              array: str = "probabilities") -> np.ndarray:
  """H(k) in bits for k = 2..C of one finished run: float64 `[C - 1]`."""
  from lcl_jax import metrics  # pylint: disable=g-import-not-at-top

  path = predictions_path(run_dir, split)
  if not path.is_file():
    raise FileNotFoundError(f"{path} not found: the run has not finished an epoch yet, "
                            "or its files were moved or deleted")
  with np.load(path) as data:
    if array not in data:
      raise KeyError(f"{path} has no array {array!r} (has {sorted(data.files)})")
    probabilities = np.asarray(data[array], dtype=np.float64)
  if probabilities.ndim != 2 or probabilities.shape[1] < 2:
    raise ValueError(f"{path}: {array} must be [N, C >= 2]; got {probabilities.shape}")
  curve = np.asarray(metrics.topk_entropy_curve_bits(probabilities), dtype=np.float64)
  if curve.shape != (probabilities.shape[1] - 1,):
    raise ValueError(f"topk_entropy_curve_bits returned shape {curve.shape}; expected "
                     f"({probabilities.shape[1] - 1},) for k = 2..{probabilities.shape[1]}")
  return curve


def aggregate(per_seed: Mapping[int, np.ndarray]) -> Curve:
  """Mean and sample sd over seeds of curves of equal length (k = 2..C)."""
  if not per_seed:
    raise ValueError("no curves to aggregate")
  seeds = sorted(per_seed)
  stacked = np.stack([np.asarray(per_seed[s], dtype=np.float64) for s in seeds])
  sd = stacked.std(axis=0, ddof=1) if len(seeds) > 1 else np.full(stacked.shape[1], np.nan)
  ks = np.arange(2, stacked.shape[1] + 2)
  return Curve(ks, stacked.mean(axis=0), sd, {s: stacked[i] for i, s in enumerate(seeds)})


def curves_csv(curves: Mapping[str, Mapping[str, Curve]]) -> str:
  """dataset, method, k, mean_entropy_bits, sd_bits, n -- one row per point."""
  buf = io.StringIO()
  writer = csv.writer(buf, lineterminator="\n")
  writer.writerow(["dataset", "method", "k", "mean_entropy_bits", "sd_bits", "n"])
  for dataset, by_method in curves.items():
    for method, curve in by_method.items():
      for k, m, s in zip(curve.ks, curve.mean, curve.sd):
        writer.writerow([dataset, method, int(k), f"{m:.6g}", "" if np.isnan(s) else f"{s:.6g}",
                         curve.n])
  return buf.getvalue()


def plot(curves: Mapping[str, Mapping[str, Curve]], path: str | os.PathLike, *,
         dataset_labels: Mapping[str, str] | None = None,
         method_labels: Mapping[str, str] | None = None,
         title: str | None = None, methods: Sequence[str] | None = None) -> pathlib.Path:
  """One panel per dataset (H(k) against k, a line per method, +-1 sd band) as a PNG."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  from matplotlib import ticker  # pylint: disable=g-import-not-at-top

  datasets = [d for d in curves if curves[d]]
  if not datasets:
    raise ValueError("nothing to plot: no curves")
  dataset_labels = dataset_labels or {}
  method_labels = method_labels or {}
  fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 3.6), squeeze=False)
  for ax, dataset in zip(axes[0], datasets):
    order = [m for m in (methods or curves[dataset]) if m in curves[dataset]]
    for method in order:
      curve = curves[dataset][method]
      label = f"{method_labels.get(method, method)} (n={curve.n})"
      (line,) = ax.plot(curve.ks, curve.mean, marker="o", markersize=3, label=label)
      if curve.n > 1:
        ax.fill_between(curve.ks, curve.mean - curve.sd, curve.mean + curve.sd,
                        color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_title(dataset_labels.get(dataset, dataset))
    ax.set_xlabel("k (top-k scores)")
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.set_ylabel("average entropy (bits)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return path
