"""The LCL paper's numbers (Suresh & Ong, EMNLP 2021), printed beside ours.

All values are percentages, as the paper prints them; test-set values are means over
5 seeds (Tables 1, 2) or 10 seeds (Table 3). `None` marks a value the paper does not
report. Keys: dataset names of :mod:`lcl_jax.data` and objective names of
:mod:`lcl_jax.train.config` (`bert_ce` = the BERT-base + CE baseline row, `ce` /
`scl` / `lcl` = ELECTRA-base fine-tuned with that objective).
"""
from __future__ import annotations

from typing import Mapping

from lcl_jax.data import empathetic_dialogues, goemotions

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
    # Multi-label (GoEmotions-28, issue 9).
    "macro_precision": "P (macro)",
    "macro_recall": "R (macro)",
    "micro_f1": "F1 (micro)",
    "exact_match": "Acc (exact match)",
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


# --------------------------------------------------------------------------------------
# GoEmotions-28 multi-label studies (issue 9): seeds 000 and 003 of ../shared/seeds.
# Values in % (the documents print fractions; x 100 here, as every table above).
# --------------------------------------------------------------------------------------

# The 28 labels in GoEmotions' id order (emotions.txt; neutral last).
GOEMOTIONS28_LABELS: tuple[str, ...] = goemotions.EMOTIONS

# Seed 000 (Huang & Wen, "Incorporating Label-Aware Contrastive Loss into BERT-related
# models for Fine-grained Emotions Classification"): one run per row, test set, global
# threshold 0.5 (its Sec. 5.2.3), macro-averaged P / R / F1.
SEED000_THRESHOLD = 0.5


def _prf(p: float, r: float, f: float) -> dict[str, float]:
  return {"macro_precision": round(100 * p, 1), "macro_recall": round(100 * r, 1),
          "macro_f1": round(100 * f, 1)}


# Table 3: direct implementations (BCE, [CLS] -> dense + tanh -> dropout 0.3 -> dense(28)).
SEED000_TABLE3: dict[str, dict[str, float]] = {
    "BERT_base": _prf(0.606, 0.398, 0.462),
    "CharBert": _prf(0.538, 0.427, 0.466),
    "BERTweet": _prf(0.574, 0.423, 0.469),
    "ELECTRA": _prf(0.584, 0.442, 0.479),
}
# Table 4: LCL with contextual encoder Φ + weighting encoder Ψ.
SEED000_TABLE4: dict[str, dict[str, float]] = {
    "CharBert+CharBert": _prf(0.518, 0.457, 0.473),
    "BERT+BERT": _prf(0.604, 0.445, 0.481),
    "ELECTRA+ELECTRA": _prf(0.546, 0.458, 0.488),
    "BERT+ELECTRA": _prf(0.510, 0.460, 0.472),
    "ELECTRA+CharBert": _prf(0.529, 0.447, 0.477),
    "CharBert+ELECTRA": _prf(0.531, 0.485, 0.492),
}
# Table 5: per-emotion P / R / F1 of CharBert+ELECTRA (fractions, as printed), and its
# micro / macro / std rows ("std is the standard errors computed among all labels":
# the population sd over the 28 labels reproduces it, see metrics.per_class_metrics).
_TABLE5_ROWS = (
    (0.65, 0.63, 0.64), (0.76, 0.82, 0.78), (0.53, 0.41, 0.46), (0.35, 0.35, 0.35),
    (0.39, 0.34, 0.37), (0.39, 0.33, 0.32), (0.39, 0.45, 0.42), (0.46, 0.53, 0.49),
    (0.54, 0.34, 0.41), (0.33, 0.32, 0.32), (0.37, 0.37, 0.37), (0.43, 0.49, 0.46),
    (0.43, 0.41, 0.42), (0.40, 0.39, 0.40), (0.60, 0.67, 0.63), (0.93, 0.90, 0.91),
    (1.00, 0.17, 0.29), (0.54, 0.65, 0.60), (0.75, 0.83, 0.79), (0.25, 0.30, 0.27),
    (0.60, 0.47, 0.53), (0.67, 0.50, 0.57), (0.32, 0.19, 0.23), (0.38, 0.27, 0.32),
    (0.59, 0.86, 0.70), (0.56, 0.52, 0.54), (0.61, 0.55, 0.58), (0.66, 0.54, 0.60))
SEED000_TABLE5: dict[str, dict[str, float]] = {
    label: {"precision": p, "recall": r, "f1": f}
    for label, (p, r, f) in zip(GOEMOTIONS28_LABELS, _TABLE5_ROWS)}
