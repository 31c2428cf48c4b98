"""GoEmotions-28 multi-label studies (issue 9): the rows of seeds 000 and 003, their runs,
the report's columns and extra tables, and the figures.

Rows (``ROWS``, the methods of the report) name one trained model each:

* seed 000 Table 3 -- direct BCE models (``direct_bert``, ``direct_electra``): Φ with
  seed 000's direct head, objective ``ce`` (sigmoid BCE on multi-hot labels);
* seed 000 Table 4 -- LCL with encoder pairs Φ+Ψ (``lcl_bert+bert`` ...);
* seed 003's table -- BERT with DenseLayer(1)/(2) heads, linear ("Dynamic") or constant
  ("Fixed") rate, dropout, two-stage training, per-class thresholds and the
  concatenation expansion (``s003_01`` ... ``s003_11``, the poster's row order);
* beyond both -- two-stage training applied to the LCL models (``lcl_*_2stage``).

Every multi-label run reports both decision rules, so the report's two columns are
``global`` (the run's --thresholds, 0.5 by default as seed 000) and ``per_class``
(per-class thresholds fitted on --threshold_fit, validation by default); the seeds'
numbers sit in the column of the rule they used. Values are %.

Nothing here initialises JAX: the figures read the runs' saved predictions.
"""
from __future__ import annotations

import dataclasses
import pathlib
from typing import Any, Mapping, Sequence

import numpy as np

from lcl_jax.studies import paper_numbers as paper
from lcl_jax.studies import report as report_lib
from lcl_jax.studies import sweep
from lcl_jax.train.config import TrainConfig

DATASET = "goemotions_multilabel"
COLUMNS = ("global", "per_class")
COLUMN_LABELS = {"global": "global threshold", "per_class": "per-class thresholds"}
METRICS = ("macro_precision", "macro_recall", "macro_f1", "micro_f1", "weighted_f1",
           "exact_match")
TABLES = ("000_t3", "000_t4", "003", "beyond")
SENTIMENT_GROUPS = ("positive", "negative", "ambiguous", "neutral")


@dataclasses.dataclass(frozen=True)
class Row:
  """One model of the studies.

  Attributes:
    key: the row (method) key, also the run's variant folder.
    table: one of TABLES.
    label: display label (encoder roles filled in by `row_label`).
    objective: 'ce' (direct BCE) or 'lcl'.
    phi, psi: encoder roles, 'bert' or 'electra' (psi: LCL only).
    preset: 'seed000_direct', 'seed000_lcl' or 'seed003' (hyper-parameters).
    overrides: TrainConfig fields of this row (head, schedule, stages, ...).
    paper: column -> metric -> the seed's value (%).
  """
  key: str
  table: str
  label: str
  objective: str
  phi: str
  psi: str | None
  preset: str
  overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  paper: Mapping[str, Mapping[str, float | None]] = dataclasses.field(default_factory=dict)


def _seed000_rows() -> list[Row]:
  rows = [Row("direct_bert", "000_t3", "{bert} direct (BCE)", "ce", "bert", None,
              "seed000_direct", paper={"global": paper.SEED000_TABLE3["BERT_base"]}),
          Row("direct_electra", "000_t3", "{electra} direct (BCE)", "ce", "electra", None,
              "seed000_direct", paper={"global": paper.SEED000_TABLE3["ELECTRA"]})]
  for phi, psi, name in (("bert", "bert", "BERT+BERT"), ("electra", "electra", "ELECTRA+ELECTRA"),
                         ("bert", "electra", "BERT+ELECTRA"), ("electra", "bert", None)):
    rows.append(Row(f"lcl_{phi}+{psi}", "000_t4", f"LCL {{{phi}}}+{{{psi}}}", "lcl", phi, psi,
                    "seed000_lcl",
                    paper={"global": paper.SEED000_TABLE4[name]} if name else {}))
  return rows


