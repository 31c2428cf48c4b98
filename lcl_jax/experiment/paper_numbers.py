"""The LCL paper's numbers (Suresh & Ong, EMNLP 2021), printed beside ours.

All values are percentages, as the paper prints them; test-set values are means over
5 seeds (Tables 1, 2) or 10 seeds (Table 3). `None` marks a value the paper does not
report. Keys: dataset names of :mod:`lcl_jax.data` and objective names of
:mod:`lcl_jax.train.config` (`bert_ce` = the BERT-base + CE baseline row, `ce` /
`scl` / `lcl` = ELECTRA-base fine-tuned with that objective).
"""
from __future__ import annotations

from typing import Mapping

from lcl_jax.data import empathetic_dialogues

# The paper's encoders (Hugging Face hub ids).
ELECTRA_BASE = "google/electra-base-discriminator"
BERT_BASE = "bert-base-uncased"

# Objective -> row label of the paper's tables.
METHOD_LABELS: dict[str, str] = {
    "bert_ce": "BERT-base + CE",
    "ce": "ELECTRA + CE",
    "scl": "ELECTRA + SCL",
    "lcl": "ELECTRA + LCL",
}

DATASET_LABELS: dict[str, str] = {
    "empathetic_dialogues": "Empathetic Dialogues",
    "goemotions": "GoEmotions",
    "isear": "ISEAR",
    "emoint": "EmoInt",
    "sst5": "SST-5",
    "sst2": "SST-2",
    "empathetic_dialogues_16": "ED-16",
    "empathetic_dialogues_8": "ED-8",
    "empathetic_dialogues_4_easy": "ED-4 easy",
    "empathetic_dialogues_4_hard_a": "ED-4 hard-a",
    "empathetic_dialogues_4_hard_b": "ED-4 hard-b",
    "empathetic_dialogues_4_hard_c": "ED-4 hard-c",
    "empathetic_dialogues_4_hard_d": "ED-4 hard-d",
}

METRIC_LABELS: dict[str, str] = {
    "accuracy": "Acc",
    "weighted_f1": "F1 (weighted)",
    "macro_f1": "F1 (macro)",
}

PaperTable = Mapping[str, Mapping[str, Mapping[str, float | None]]]


def _acc_f1(acc: float, f1: float) -> dict[str, float]:
  return {"accuracy": acc, "weighted_f1": f1}


# Table 1: emotion classification, test accuracy / weighted F1, mean over 5 seeds.
TABLE1_DATASETS = ("empathetic_dialogues", "goemotions", "isear", "emoint")
TABLE1_METHODS = ("bert_ce", "ce", "scl", "lcl")
TABLE1_SEEDS = 5
TABLE1: PaperTable = {
    "empathetic_dialogues": {"bert_ce": _acc_f1(55.8, 54.4), "ce": _acc_f1(58.3, 56.8),
                             "scl": _acc_f1(58.5, 57.0), "lcl": _acc_f1(60.1, 59.1)},
    "goemotions": {"bert_ce": _acc_f1(64.1, 63.0), "ce": _acc_f1(64.8, 63.9),
                   "scl": _acc_f1(64.3, 63.0), "lcl": _acc_f1(65.5, 64.8)},
    "isear": {"bert_ce": _acc_f1(69.2, 69.3), "ce": _acc_f1(71.4, 71.4),
              "scl": _acc_f1(70.5, 70.5), "lcl": _acc_f1(72.4, 72.4)},
    "emoint": {"bert_ce": _acc_f1(85.0, 85.0), "ce": _acc_f1(85.5, 85.5),
               "scl": _acc_f1(85.7, 85.8), "lcl": _acc_f1(86.6, 86.6)},
}

# Table 2: sentiment analysis, test accuracy, mean over 5 seeds.
TABLE2_DATASETS = ("sst5", "sst2")
TABLE2_METHODS = ("ce", "scl", "lcl")
TABLE2_SEEDS = 5
TABLE2: PaperTable = {
    "sst5": {"ce": {"accuracy": 57.1}, "scl": {"accuracy": 57.4}, "lcl": {"accuracy": 58.5}},
    "sst2": {"ce": {"accuracy": 94.4}, "scl": {"accuracy": 94.3}, "lcl": {"accuracy": 94.5}},
}
# Published results the paper quotes as reference rows (test accuracy).
TABLE2_PUBLISHED: dict[str, dict[str, float | None]] = {
    "BERT": {"sst5": 53.2, "sst2": 93.5},
    "RoBERTa": {"sst5": 56.2, "sst2": 94.8},
    "SentiBERT": {"sst5": 57.8, "sst2": 94.7},
    "SentiLARE": {"sst5": 58.6, "sst2": None},
    "SKEP": {"sst5": None, "sst2": 96.7},
    "ELECTRA": {"sst5": None, "sst2": 93.4},
}

