"""The numbers of the two follow-up studies, printed beside ours by
`experiments/reimplementation_study.py`.

* Seed 001 (Modarres & Raeisi, "Happy is Farther From Sad Than Joyful", a PyTorch
  re-implementation of SCL/LCL): Table 1 (test accuracy, %, best run; ED, GoEmotions with
  the first label, EmoInt, SST-5, SST-2), Table 2 (AG News, TSA, ParsiNLU sentiment
  "PNS", with mBERT for PNS) and its RNN / GRU accuracies on ED (25 %, 30 %). Blank cells
  of its tables are absent here.
* Seed 000 (Huang & Wen, GoEmotions-28 multi-label): the biLSTM's macro F1 0.42 (§5.1.3)
  and Table 3's BERTweet macro P / R / F1 0.574 / 0.423 / 0.469; the CharCNN has no
  number in the document ("performs not that well").

Keys: dataset names of :mod:`lcl_jax.data`, row names of the binary (`ROWS`), metric
names of the trainer's results (``accuracy``, ``macro_f1``, ``macro_precision``,
``macro_recall``). Values in %.
"""
from __future__ import annotations

from typing import Any, NamedTuple

from lcl_jax.studies.paper_numbers import SEED000_DIRECT_PRESET, PaperTable

MULTILINGUAL_BERT = "bert-base-multilingual-cased"
BERTWEET_BASE = "vinai/bertweet-base"

# Row -> label (the document's wording; ours name the encoder actually used).
ROW_LABELS: dict[str, str] = {
    "bert_ce": "BERT-base (mBERT on PNS) + CE",
    "ce": "ELECTRA + CE",
    "scl": "ELECTRA + SCL",
    "lcl": "ELECTRA (mBERT on PNS) + LCL",
    "rnn": "RNN",
    "gru": "GRU",
    "bilstm": "biLSTM, fixed epochs (seed 000)",
    "bilstm_es": "biLSTM, early stopping (seed 000)",
    "charcnn": "CharCNN (seed 000)",
    "bertweet": "BERTweet + BCE (seed 000)",
}
ROWS = tuple(ROW_LABELS)

SEED001_TABLE1_DATASETS = ("empathetic_dialogues", "goemotions_first_label", "emoint", "sst5",
                           "sst2")
SEED001_TABLE2_DATASETS = ("ag_news", "tsa", "parsinlu_sentiment")
SEED000_DATASETS = ("goemotions_multilabel",)
DATASETS = SEED001_TABLE1_DATASETS + SEED001_TABLE2_DATASETS + SEED000_DATASETS

# Which rows each document ran on which dataset.
ROW_DATASETS: dict[str, tuple[str, ...]] = {
    "bert_ce": SEED001_TABLE1_DATASETS + SEED001_TABLE2_DATASETS,
    "ce": SEED001_TABLE1_DATASETS,
    "scl": SEED001_TABLE1_DATASETS,
    "lcl": SEED001_TABLE1_DATASETS + SEED001_TABLE2_DATASETS,
    "rnn": ("empathetic_dialogues",),
    "gru": ("empathetic_dialogues",),
    "bilstm": SEED000_DATASETS,
    "bilstm_es": SEED000_DATASETS,
    "charcnn": SEED000_DATASETS,
    "bertweet": SEED000_DATASETS,
}

# Seed 001's grid on SST-5 (best: alpha 0.2, tau 10, batch 32).
GRID_ALPHAS = (0.1, 0.2, 0.7)
GRID_TEMPERATURES = (0.07, 7.0, 10.0, 100.0, 1000.0)
GRID_BATCH_SIZES = (4, 8, 32)


class Recipe(NamedTuple):
  """One row's training recipe from its document (issue 18 item 17).

  fields: the TrainConfig fields the document gives (explicit flags of the binary win;
    --smoke keeps its own epochs); what it does not give stays the trainer's default.
  source: where the values are in the document.
  unstated: what the document does not give (so the trainer's default is used).
  """
  fields: dict[str, Any]
  source: str
  unstated: str