def _seed003_rows() -> list[Row]:
  rows = []
  for row in paper.SEED003_TABLE:
    overrides = {"head": row["head"], "lr_schedule": row["lr_schedule"],
                 "classifier_dropout": row["classifier_dropout"] or 0.0,
                 "epochs": row["epochs"], "head_epochs": row["head_epochs"]}
    if row["learning_rate"] is not None:
      overrides["learning_rate"] = row["learning_rate"]
    if row["expanded"]:
      overrides["concat_expansion"] = "expansion"  # filled from --s003_expansion
    column = "per_class" if row["per_class_thresholds"] else "global"
    rows.append(Row(row["row"], "003", f"{{bert}} {row['label']} ({row['epochs']}"
                    + (f"+{row['head_epochs']} frozen" if row["head_epochs"] else "") + " ep)",
                    "ce", "bert", None, "seed003", overrides, {column: row["paper"]}))
  return rows


def _beyond_rows() -> list[Row]:
  return [Row(f"lcl_{e}+{e}_2stage", "beyond", f"LCL {{{e}}}+{{{e}}} + two-stage", "lcl", e, e,
              "seed000_lcl", {"head_epochs": "beyond_head_epochs"}) for e in ("bert", "electra")]


ROWS: dict[str, Row] = {r.key: r for r in _seed000_rows() + _seed003_rows() + _beyond_rows()}


def rows_of(tables: Sequence[str]) -> list[str]:
  return [key for key, row in ROWS.items() if row.table in tables]


def row_label(row: Row, encoder_names: Mapping[str, str]) -> str:
  return row.label.format(**encoder_names)


def preset(name: str, *, seed003_learning_rate: float) -> dict[str, Any]:
  """The seeds' hyper-parameters (seed 003: its table; the poster gives no batch size)."""
  # Direct (BCE) models train on the texts alone: neither seed augments them.
  if name == "seed000_direct":  # Φ: seed 000's direct head (dense + tanh, dropout 0.3)
    return {**paper.SEED000_DIRECT_PRESET, "head": "direct", "baseline_views": "texts"}
  if name == "seed000_lcl":  # "the same fully connection layer ... as 5.2.1" for Φ
    return {**paper.SEED000_LCL_PRESET, "head": "direct"}
  if name == "seed003":
    return {"learning_rate": seed003_learning_rate, "baseline_views": "texts"}
  raise ValueError(f"unknown preset {name!r}")


def row_config_overrides(row: Row, *, encoders: Mapping[str, str], explicit: set[str],
                         smoke: bool, seed003_learning_rate: float, expansion: int,
                         beyond_head_epochs: int) -> dict[str, Any]:
  """The TrainConfig fields of one row: preset < row < explicit flags (`explicit`
  names the flags the user gave, which win). With `smoke`, stage 2 is one epoch and
  the epochs stay the smoke setting."""
  fields = preset(row.preset, seed003_learning_rate=seed003_learning_rate)
  fields.update(row.overrides)
  if fields.get("concat_expansion") == "expansion":
    fields["concat_expansion"] = expansion
  if fields.get("head_epochs") == "beyond_head_epochs":
    fields["head_epochs"] = beyond_head_epochs
  if smoke:
    fields.pop("epochs", None)
    fields["head_epochs"] = min(int(fields.get("head_epochs", 0)), 1)
  fields = {k: v for k, v in fields.items() if k not in explicit}
  fields["encoder"] = encoders[row.phi]
  fields["weighting_encoder"] = encoders[row.psi] if row.psi else None
  return fields


def make_specs(root: pathlib.Path, base: TrainConfig, rows: Sequence[str],
               seeds: Sequence[int], **options: Any) -> list[sweep.RunSpec]:
  specs = []
  for key in rows:
    row = ROWS[key]
    fields = row_config_overrides(row, **options)
    for seed in seeds:
      specs.append(sweep.make_spec(root, base, dataset=DATASET, objective=row.objective,
                                   seed=seed, variant=key, **fields))
  return specs


def observations(specs: Sequence[sweep.RunSpec],
                 results: Mapping[str, Mapping[str, Any]]) -> list[report_lib.Observation]:
  """Two observations per finished run: its global-threshold and per-class-threshold
  test metrics (columns 'global' and 'per_class')."""
  out = []
  for spec in sweep.dedupe(specs):
    if spec.key not in results:
      continue
    r = results[spec.key]
    row = pathlib.PurePath(spec.key).parts[1]
    out.append(report_lib.Observation("global", row, spec.config.seed, r, spec.key))
    fitted = r.get("per_class_thresholds")
    if fitted:
      out.append(report_lib.Observation(
          "per_class", row, spec.config.seed,
          {**r, "validation": fitted["validation"], "test": fitted["test"]}, spec.key))
  return out


