"""The model card (README.md) and lcl_jax metadata of an exported Hugging Face folder.

`--export_hf` writes each network of a run's best-validation epoch to
`<run>/export/<network>/` (`models.save_classifier`: config.json with `id2label` /
`label2id`, model.safetensors) plus its tokenizer; this module adds

* the `lcl_jax` entry of config.json (`export_metadata`): what `lcl_jax.inference.predictor`
  needs to apply the folder exactly as the run did (max length, length buckets,
  multi-label and its thresholds, dataset, objective, network);
* README.md (`model_card`): dataset, objective, encoder(s), hyper-parameters, test
  metrics at the best-validation epoch, the command that produced it, how to load it
  (transformers' pipeline for the ELECTRA / BERT heads; lcl_jax for the paper's Φ head,
  which transformers loads only as a bare encoder) and the paper to cite.
"""
from __future__ import annotations

import pathlib
import shlex
import sys
from typing import Any, Mapping, Sequence

PAPER_CITATION = """@inproceedings{suresh-ong-2021-negatives,
  title = "Not All Negatives are Equal: Label-Aware Contrastive Loss for Fine-grained Text Classification",
  author = "Suresh, Varsha and Ong, Desmond C.",
  booktitle = "Proceedings of the 2021 Conference on Empirical Methods in Natural Language Processing",
  year = "2021",
  publisher = "Association for Computational Linguistics",
  pages = "4381--4394",
  url = "https://aclanthology.org/2021.emnlp-main.359",
}"""

# Heads transformers has a class for (its pipeline loads and labels them).
TRANSFORMERS_HEADS = {"electra": "ElectraForSequenceClassification",
                      "bert": "BertForSequenceClassification"}
NETWORK_ROLES = {"primary": "Φ, the primary encoder (its predictions are the run's "
                            "reported results)",
                 "weighting": "Ψ, LCL's weighting network (ELECTRA classification head)"}
_HYPERPARAMETERS = ("learning_rate", "alpha", "temperature", "epochs", "texts_per_batch",
                    "weight_decay", "adam_b1", "adam_b2", "adam_eps", "clip_norm",
                    "max_length", "augment_p", "seed", "dtype", "max_train_examples",
                    "max_steps_per_epoch")


def invocation() -> str:
  """How this process was started (`python -m <module> ...` when run with -m)."""
  spec = getattr(sys.modules.get("__main__"), "__spec__", None)
  program = (["python", "-m", spec.name] if spec is not None and spec.name
             else [pathlib.Path(sys.argv[0]).name or "python"])
  return shlex.join(program + sys.argv[1:])


def export_metadata(config: Mapping[str, Any], *, network: str, multilabel: bool,
                    thresholds: Sequence[float] | None) -> dict[str, Any]:
  """The `lcl_jax` entry of an exported config.json (JSON-serialisable)."""
  return {"network": network, "dataset": config["dataset"], "objective": config["objective"],
          "multilabel": bool(multilabel),
          "thresholds": None if thresholds is None else [float(t) for t in thresholds],
          "max_length": int(config["max_length"]),
          "length_buckets": [int(b) for b in config["length_buckets"]],
          "eval_batch_size": int(config["eval_batch_size"])}


def _metric_rows(test: Mapping[str, float], prefix: str) -> list[str]:
  rows = []
  for name in ("accuracy", "weighted_f1", "macro_f1", "micro_f1", "micro_precision",
               "micro_recall", "macro_precision", "macro_recall"):
    value = test.get(prefix + name)
    if value is not None:
      rows.append(f"| {name.replace('_', ' ')} | {100 * value:.2f} |")
  return rows


def _applied_thresholds(results: Mapping[str, Any], config: Mapping[str, Any],
                        prefix: str) -> list[str]:
  """What a multi-label folder applies (issue 18 item 4): the per-class thresholds fitted
  after training (results["per_class_thresholds"]) when there are any, with the test
  metrics at them; else the configured global threshold(s)."""
  fitted = results.get("per_class_thresholds") or {}
  if fitted.get("thresholds") is None or prefix:  # (Ψ is not thresholded per class)
    return ["", f"Decision thresholds this folder applies: {config.get('thresholds')} "
            "(the configured global threshold; the test metrics above use it)."]
  values = ", ".join(f"{t:.2f}" for t in fitted["thresholds"])
  lines = ["", f"Decision thresholds this folder applies: **per-class thresholds** fitted on "
           f"the {fitted.get('fit_split')} split (not the global "
           f"{config.get('thresholds')} of the metrics above), one per class in label "
           f"order: {values}.", "", "Test metrics at these per-class thresholds (%):", "",
           "| metric | value |", "|---|---|"]
  return lines + (_metric_rows(fitted.get("test") or {}, "") or ["| (none) | |"])