SEED000_TABLE5_SUMMARY: dict[str, dict[str, float]] = {
    "micro": {"precision": 0.57, "recall": 0.53, "f1": 0.55},
    "macro": {"precision": 0.53, "recall": 0.48, "f1": 0.49},
    "std": {"precision": 0.18, "recall": 0.19, "f1": 0.17},
}
# Table 6: F1 of selected emotions (fractions) under BERT (direct), ELECTRA+ELECTRA and
# CharBert+ELECTRA (LCL); the last two rows are micro / macro F1.
SEED000_TABLE6_MODELS = ("BERT", "EL+EL", "CB+EL")
SEED000_TABLE6: dict[str, dict[str, float]] = {
    "gratitude": {"BERT": 0.91, "EL+EL": 0.91, "CB+EL": 0.91},
    "amusement": {"BERT": 0.75, "EL+EL": 0.78, "CB+EL": 0.76},
    "love": {"BERT": 0.81, "EL+EL": 0.75, "CB+EL": 0.79},
    "grief": {"BERT": 0.00, "EL+EL": 0.00, "CB+EL": 0.29},
    "pride": {"BERT": 0.40, "EL+EL": 0.67, "CB+EL": 0.56},
    "relief": {"BERT": 0.00, "EL+EL": 0.20, "CB+EL": 0.32},
    "neutral": {"BERT": 0.52, "EL+EL": 0.62, "CB+EL": 0.60},
    "micro-average": {"BERT": 0.54, "EL+EL": 0.57, "CB+EL": 0.55},
    "macro-average": {"BERT": 0.46, "EL+EL": 0.49, "CB+EL": 0.49},
}
# Seed 000's hyper-parameters (Sec. 5.2.2 direct, Sec. 5.4 LCL): AdamW, fixed rate.
SEED000_DIRECT_PRESET = {"epochs": 6, "texts_per_batch": 8, "learning_rate": 1e-5,
                         "lr_schedule": "constant", "classifier_dropout": 0.3}
SEED000_LCL_PRESET = {"epochs": 9, "texts_per_batch": 16, "learning_rate": 4e-5,
                      "lr_schedule": "constant", "classifier_dropout": 0.3,
                      "temperature": 0.3, "alpha": 0.5}

# Seed 003 (Yin, "Exploring the Efficacy of BERT on a Fine-Grained Emotion Dataset:
# GoEmotions", a poster): one BERT run per row, macro F1 / weighted F1 / accuracy (the
# poster's "Acc", taken as exact-match accuracy), fractions x 100; None = "N/A".
# Row: (label, epochs stage 1, epochs stage 2 (frozen encoder), head, lr schedule,
#       fixed lr, dropout, per-class thresholds, expanded data, M-F1, W-F1, Acc).
_SEED003_ROWS = (
    ("DenseLayer(1) + Dynamic lr", 2, 0, "dense1", "linear", None, None, False, False,
     0.27, None, 0.22),
    ("DenseLayer(1) + Fixed lr(5e-5)", 4, 0, "dense1", "constant", 5e-5, None, False, False,
     0.26, None, 0.23),
    ("DenseLayer(1) + Fixed lr(5e-5) + TwoStage", 2, 2, "dense1", "constant", 5e-5, None,
     False, False, 0.29, None, 0.24),
    ("DenseLayer(1) + Dynamic lr + TwoStage", 2, 4, "dense1", "linear", None, None, False,
     False, 0.29, None, 0.24),
    ("DenseLayer(1) + Dynamic lr + Dropout(0.1) + TwoStage", 2, 6, "dense1", "linear", None,
     0.1, False, False, 0.29, None, 0.24),
    ("DenseLayer(1) + Dynamic lr + Dropout(0.1) + TwoStage + OptOnThreshold", 2, 3, "dense1",
     "linear", None, 0.1, True, False, 0.38, 0.44, 0.23),
    ("DenseLayer(1) + Dynamic lr + Dropout(0.1) + TwoStage + OptOnThreshold", 4, 4, "dense1",
     "linear", None, 0.1, True, False, 0.39, 0.44, 0.25),
    ("DenseLayer(1) + Fixed lr(5e-5) + OptOnThreshold + ExpandedDataset", 1, 0, "dense1",
     "constant", 5e-5, None, True, True, 0.35, 0.41, 0.18),
    ("DenseLayer(2) + Dynamic lr + Dropout(0.1) + TwoStage + OptOnThreshold", 4, 3, "dense2",
     "linear", None, 0.1, True, False, 0.39, 0.44, 0.23),
    ("DenseLayer(2) + Dynamic lr + Dropout(0.2) + TwoStage + OptOnThreshold", 4, 3, "dense2",
     "linear", None, 0.2, True, False, 0.39, 0.45, 0.24),
    ("DenseLayer(1) + Dynamic lr + Dropout(0.1) + OptOnThreshold + TwoStageOnExtended", 1, 3,
     "dense1", "linear", None, 0.1, True, True, 0.37, 0.42, 0.24),
)
SEED003_TABLE: tuple[dict, ...] = tuple(
    {"row": f"s003_{i + 1:02d}", "label": label, "epochs": e1, "head_epochs": e2,
     "head": head, "lr_schedule": schedule, "learning_rate": lr, "classifier_dropout": p,
     "per_class_thresholds": opt, "expanded": expanded,
     "paper": {"macro_f1": round(100 * mf1, 1),
               "weighted_f1": None if wf1 is None else round(100 * wf1, 1),
               "exact_match": round(100 * acc, 1)}}
    for i, (label, e1, e2, head, schedule, lr, p, opt, expanded, mf1, wf1, acc)
    in enumerate(_SEED003_ROWS))