def paper_lookup(column: str, method: str, metric: str) -> float | None:
  row = ROWS.get(method)
  return None if row is None else row.paper.get(column, {}).get(metric)


REFERENCE_ROWS = {  # the seeds' rows we do not run (values: macro F1, global threshold)
    "seed 000: CharBert direct (not run: CharBERT's dual-channel model is out of scope)":
        {"global": paper.SEED000_TABLE3["CharBert"]["macro_f1"]},
    "seed 000: BERTweet direct (not run: needs a RoBERTa-family encoder)":
        {"global": paper.SEED000_TABLE3["BERTweet"]["macro_f1"]},
    "seed 000: LCL CharBert+CharBert (not run)":
        {"global": paper.SEED000_TABLE4["CharBert+CharBert"]["macro_f1"]},
    "seed 000: LCL ELECTRA+CharBert (not run)":
        {"global": paper.SEED000_TABLE4["ELECTRA+CharBert"]["macro_f1"]},
    "seed 000: LCL CharBert+ELECTRA (not run; the seed's best)":
        {"global": paper.SEED000_TABLE4["CharBert+ELECTRA"]["macro_f1"]},
}

COMPARISONS = (("lcl_bert+bert", "direct_bert"), ("lcl_electra+electra", "direct_electra"),
               ("lcl_bert+bert_2stage", "lcl_bert+bert"),
               ("lcl_electra+electra_2stage", "lcl_electra+electra"))


def comparisons(cells: Sequence[report_lib.Cell]) -> list[report_lib.Comparison]:
  """Welch (and paired) tests: each LCL model against the direct model of its Φ, and
  two-stage LCL against one-stage LCL, per column and metric."""
  out = []
  for a, b in COMPARISONS:
    out += report_lib.compare(cells, method_a=a, against=(b,))
  return out


# --------------------------------------------------------------------------------------
# Seed 000's Tables 5 and 6: per-emotion results.
# --------------------------------------------------------------------------------------


def _mean_per_class(runs: Sequence[Mapping[str, Any]], rule: str) -> dict[str, np.ndarray] | None:
  records = [r["per_class_test"][rule] for r in runs
             if rule in r.get("per_class_test", {})]
  if not records:
    return None
  return {k: np.mean([rec[k] for rec in records], axis=0)
          for k in ("precision", "recall", "f1", "support")}