def model_card(*, network: str, head: str, model_type: str, config: Mapping[str, Any],
               results: Mapping[str, Any], label_names: Sequence[str],
               command: str | None, folder_name: str) -> str:
  """README.md of one exported network (Markdown with Hugging Face YAML front matter)."""
  multilabel = bool(results.get("multilabel"))
  # transformers has the head only on its own architecture (Ψ's ELECTRA head on a BERT
  # encoder such as MiniLM has no transformers class).
  hf_class = TRANSFORMERS_HEADS.get(head) if head == model_type else None
  encoder = config["encoder"] if network == "primary" else config.get("weighting_encoder")
  prefix = "weighting_" if network == "weighting" else ""
  synthetic = bool(results.get("synthetic"))
  lines = ["---", "library_name: transformers" if hf_class else "library_name: lcl_jax",
           "pipeline_tag: text-classification", "tags:", "- lcl_jax",
           "- label-aware-contrastive-loss", "---", "",
           f"# {config['dataset']} — {config['objective']} ({network})", ""]
  if synthetic:
    lines += ["> **SYNTHETIC DATA**: trained on the package's generated built-in dataset, "
              "not a real one; the model is a demonstration.", ""]
  if config.get("max_train_examples") or config.get("max_steps_per_epoch"):
    lines += ["> **Reduced run** (max_train_examples / max_steps_per_epoch set): not a "
              "full fine-tuning.", ""]
  lines += [
      "Fine-tuned with lcl_jax, a JAX/Flax re-implementation of Label-aware Contrastive "
      "Loss (Suresh & Ong, EMNLP 2021; the authors' PyTorch release is "
      "https://github.com/varsha33/LCL_loss).",
      "",
      f"- network: {NETWORK_ROLES.get(network, network)}; head: `{head}`"
      + (f" (`transformers.{hf_class}`)" if hf_class else
         " (the paper's head: [CLS] → dense → ReLU → dense; no transformers class)"
         if head == "paper" else f" on a {model_type} encoder (no transformers class)"),
      f"- encoder: `{encoder}`",
      f"- dataset: `{config['dataset']}` ({len(label_names)} classes"
      + (", multi-label" if multilabel else "") + f"): {', '.join(label_names)}",
      f"- objective: `{config['objective']}`",
      f"- best validation epoch: {results.get('best_epoch')} of "
      f"{results.get('epochs_trained')}; split sizes {results.get('split_sizes')}",
      "",
      "## Test metrics (best-validation epoch, %)", "", "| metric | value |", "|---|---|"]
  lines += _metric_rows(results.get("test", {}), prefix) or ["| (none) | |"]
  lines += _applied_thresholds(results, config, prefix) if multilabel else []
  lines += ["", "## Hyper-parameters", "", "| name | value |", "|---|---|"]
  lines += [f"| {k} | {config.get(k)} |" for k in _HYPERPARAMETERS if config.get(k) is not None]
  lines += ["", "## How it was made", "", "```bash", command or "(command not recorded)",
            "```", "", "## How to use it", ""]
  if hf_class:
    function = "sigmoid" if multilabel else "softmax"
    lines += ["With transformers (PyTorch):", "", "```python", "from transformers import pipeline",
              f"classify = pipeline('text-classification', model='{folder_name}', top_k=3,",
              f"                    function_to_apply='{function}')",
              "# truncation=True: texts are cut at the run's max_length "
              f"({config.get('max_length')} tokens; the tokenizer's model_max_length), as in "
              "training",
              "print(classify(['I can not believe they did this to me'], truncation=True))",
              "```", ""]
  else:
    lines += [
        "This head has no transformers class: transformers loads this folder only as a "
        "bare encoder (`AutoModel.from_pretrained(folder)`; the head tensors are left "
        "out). Load the whole classifier with lcl_jax:",
        "", "```python", "from lcl_jax import inference",
        f"predictor = inference.Predictor.load('{folder_name}')",
        "print(predictor.predict(['I can not believe they did this to me'], top_k=3))",
        "```", "",
        f"or `lcl_jax.models.build_classifier('{head}', folder, {len(label_names)}, "
        "rng=jax.random.key(0), load_head=True)`.", ""]
  lines += ["From the command line (any head):", "", "```bash",
            f".venv/bin/python -m experiments.predict --run={folder_name} "
            "--text='I can not believe they did this to me' --top_k=3", "```", "",
            "## Citation", "", "```bibtex", PAPER_CITATION, "```", ""]
  return "\n".join(lines)