# Table 3: class subsets of Empathetic Dialogues, test accuracy, mean over 10 seeds.
TABLE3_SUBSETS: dict[str, str] = {  # column key -> dataset name
    "32": "empathetic_dialogues",
    "16": "empathetic_dialogues_16",
    "8": "empathetic_dialogues_8",
    "4_easy": "empathetic_dialogues_4_easy",
    "4_hard_a": "empathetic_dialogues_4_hard_a",
    "4_hard_b": "empathetic_dialogues_4_hard_b",
    "4_hard_c": "empathetic_dialogues_4_hard_c",
    "4_hard_d": "empathetic_dialogues_4_hard_d",
}
TABLE3_METHODS = ("ce", "scl", "lcl")
TABLE3_SEEDS = 10


def _row(values: tuple[float, ...]) -> dict[str, dict[str, float]]:
  return {dataset: {"accuracy": v} for dataset, v in zip(TABLE3_SUBSETS.values(), values)}


_TABLE3_ROWS = {
    "ce": _row((58.1, 68.8, 78.0, 89.2, 56.1, 63.2, 54.3, 67.4)),
    "scl": _row((58.6, 67.9, 77.0, 88.8, 55.4, 63.7, 53.3, 68.1)),
    "lcl": _row((60.1, 69.6, 78.7, 88.8, 57.5, 64.2, 55.6, 69.5)),
}
TABLE3: PaperTable = {
    dataset: {method: _TABLE3_ROWS[method][dataset] for method in TABLE3_METHODS}
    for dataset in TABLE3_SUBSETS.values()
}
# The paper's hard subsets (class names, the paper's order), found by its selection.
PAPER_HARD_SUBSETS: dict[str, tuple[str, ...]] = {
    key: empathetic_dialogues.SUBSETS[TABLE3_SUBSETS[key]]
    for key in ("4_hard_a", "4_hard_b", "4_hard_c", "4_hard_d")
}

# Table 4: sentiment, validation accuracy (the runs of Table 2).
TABLE4_DATASETS = ("sst2", "sst5")
TABLE4: PaperTable = {
    "sst2": {"ce": {"accuracy": 94.2}, "scl": {"accuracy": 94.4}, "lcl": {"accuracy": 94.8}},
    "sst5": {"ce": {"accuracy": 53.3}, "scl": {"accuracy": 54.5}, "lcl": {"accuracy": 55.4}},
}

# Table 5: emotion, validation accuracy / weighted F1 (the runs of Table 1).
TABLE5_DATASETS = TABLE1_DATASETS
TABLE5: PaperTable = {
    "empathetic_dialogues": {"ce": _acc_f1(59.0, 58.1), "scl": _acc_f1(58.9, 57.8),
                             "lcl": _acc_f1(60.3, 59.7)},
    "goemotions": {"ce": _acc_f1(66.2, 65.3), "scl": _acc_f1(64.9, 63.7),
                   "lcl": _acc_f1(66.0, 65.3)},
    "isear": {"ce": _acc_f1(71.7, 71.7), "scl": _acc_f1(72.2, 72.2),
              "lcl": _acc_f1(72.6, 72.6)},
    "emoint": {"ce": _acc_f1(87.1, 87.1), "scl": _acc_f1(87.9, 87.9),
               "lcl": _acc_f1(88.8, 88.9)},
}

# Figure 2: top-k entropy curves (Eq. 7), CE / SCL / LCL.
FIGURE2_DATASETS = ("empathetic_dialogues", "goemotions", "sst5")
FIGURE2_METHODS = ("ce", "scl", "lcl")

# Appendix B's hyper-parameter grid, chosen by validation accuracy.
HPARAM_LEARNING_RATES = (1e-5, 2e-5, 3e-5)
HPARAM_ALPHAS = (0.1, 0.2, 0.3, 0.4, 0.5)
HPARAM_TEMPERATURES = (0.1, 0.3, 0.5)


def paper_value(table: PaperTable, dataset: str, method: str, metric: str) -> float | None:
  """The paper's value of one cell, or None where the paper has none."""
  return table.get(dataset, {}).get(method, {}).get(metric)


def dataset_label(dataset: str) -> str:
  return DATASET_LABELS.get(dataset, dataset)


def method_label(method: str) -> str:
  return METHOD_LABELS.get(method, method)