def runs_by_row(specs: Sequence[sweep.RunSpec],
                results: Mapping[str, Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
  out: dict[str, list] = {}
  for spec in sweep.dedupe(specs):
    if spec.key in results:
      out.setdefault(pathlib.PurePath(spec.key).parts[1], []).append(results[spec.key])
  return out


def best_row(by_row: Mapping[str, Sequence[Mapping[str, Any]]]) -> str | None:
  """The row with the highest mean macro F1 (global threshold) on test."""
  scored = {k: np.mean([r["test"]["macro_f1"] for r in runs]) for k, runs in by_row.items()}
  return max(scored, key=scored.get) if scored else None


def table5_section(by_row, label_of, rule: str = "global") -> tuple[str, dict] | None:
  """Per-emotion P/R/F1 of the best row beside seed 000's Table 5 (CharBert+ELECTRA)."""
  best = best_row(by_row)
  if best is None:
    return None
  mean = _mean_per_class(by_row[best], rule)
  if mean is None:
    return None
  header = ["emotion", "support", "P", "R", "F1", "paper P", "paper R", "paper F1"]
  rows = []
  for i, name in enumerate(paper.GOEMOTIONS28_LABELS):
    ref = paper.SEED000_TABLE5[name]
    rows.append([name, f"{mean['support'][i]:.0f}", f"{mean['precision'][i]:.2f}",
                 f"{mean['recall'][i]:.2f}", f"{mean['f1'][i]:.2f}", f"{ref['precision']:.2f}",
                 f"{ref['recall']:.2f}", f"{ref['f1']:.2f}"])
  micro = {k: np.mean([r["test"][f"micro_{k}"] for r in by_row[best]])
           for k in ("precision", "recall", "f1")}
  macro = {k: float(np.mean(mean[k])) for k in ("precision", "recall", "f1")}
  std = {k: float(np.std(mean[k])) for k in ("precision", "recall", "f1")}
  for name, ours in (("micro-average", micro), ("macro-average", macro), ("std", std)):
    ref = paper.SEED000_TABLE5_SUMMARY[name.split("-")[0]]
    rows.append([f"**{name}**", ""] + [f"{ours[k]:.2f}" for k in ("precision", "recall", "f1")]
                + [f"{ref[k]:.2f}" for k in ("precision", "recall", "f1")])
  body = (f"Ours: **{label_of(best)}** (the row with the best mean test macro F1, "
          f"{rule} threshold; per-class values averaged over its {len(by_row[best])} run(s)); "
          "paper: seed 000's CharBert+ELECTRA (fractions, as printed). std = population sd "
          "over the 28 labels.\n\n" + report_lib.markdown_table(header, rows))
  extra = {"row": best, "rule": rule, "labels": list(paper.GOEMOTIONS28_LABELS),
           **{k: mean[k].tolist() for k in mean}, "micro": micro, "macro": macro, "std": std}
  return body, extra


def table6_section(by_row, label_of, rule: str = "global") -> tuple[str, dict] | None:
  """F1 of seed 000's selected emotions for our direct and LCL rows beside its Table 6."""
  rows_used = [k for k in ("direct_bert", "lcl_electra+electra", "lcl_bert+bert")
               if k in by_row and _mean_per_class(by_row[k], rule) is not None]
  if not rows_used:
    return None
  means = {k: _mean_per_class(by_row[k], rule) for k in rows_used}
  index = {name: i for i, name in enumerate(paper.GOEMOTIONS28_LABELS)}
  header = ["emotion"] + [label_of(k) for k in rows_used] + [
      f"paper {m}" for m in paper.SEED000_TABLE6_MODELS]
  table_rows, extra = [], {}
  for emotion, ref in paper.SEED000_TABLE6.items():
    if emotion in index:
      ours = [means[k]["f1"][index[emotion]] for k in rows_used]
    else:
      kind = emotion.split("-")[0]
      ours = [np.mean([r["test"][f"{kind}_f1"] for r in by_row[k]]) for k in rows_used]
    extra[emotion] = dict(zip(rows_used, map(float, ours)))
    table_rows.append([emotion] + [f"{v:.2f}" for v in ours]
                      + [f"{ref[m]:.2f}" for m in paper.SEED000_TABLE6_MODELS])
  return ("F1 on test (fractions), " + rule + " threshold.\n\n"
          + report_lib.markdown_table(header, table_rows)), extra


# --------------------------------------------------------------------------------------
# Figures (matplotlib PNG + CSV).
# --------------------------------------------------------------------------------------


def sentiment_groups(data_dir: str | pathlib.Path) -> dict[str, str]:
  """Emotion -> 'positive' / 'negative' / 'ambiguous' (sentiment_dict.json) or 'neutral'
  (`lcl_jax.data.goemotions.emotion_groups`; a missing or malformed file raises)."""
  from lcl_jax.data import goemotions
  return goemotions.emotion_groups("sentiment", data_dir)


def single_label_tsne(run_dir: pathlib.Path, groups: Mapping[str, str], *,
                      seed: int = 0) -> dict[str, np.ndarray] | None:
  """t-SNE (scikit-learn, 2-D) of the test [CLS] vectors carrying exactly one label.

  Returns ``{'xy': [M, 2], 'label': [M] int, 'group': [M] str, 'index': [M]}`` or None
  when the run did not save its features (TrainConfig.save_features)."""
  from sklearn.manifold import TSNE

  arrays = np.load(run_dir / "predictions" / "best_test.npz")
  if "features" not in arrays:
    return None
  labels = arrays["labels"]
  single = np.flatnonzero(labels.sum(axis=1) == 1)
  if len(single) < 3:
    return None
  features = arrays["features"][single].astype(np.float64)
  perplexity = float(min(30.0, max(2.0, (len(single) - 1) / 3)))
  xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(
      features)
  label = labels[single].argmax(axis=1)
  group = np.array([groups[paper.GOEMOTIONS28_LABELS[i]] for i in label])
  return {"xy": xy, "label": label, "group": group, "index": single}


def write_figures(out_dir: pathlib.Path, by_spec: Mapping[str, sweep.RunSpec],
                  panels: Sequence[tuple[str, str]], f1_rows: Sequence[tuple[str, str]],
                  by_row, data_dir, rule: str = "global") -> list[str]:
  """t-SNE panels (label, spec key) side by side and per-class F1 bars of two rows.

  Writes tsne.png + tsne.csv and per_class_f1.png + per_class_f1.csv into `out_dir`;
  returns the markdown lines linking them."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  from lcl_jax.studies.report import write_text_atomic

  out_dir.mkdir(parents=True, exist_ok=True)
  lines = []
  colours = {"positive": "tab:blue", "negative": "tab:red", "ambiguous": "gold",
             "neutral": "tab:gray"}
  embeddings = []
  if panels and data_dir:
    groups = sentiment_groups(data_dir)
    for title, key in panels:
      emb = single_label_tsne(by_spec[key].workdir, groups)
      if emb is not None:
        embeddings.append((title, key, emb))
  if embeddings:
    fig, axes = plt.subplots(1, len(embeddings), figsize=(6 * len(embeddings), 5), squeeze=False)
    csv_lines = ["panel,run,test_index,x,y,label,group"]
    for ax, (title, key, emb) in zip(axes[0], embeddings):
      for g in SENTIMENT_GROUPS:
        mask = emb["group"] == g
        ax.scatter(emb["xy"][mask, 0], emb["xy"][mask, 1], s=4, c=colours[g], label=g)
      ax.set_title(f"{title} (n={len(emb['label'])})")
      ax.set_xticks([]), ax.set_yticks([])
      for (x, y), lab, grp, idx in zip(emb["xy"], emb["label"], emb["group"], emb["index"]):
        csv_lines.append(f"{title},{key},{idx},{x:.5f},{y:.5f},"
                         f"{paper.GOEMOTIONS28_LABELS[lab]},{grp}")
    axes[0][0].legend(markerscale=3, fontsize=8)
    fig.suptitle("t-SNE of test [CLS] vectors with exactly one label, by sentiment group")
    fig.tight_layout()
    fig.savefig(out_dir / "tsne.png", dpi=120)
    plt.close(fig)
    write_text_atomic(out_dir / "tsne.csv", "\n".join(csv_lines) + "\n")
    lines.append("![t-SNE](figures/tsne.png) (numbers: `figures/tsne.csv`)")
  bars = [(label, key, _mean_per_class(by_row[key], rule)) for label, key in f1_rows
          if key in by_row]
  bars = [(label, key, m) for label, key, m in bars if m is not None]
  if bars:
    names = paper.GOEMOTIONS28_LABELS
    fig, ax = plt.subplots(figsize=(14, 4.5))
    width = 0.8 / len(bars)
    x = np.arange(len(names))
    for i, (label, _, mean) in enumerate(bars):
      ax.bar(x + i * width, mean["f1"], width, label=label)
    ax.set_xticks(x + 0.4 - width / 2, names, rotation=70, fontsize=8)
    ax.set_ylabel(f"test F1 ({rule} threshold)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "per_class_f1.png", dpi=120)
    plt.close(fig)
    header = "emotion," + ",".join(key for _, key, _ in bars)
    body = [f"{n}," + ",".join(f"{m['f1'][i]:.6f}" for _, _, m in bars)
            for i, n in enumerate(names)]
    write_text_atomic(out_dir / "per_class_f1.csv", "\n".join([header] + body) + "\n")
    lines.append("![per-class F1](figures/per_class_f1.png) (numbers: "
                 "`figures/per_class_f1.csv`)")
  return lines
