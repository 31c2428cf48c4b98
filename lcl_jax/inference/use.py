"""Using a fine-tuned model: input files, prediction files, evaluation reports.

The logic of `experiments.predict` and `experiments.evaluate` (the binaries only parse
flags). The model itself is `lcl_jax.inference.predictor.Predictor`.

Input files (`read_texts` / `read_labelled`), by extension:

* `.txt`: one text per line (UTF-8; blank lines are skipped, their line numbers are
  kept for the output's `line` field);
* `.tsv` / `.csv`: a header row; the text is column `text_column` (default `text`);
* `.jsonl`: one JSON object per line; the text is key `text_column`.

Labelled inputs (evaluate) add `label_column` (default `label`) holding a class name
(or its integer id); multi-label: names separated by commas (an empty cell = no label).

Prediction files (`write_predictions`): `.jsonl` (one object per text: `text`, `line`,
`labels`, `scores`, `probabilities` {class: p}) or `.csv` (`line`, `text`, `labels`
joined with `;`, `scores`, then one probability column per class).
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import pathlib
from typing import Any, Sequence

import numpy as np

from lcl_jax import inference
from lcl_jax.models.encoder import attention_probabilities
from lcl_jax.train import evaluation, plots
from lcl_jax.train.checkpoint import write_atomic

INPUT_FORMATS = (".txt", ".tsv", ".csv", ".jsonl")
OUTPUT_FORMATS = (".jsonl", ".csv")


class InputError(ValueError):
  """A user input file is unusable; the message names the file (and line / column)."""


@dataclasses.dataclass
class Records:
  """Texts read from a file, with their 1-based line numbers (and raw labels)."""
  texts: list[str]
  lines: list[int]
  labels: list[str] | None = None


def _format(path: pathlib.Path, allowed: Sequence[str], what: str) -> str:
  suffix = path.suffix.lower()
  if suffix not in allowed:
    raise InputError(f"{what} {path}: unknown format {suffix or '(no extension)'!r}; "
                     f"expected one of {', '.join(allowed)}")
  return suffix


def text_records(texts: Sequence[str]) -> Records:
  """Records of the --text flags (line = the flag's 1-based position).

  Raises:
    InputError: a text that is not valid UTF-8 (the shell passed bytes Python could not
      decode; they arrive as lone surrogates), naming the --text flag by its position.
  """
  for number, text in enumerate(texts, start=1):
    try:
      text.encode("utf-8")
    except UnicodeEncodeError as e:
      raise InputError(f"--text #{number}: not valid UTF-8 (an undecodable byte at "
                       f"character {e.start + 1}); pass UTF-8 text") from None
  return Records(list(texts), list(range(1, len(texts) + 1)))


def _decoded(path: pathlib.Path) -> str:
  """The file's text (UTF-8, a byte-order mark dropped); InputError naming the line of
  the first byte that is not UTF-8 (e.g. a Latin-1 é)."""
  raw = path.read_bytes()
  try:
    return raw.decode("utf-8-sig")
  except UnicodeDecodeError as e:
    line = raw[:e.start].count(b"\n") + 1
    column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
    raise InputError(f"--input {path}, line {line}: not UTF-8 (byte 0x{raw[e.start]:02x} at "
                     f"column {column}; a Latin-1 / Windows-1252 file?); save it as UTF-8"
                     ) from None


def read_records(path: str | pathlib.Path, *, text_column: str = "text",
                 label_column: str | None = None) -> Records:
  """Texts (and, with `label_column`, raw label cells) of an input file.

  Raises:
    InputError: unknown format, missing file, a byte that is not UTF-8, missing column /
      key (the message lists the ones present), a .tsv/.csv row with more or fewer
      cells than the header, malformed JSON line, or no text at all (each names the
      file, and the line where there is one).
  """
  path = pathlib.Path(path)
  suffix = _format(path, INPUT_FORMATS, "--input")
  if not path.is_file():
    raise InputError(f"--input {path}: no such file")
  content = _decoded(path)
  texts, lines, labels = [], [], []
  if suffix == ".txt":
    if label_column:
      raise InputError(f"--input {path}: a .txt file has no label column; use .tsv, .csv "
                       "or .jsonl with a label column")
    for number, line in enumerate(content.splitlines(), start=1):
      if line.strip():
        texts.append(line)
        lines.append(number)
  elif suffix in (".tsv", ".csv"):
    reader = csv.DictReader(io.StringIO(content), delimiter="\t" if suffix == ".tsv" else ",")
    columns = reader.fieldnames or []
    for column, flag in ((text_column, "--text_column"), (label_column, "--label_column")):
      if column and column not in columns:
        raise InputError(f"--input {path}: no column {column!r} ({flag}); the header has "
                         f"{columns}")
    for row in reader:
      number = reader.line_num
      text = row.get(text_column)
      if text is None:
        raise InputError(f"--input {path}, line {number}: fewer cells than the header")
      if None in row:  # csv.DictReader's key of the cells beyond the header
        raise InputError(
            f"--input {path}, line {number}: {len(columns) + len(row[None])} cells, the "
            f"header has {len(columns)} (an unquoted delimiter in a text? quote the text "
            "cell)")
      texts.append(text)
      lines.append(number)
      if label_column:
        labels.append(row.get(label_column) or "")
  else:  # .jsonl
    for number, line in enumerate(content.splitlines(), start=1):
      if not line.strip():
        continue
      try:
        record = json.loads(line)
      except json.JSONDecodeError as e:
        raise InputError(f"--input {path}, line {number}: not JSON ({e.msg})") from None
      if not isinstance(record, dict):
        raise InputError(f"--input {path}, line {number}: expected a JSON object, got "
                         f"{type(record).__name__}")
      for key, flag in ((text_column, "--text_column"), (label_column, "--label_column")):
        if key and key not in record:
          raise InputError(f"--input {path}, line {number}: no key {key!r} ({flag}); it has "
                           f"{sorted(record)}")
      if not isinstance(record[text_column], str):
        raise InputError(f"--input {path}, line {number}: {text_column!r} is not a string")
      texts.append(record[text_column])
      lines.append(number)
      if label_column:
        value = record[label_column]
        labels.append(",".join(map(str, value)) if isinstance(value, list) else str(value))
  if not texts:
    raise InputError(f"--input {path}: no texts in the file (it is empty)")
  return Records(texts, lines, labels if label_column else None)


def encode_labels(raw: Sequence[str], lines: Sequence[int], label_names: Sequence[str], *,
                  multilabel: bool, where: str) -> np.ndarray:
  """Label cells -> int32 [N] class ids, or multi-hot [N, C] (comma-separated names).

  A cell may hold a class name or its integer id. Raises InputError naming the line.
  """
  index = {name: i for i, name in enumerate(label_names)}

  def one(value: str, line: int) -> int:
    value = value.strip()
    if value in index:
      return index[value]
    if value.lstrip("-").isdigit() and 0 <= int(value) < len(label_names):
      return int(value)
    raise InputError(f"{where}, line {line}: unknown label {value!r}; the model's labels: "
                     f"{', '.join(label_names)}")

  if not multilabel:
    return np.asarray([one(v, line) for v, line in zip(raw, lines)], np.int32)
  out = np.zeros((len(raw), len(label_names)), np.int32)
  for row, (value, line) in enumerate(zip(raw, lines)):
    for part in filter(None, (p.strip() for p in value.split(","))):
      out[row, one(part, line)] = 1
  return out


def check_output_path(path: str | pathlib.Path) -> pathlib.Path:
  """`path` if its extension is a prediction format, else InputError."""
  path = pathlib.Path(path)
  _format(path, OUTPUT_FORMATS, "--output")
  return path


def write_predictions(path: str | pathlib.Path, records: Records, predictions, label_names,
                      ) -> pathlib.Path:
  """Writes predictions as JSONL or CSV (by extension; atomic). Returns the path."""
  path = pathlib.Path(path)
  suffix = _format(path, OUTPUT_FORMATS, "--output")
  if suffix == ".jsonl":
    lines = []
    for text, line, p in zip(records.texts, records.lines, predictions):
      lines.append(json.dumps({
          "line": line, "text": text, "labels": list(p.labels),
          "scores": [round(s, 6) for s in p.scores],
          "probabilities": {n: round(float(v), 6) for n, v in zip(label_names, p.probabilities)},
      }, ensure_ascii=False))
    write_atomic(path, "\n".join(lines) + "\n")
  else:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["line", "text", "labels", "scores", *label_names])
    for text, line, p in zip(records.texts, records.lines, predictions):
      writer.writerow([line, text, ";".join(p.labels),
                       ";".join(f"{s:.6f}" for s in p.scores),
                       *(f"{v:.6f}" for v in p.probabilities)])
    write_atomic(path, buffer.getvalue())
  return path


def format_prediction(text: str, prediction, *, width: int = 60) -> str:
  """One console line: the (shortened) text, then label (probability) pairs."""
  shown = text if len(text) <= width else text[:width - 1] + "…"
  labels = ", ".join(f"{label} ({score:.3f})"
                     for label, score in zip(prediction.labels, prediction.scores))
  return f"{shown!r}: {labels or '(no label above its threshold)'}"


# --------------------------------------------------------------------------- evaluation


def evaluate(labels: np.ndarray, probabilities: dict[str, np.ndarray], label_names, *,
             multilabel: bool, thresholds) -> dict[str, Any]:
  """The training report's metrics plus per-class P/R/F1 and a confusion matrix.

  Args:
    labels: int [N] class ids or multi-hot [N, C].
    probabilities: `{network: float [N, C]}` (Predictor.probabilities).
    label_names: C class names.
    multilabel: threshold instead of argmax.
    thresholds: [C] (multi-label).

  Returns:
    `{network: {'metrics': {...}, 'per_class': [{label, precision, recall, f1,
    support}], 'confusion_matrix': [[int]] (single-label; rows = true class),
    'multilabel_confusion': [[[tn, fp], [fn, tp]]] (multi-label)}}`; metrics as
    fractions, the same keys and computation as the runs' results.json
    (`evaluation.split_metrics`).
  """
  from sklearn import metrics as skm  # pylint: disable=g-import-not-at-top

  out = {}
  classes = np.arange(len(label_names))
  for network, probs in probabilities.items():
    summary, predictions = evaluation.split_metrics(labels, probs, multilabel=multilabel,
                                                    thresholds=thresholds if multilabel else 0.5)
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        labels, predictions, labels=None if multilabel else classes, zero_division=0)
    entry: dict[str, Any] = {
        "metrics": summary,
        "per_class": [{"label": name, "precision": float(p), "recall": float(r),
                       "f1": float(f), "support": int(s)}
                      for name, p, r, f, s in zip(label_names, precision, recall, f1, support)],
    }
    if multilabel:
      entry["multilabel_confusion"] = skm.multilabel_confusion_matrix(
          labels, predictions).tolist()
    else:
      entry["confusion_matrix"] = skm.confusion_matrix(labels, predictions,
                                                       labels=classes).tolist()
    out[network] = entry
  return out


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
  lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
  lines += ["| " + " | ".join(row) + " |" for row in rows]
  return "\n".join(lines)


def evaluation_markdown(report: dict[str, Any]) -> str:
  """report.md of an evaluation (`evaluate`'s result plus `source`/`data` entries)."""
  label_names = report["label_names"]
  out = [f"# Evaluation of {report['model']}", "",
         f"- data: {report['data']} ({report['num_examples']} examples)",
         f"- command: `{report.get('command', '')}`", "",
         "Metrics in % (the loss: mean cross-entropy, nats), computed as in training (`results.json`); per-class precision, "
         "recall and F1 by scikit-learn; confusion matrix rows = true class, columns = "
         "predicted.", ""]
  for network, entry in report["networks"].items():
    out += [f"## {network}", "", _table(["metric", "value"], [
        [k.replace("_", " ") + (" (nats)" if k == "loss" else ""),
         f"{v:.4f}" if k == "loss" else f"{100 * v:.2f}"]
        for k, v in entry["metrics"].items()]), ""]
    out += ["### Per class", "", _table(
        ["label", "precision", "recall", "F1", "support"],
        [[c["label"], f"{100 * c['precision']:.2f}", f"{100 * c['recall']:.2f}",
          f"{100 * c['f1']:.2f}", str(c["support"])] for c in entry["per_class"]]), ""]
    if "confusion_matrix" in entry:
      out += ["### Confusion matrix", "", _table(
          ["true \\ predicted", *label_names],
          [[name, *map(str, row)] for name, row in zip(label_names,
                                                       entry["confusion_matrix"])]), ""]
  mixed = report.get("mixed")
  if mixed:
    options = ", ".join(f"{k}={v}" for k, v in mixed.items()
                        if k != "primary" and v is not None)
    out += [f"## primary with embedding mixing ({options})", "",
            "Seed 004 Section 3.4: Φ's [CLS] vector mixed with its candidate's before the "
            "head; candidates in mixed_candidates.tsv.", "",
            _table(["metric", "value"], [
                [k.replace("_", " ") + (" (nats)" if k == "loss" else ""),
                 f"{v:.4f}" if k == "loss" else f"{100 * v:.2f}"]
                for k, v in mixed["primary"]["metrics"].items()]), ""]
  return "\n".join(out)


# --------------------------------------------------------------------- attention maps


def _indices(values: Sequence[int], size: int, what: str) -> list[int]:
  out = []
  for value in values:
    if not isinstance(value, (int, np.integer)) or not -size <= value < size:
      raise ValueError(f"{what} {value!r} is out of range: the encoder has {size} "
                       f"(0-based; negative counts from the end)")
    out.append(int(value) % size)
  if not out:
    raise ValueError(f"no {what}s chosen")
  return out


def attention_maps(workdir: str | pathlib.Path, text: str, *, layers: Sequence[int],
                   heads: Sequence[int], output: str | pathlib.Path | None = None,
                   network: str = "primary") -> dict[str, Any]:
  """Attention probabilities of one text under a run's best checkpoint (seed 004 Figs 6-8).

  Loads the best-validation params of a finished run (or an --export_hf folder) with
  `inference.Predictor.load`, tokenises ``text`` as the run did (`Predictor.tokenize`: its
  max_length, special tokens, the label block of a --label_embeddings run; no padding) and runs the network's encoder through the explicit-softmax
  attention path (`models.encoder.attention_probabilities`).

  Args:
    workdir: the run directory (``<workdir>/<objective>/seed<k>``) or an export folder.
    text: the example.
    layers, heads: 0-based indices (negative: from the end) of the panels.
    output: a ``.png`` path: also draw `plots.plot_attention_map` there (and its
      ``.csv``); None: no files.
    network: ``"primary"`` (Φ) or ``"weighting"`` (Ψ of an LCL run).

  Returns:
    ``{'tokens': [T] str, 'layers': [...], 'heads': [...], 'probabilities': float32
    [len(layers), len(heads), T, T] (rows: queries, columns: keys; each row sums to 1),
    'files': {'png', 'csv'} (with ``output``)}``.

  Raises:
    inference.RunNotUsableError: not a finished run or export.
    ValueError: an empty text, an unknown network, or a layer/head out of range.
  """
  if not isinstance(text, str) or not text.strip():
    raise ValueError("attention_maps: the text is empty")
  predictor = inference.Predictor.load(workdir)
  if network not in predictor.modules:
    raise ValueError(f"network {network!r} is not in {predictor.source} (it has "
                     f"{list(predictor.networks)})")
  module = predictor.modules[network]
  config = module.config
  layer_ids = _indices(layers, config.num_hidden_layers, "layer")
  head_ids = _indices(heads, config.num_attention_heads, "head")
  encoded = predictor.tokenize([text])  # as the run did (label block first, if it had one)
  ids = np.asarray(encoded.input_ids, np.int32)
  mask = np.ones_like(ids)  # one row: no padding
  types = np.asarray(encoded.token_type_ids, np.int32)
  _, probs = attention_probabilities(module.build_encoder(),
                                     predictor.params[network]["encoder"], ids, mask, types)
  probs = np.asarray(probs)[:, 0]  # [L, heads, T, T]
  chosen = probs[np.asarray(layer_ids)][:, np.asarray(head_ids)]
  tokens = predictor.tokenizer.convert_ids_to_tokens(ids[0].tolist())
  out: dict[str, Any] = {"tokens": list(tokens), "layers": layer_ids, "heads": head_ids,
                         "probabilities": chosen.astype(np.float32)}
  if output is not None:
    out["files"] = plots.plot_attention_map(
        chosen, tokens, output, layers=layer_ids, heads=head_ids,
        title=f"{network}, {predictor.source.name}")
  return out