# Seed 001 Sec. 4: "fine-tuned for ten epochs with a batch size of 8" (its BERT /
# ELECTRA + CE rows); its grid's best on SST-5: alpha 0.2, tau 10, batch 32, used for its
# contrastive rows; Sec. 3.3-3.4: the losses sum over the K texts of a batch (no
# augmentation anywhere in the document). Features: [CLS] (Sec. 3.3, the default).
SEED001_CE = {"epochs": 10, "texts_per_batch": 8, "baseline_views": "texts"}
SEED001_CONTRASTIVE = {"epochs": 10, "texts_per_batch": 32, "alpha": 0.2, "temperature": 10.0,
                       "contrastive_reduction": "sum"}
# What every seed-001 run shares (hparam_search --preset=reimplementation searches its
# grid with it): 10 epochs, no augmented views, the contrastive term summed.
SEED001_SETUP = {"epochs": 10, "baseline_views": "texts", "lcl_views": "texts",
                 "contrastive_reduction": "sum"}
# Seed 000 Sec. 5.1.2: "Adam with a learning rate of 1e-3" (= AdamW without weight decay,
# constant rate); no augmentation.
SEED000_BILSTM = {"learning_rate": 1e-3, "lr_schedule": "constant", "weight_decay": 0.0,
                  "baseline_views": "texts"}

_SEED001_LR = "learning rate and schedule (trainer preset: 2e-5, linear decay)"
_BASELINE_UNSTATED = "epochs, batch size, learning rate (trainer: 5 epochs, 10 texts, 1e-3)"
ROW_RECIPES: dict[str, Recipe] = {
    "bert_ce": Recipe(SEED001_CE, "seed 001 Sec. 4: 10 epochs, batch 8; no augmentation",
                      _SEED001_LR),
    "ce": Recipe(SEED001_CE, "seed 001 Sec. 4: 10 epochs, batch 8; no augmentation",
                 _SEED001_LR),
    "scl": Recipe({**SEED001_CONTRASTIVE, "baseline_views": "texts"},
                  "seed 001 Sec. 4 grid's best (alpha 0.2, tau 10, batch 32), Sec. 3.3 SCL "
                  "summed over the K texts; 10 epochs (Sec. 4)",
                  _SEED001_LR + "; which setting its SCL runs used"),
    "lcl": Recipe({**SEED001_CONTRASTIVE, "lcl_views": "texts"},
                  "seed 001 Sec. 4 grid's best (alpha 0.2, tau 10, batch 32), Sec. 3.4 LCL "
                  "summed over the K texts (no views); 10 epochs (Sec. 4)",
                  _SEED001_LR),
    "rnn": Recipe({"baseline_views": "texts"}, "seed 001 Sec. 3.1: no augmentation",
                  _BASELINE_UNSTATED),
    "gru": Recipe({"baseline_views": "texts"}, "seed 001 Sec. 3.1: no augmentation",
                  _BASELINE_UNSTATED),
    "bilstm": Recipe(SEED000_BILSTM, "seed 000 Sec. 5.1.2: Adam at a fixed 1e-3, fixed "
                     "epochs; no augmentation", "epochs, batch size (trainer: 5, 10 texts)"),
    "bilstm_es": Recipe({**SEED000_BILSTM, "patience": 3, "early_stopping_on": "loss"},
                        "seed 000 Sec. 5.1.2: Adam at a fixed 1e-3, stop when the validation "
                        "loss has not gone down for 3 epochs; no augmentation",
                        "maximum epochs, batch size (trainer: 5, 10 texts)"),
    "charcnn": Recipe({"baseline_views": "texts"}, "seed 000 Sec. 2.1 (no augmentation)",
                      "every training setting (trainer: 5 epochs, 10 texts, 1e-3)"),
    "bertweet": Recipe({**SEED000_DIRECT_PRESET, "head": "direct", "baseline_views": "texts"},
                       "seed 000 Sec. 5.2.1-5.2.2 (its Table 3 direct models): 6 epochs, "
                       "batch 8, AdamW at a fixed 1e-5, [CLS] -> dense + tanh -> dropout 0.3 "
                       "-> dense, BCE, threshold 0.5; no augmentation",
                       "nothing"),
}


def _acc(value: float) -> dict[str, float]:
  return {"accuracy": value}


NUMBERS: PaperTable = {
    "empathetic_dialogues": {"bert_ce": _acc(55.0), "ce": _acc(56.4), "scl": _acc(56.8),
                             "lcl": _acc(57.7), "rnn": _acc(25.0), "gru": _acc(30.0)},
    "goemotions_first_label": {"bert_ce": _acc(60.2), "scl": _acc(56.8), "lcl": _acc(64.1)},
    "emoint": {"bert_ce": _acc(85.0), "scl": _acc(33.1), "lcl": _acc(34.2)},
    "sst5": {"bert_ce": _acc(52.5), "ce": _acc(55.6), "scl": _acc(58.3), "lcl": _acc(57.1)},
    "sst2": {"bert_ce": _acc(93.5), "ce": _acc(94.5), "scl": _acc(94.8), "lcl": _acc(94.8)},
    "ag_news": {"bert_ce": _acc(94.5), "lcl": _acc(94.7)},
    "tsa": {"bert_ce": _acc(84.2), "lcl": _acc(85.7)},
    "parsinlu_sentiment": {"bert_ce": _acc(76.0), "lcl": _acc(76.0)},
    "goemotions_multilabel": {
        "bilstm": {"macro_f1": 42.0},
        "bertweet": {"macro_precision": 57.4, "macro_recall": 42.3, "macro_f1": 46.9},
    },
}

# Seed 004 (Wang & Feng, "Delving into Fine-Grained Emotion Classification"), Table 3:
# NMI_joint (Eq. 7, a fraction as printed, not %) between the 28-label GoEmotions task and
# each auxiliary labeling, per split; compared by lcl_jax.studies.task_similarity.
SEED004_TABLE3_NMI: dict[str, dict[str, float]] = {
    "sentiment": {"train": 3.44e-17, "validation": 0.00460, "test": 0.00010},
    "ekman": {"train": 1.78e-05, "validation": 0.00833, "test": 0.00028},
}

# Seed 004, Table 2 (test macro F1 at threshold 0.3, one run each; % here, the document
# prints fractions): row key of lcl_jax.studies.goemotions_methods -> (epochs, macro F1).
SEED004_TABLE2: dict[str, tuple[int, float]] = {
    "baseline_4": (4, 47.0),
    "baseline_10": (10, 50.6),
    "aux_ekman": (10, 51.0),
    "aux_senti": (10, 51.3),
    "labelemb_4": (4, 53.7),
    "labelemb_10": (10, 53.7),
    "labelemb_aux_senti": (10, 53.0),
    "mix_train_4": (4, 47.2),
    "mix_train_10": (10, 47.2),
    "mix_t5_4": (4, 48.9),
    "mix_t5_10": (10, 51.3),
    "mix_t5_aux": (10, 48.9),
    "mix_t5_labelemb": (10, 52.8),
}
# Seed 004's settings (Sections 4.2-4.4): BERT-base, batch 16, AdamW at 5e-5, 10 epochs
# (4 for the GoEmotions paper's baseline length), decision threshold 0.3, 50 text tokens
# after the label tokens, auxiliary weight T from 0.8, mixing weight 0.92; Fig. 5 plots
# test macro F1 every 1,000 steps.
SEED004_PRESET = {"texts_per_batch": 16, "learning_rate": 5e-5, "epochs": 10,
                  "thresholds": 0.3, "label_text_tokens": 50, "aux_weight_start": 0.8,
                  "embed_mix_weight": 0.92, "eval_every_steps": 1000}
