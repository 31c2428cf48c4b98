"""Training configuration and the paper's per-dataset presets.

The presets are the paper's Appendix B / the authors' released `config.py`:
learning rate 2e-5 (ISEAR 3e-5), alpha 0.5 (GoEmotions 0.1), temperature 0.3
(SST-5 0.1), batch 10 texts + 10 augmented views, AdamW (0.9, 0.999, 1e-6),
weight decay 0.01 (none on biases and LayerNorm), linear decay to 0 without
warm-up, gradient clipping at global norm 1.0 per network, 5 epochs.
"""
from __future__ import annotations

import dataclasses
import json
import math
import numbers
from typing import Any, Sequence

# = lcl_jax.data.batching.DEFAULT_BUCKETS (not imported: lcl_jax.data costs 0.7 s).
DEFAULT_LENGTH_BUCKETS = (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224,
                          256, 320, 384, 448, 512)
# [CLS] + one token + [SEP]: the shortest input a classifier can read.
MIN_MAX_LENGTH = 3
OBJECTIVES = ("ce", "scl", "lcl", "bert_ce")
FEATURE_POOLINGS = ("cls", "mean")  # = lcl_jax.models.FEATURE_POOLINGS (no heavy import here)
# = lcl_jax.models.baselines.BASELINES: --encoder names of the non-transformer baselines.
BASELINE_ENCODERS = ("bilstm", "gru", "rnn", "charcnn")
# Their learning rate unless given: Adam 1e-3 (seed 000 §5.1).
BASELINE_LEARNING_RATE = 1e-3
PARALLELISM = ("jit", "pmap")
CONTRASTIVE_IMPLS = ("auto", "dense", "tiled", "ring")  # lcl_jax.tiled_losses.IMPLEMENTATIONS
MATMUL_PRECISIONS = ("highest", "default")
BASELINE_VIEWS = ("paired", "texts")
ADAM_EPSILON_MODES = ("optax", "legacy_hf")  # = lcl_jax.train.optim.EPSILON_MODES
HEAD_INITS = ("normal_0.02", "torch_default")
LR_SCHEDULES = ("linear", "constant")
PRIMARY_HEADS = ("paper", "hf", "direct", "dense1", "dense2")  # = models.classifiers.PRIMARY_HEADS
THRESHOLD_FITS = ("validation", "train", "none")
KEEP_CHECKPOINTS = ("best", "all")
# Seed 004's auxiliary tasks (= lcl_jax.data.goemotions.COARSE_GROUPINGS, plus "none") and
# the schedules of T in L = T * L_main + (1 - T) * L_aux (lcl_jax.train.objectives.aux_weight).
AUX_TASKS = ("none", "ekman", "sentiment")
AUX_SCHEDULES = ("linear", "cosine")
# The datasets the auxiliary tasks are defined for (the 28 GoEmotions labels, multi-hot).
AUX_DATASETS = ("goemotions_multilabel",)
# Seed 004 Section 3.4: inference-time embedding mixing (lcl_jax.train.mixing).
EMBED_MIXES = ("none", "train", "paraphrase", "t5")
EMBED_MIX_SIMILARITIES = ("cosine", "bertscore")

# Dataset-name prefix -> preset overrides (longest matching prefix wins).
_PRESETS: dict[str, dict[str, float]] = {
    "": {"learning_rate": 2e-5, "alpha": 0.5, "temperature": 0.3},
    "isear": {"learning_rate": 3e-5},
    "goemotions": {"alpha": 0.1},
    "sst5": {"temperature": 0.1},
    # Not a paper dataset: the embedded default's 360 synthetic training texts give only
    # 36 steps an epoch, too few for the paper's 2e-5 to move MiniLM off chance level.
    "synthetic": {"learning_rate": 1e-4},
}


def _is_int(value) -> bool:
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
  return isinstance(value, numbers.Real) and not isinstance(value, bool)


def dataset_preset(dataset: str) -> dict[str, float]:
  """The paper's learning rate, alpha and temperature for `dataset`."""
  preset = dict(_PRESETS[""])
  for prefix in sorted(_PRESETS, key=len):
    if prefix and dataset.startswith(prefix):
      preset.update(_PRESETS[prefix])
  return preset


@dataclasses.dataclass
class TrainConfig:
  """Everything one fine-tuning run depends on (saved with the run as config.json).

  `None` for learning_rate / alpha / temperature means "the paper's preset for the
  dataset" (see `dataset_preset`); `resolved()` fills them in.
  """
  dataset: str = "synthetic"
  objective: str = "lcl"
  encoder: str = "minilm"
  weighting_encoder: str | None = None  # None: same checkpoint as `encoder`.
  data_dir: str | None = None
  workdir: str = "runs/default"
  seed: int = 0
  classes: tuple[str, ...] | None = None  # a user class subset (Empathetic Dialogues)

  # Optimisation (paper / release defaults).
  learning_rate: float | None = None
  alpha: float | None = None
  temperature: float | None = None
  # Contrastive features of SCL/LCL: 'cls' (the paper) or 'mean' over non-padding
  # tokens (seed 001's re-implementation).
  feature_pooling: str = "cls"
  # A local GloVe text file initialising the word embeddings of the bilstm/gru/rnn
  # baselines (seed 000: glove.twitter.27B.200d.txt); None: trained from scratch.
  glove_path: str | None = None
  epochs: int = 5
  patience: int | None = None  # None: train all epochs (the release); else early stop.
  # What `patience` watches: "metric" (the validation selection metric, accuracy or
  # macro F1) or "loss" (the validation cross-entropy; seed 000's biLSTM schedule).
  early_stopping_on: str = "metric"
  texts_per_batch: int = 10
  weight_decay: float = 0.01
  adam_b1: float = 0.9
  adam_b2: float = 0.999
  adam_eps: float = 1e-6
  clip_norm: float = 1.0
  # 'linear': decay to 0 over the run (the paper); 'constant': a fixed rate (seeds 000, 003).
  lr_schedule: str = "linear"

  # Φ's classifier head (ce / scl / lcl): 'paper' (the LCL release: [CLS] -> new dense ->
  # dropout -> ReLU -> dense -> dropout on the logits; the paper's reproductions), 'hf'
  # (the checkpoint's transformers *ForSequenceClassification head: BERT's pre-trained
  # pooler -> dropout -> linear; what a plain transformers loop trains, and ~2.6 points
  # better on EmoInt with MiniLM, BUILD_NOTES "Parity with PyTorch"), 'direct' (seed 000:
  # dense + tanh -> dropout -> dense), 'dense1' / 'dense2' (seed 003's DenseLayer(1)/(2)).
  head: str = "paper"
  classifier_dropout: float | None = None  # None: the head's default (0.1 / 0.3 / 0)

  # Two-stage training (seed 003): after `epochs`, `head_epochs` more with every encoder
  # frozen and the heads re-initialised, at `head_learning_rate` (None: learning_rate).
  head_epochs: int = 0
  head_learning_rate: float | None = None

  # Data.
  max_length: int = 128
  # Static padded lengths (capped at max_length): = lcl_jax.data.batching.DEFAULT_BUCKETS
  # (a test checks the copy), every 8 tokens up to 64, then coarser; see there.
  length_buckets: tuple[int, ...] = DEFAULT_LENGTH_BUCKETS
  eval_batch_size: int = 64
  augment_p: float = 0.3
  fresh_views_per_epoch: bool = False
  max_train_examples: int | None = None  # smoke runs / tests: a deterministic subset
  max_eval_examples: int | None = None
  max_steps_per_epoch: int | None = None
  # Seed 003's data expansion: this many extra training rows, each two training texts
  # joined by a space with the union of their labels (multi-label datasets only).
  concat_expansion: int = 0

  # Multi-label (GoEmotions-28): per-class thresholds on sigmoid probabilities.
  thresholds: tuple[float, ...] | float = 0.5
  # Per-class thresholds maximising each class's F1, fitted after training on the best
  # epoch's predictions of this split ('validation', 'train' as seed 003, or 'none') and
  # applied to test, beside the global `thresholds`.
  threshold_fit: str = "validation"

  # Compute.
  dtype: str = "float32"
  remat: bool = False
  parallelism: str = "jit"
  dropout_rng_impl: str = "threefry2x32"  # measured: not slower than rbg (BUILD_NOTES)
  checkpoint_every_steps: int = 200
  export_hf: bool = False  # also write the best networks as Hugging Face checkpoints
  save_features: bool = False  # Φ's test/validation [CLS] vectors in predictions/*.npz
  # What a finished run keeps: "best" drops the latest-state checkpoint (optimiser state,
  # ~3x the params) once results.json is written; "all" keeps it.
  keep_checkpoints: str = "best"
  log_every_steps: int = 10
  progress_bar: bool = True
  # Also evaluate validation and test every this many steps (0: only at epoch ends),
  # written to metrics.jsonl as {"kind": "step_eval", "step", "eval": {"validation",
  # "test"}} (seed 004's Fig. 5: test macro F1 every 1000 steps). Model selection,
  # early stopping and the saved predictions stay per epoch.
  eval_every_steps: int = 0

  # Fidelity options (issue 14): where the authors' release and this package differ,
  # or the paper does not say, both readings can be run. Defaults keep the behaviour
  # of the runs recorded in BUILD_NOTES.
  # What the baselines (ce, scl, bert_ce) train on: 'paired' = K texts + their K
  # augmented views (the unmerged third-party train_baseline.py of the release repo),
  # 'texts' = the K texts only. LCL always trains on paired batches (the release).
  baseline_views: str = "paired"
  # AdamW rule: 'optax' (optax.adamw = torch.optim.AdamW) or 'legacy_hf' (the
  # release's transformers.AdamW: eps on the uncorrected sqrt(v)); see train/optim.py.
  adam_epsilon_mode: str = "optax"
  # Seed of the augmented views: None = each run's `seed` (views differ per seed);
  # an int = the same views for every seed (the release makes one set of views).
  view_seed: int | None = None
  # Init of the primary network's new head layers (pooler_fc, label): 'normal_0.02'
  # (transformers' _init_weights, normal(initializer_range = 0.02), zero bias) or
  # 'torch_default' (torch.nn.Linear's default, what the release's Φ head gets).
  head_init: str = "normal_0.02"

  # Scale (issue 12).
  # Contrastive term: 'dense' [B, B] losses, 'tiled' (column tiles, memory O(B * tile)),
  # 'ring' (tiles passed around the devices of the data mesh, `jit` parallelism), or
  # 'auto' (dense below `contrastive_auto_threshold` global rows, else ring on >1 device
  # / tiled on one). All give the same values and gradients (lcl_jax.tiled_losses).
  contrastive_impl: str = "auto"
  contrastive_tile_size: int = 512
  contrastive_auto_threshold: int = 4096
  # jax.default_matmul_precision around the train and eval steps: 'highest' keeps
  # float32 matmuls float32 on GPUs that would use TF32 (and TPUs that would use bf16
  # passes); 'default' lets the backend choose (faster). No effect on CPU.
  matmul_precision: str = "highest"

  # Seed 004's auxiliary task (issue 10): a second head on Φ's encoder (hard parameter
  # sharing) predicting the coarse 'ekman' or 'sentiment' groups (+ neutral, multi-hot,
  # BCE); the loss is T * L_main + (1 - T) * L_aux with T going from `aux_weight_start`
  # (first step) to `aux_weight_end` (last step of --epochs) along `aux_schedule`.
  aux_task: str = "none"
  aux_weight_start: float = 0.8
  aux_weight_end: float = 1.0
  aux_schedule: str = "linear"

  # Label-embedding attention (seed 004 Section 3.3; issue 10): every row is [CLS] + the
  # label names' word pieces + [SEP] + the first `label_text_tokens` text pieces + [SEP]
  # (lcl_jax.data.label_inputs; the row length replaces `max_length`), and Φ (LCL: Φ and
  # Ψ) scores each label from its own positions (lcl_jax.models.label_attention).
  label_embeddings: bool = False
  label_text_tokens: int = 50
  # Embedding mixing at inference (seed 004 Section 3.4; lcl_jax.train.mixing): after
  # training, the best params are also evaluated with Φ's [CLS] vector h mixed as
  # w * h_test + (1 - w) * h_candidate before the head; results["mixed"]. 'none' = off;
  # 'train' = the most similar training text (embed_mix_similarity: 'cosine' of Φ's own
  # [CLS] vectors, or 'bertscore' through the bert-score package); 'paraphrase' = a
  # paraphrase per example read from paraphrase_file (TSV); 't5' = paraphrases generated
  # by the local T5 checkpoint t5_checkpoint. embed_mix_weight = w (0.92: the document's
  # best).
  embed_mix: str = "none"
  embed_mix_weight: float = 0.92
  embed_mix_similarity: str = "cosine"
  paraphrase_file: str | None = None
  t5_checkpoint: str | None = None

  def resolved(self) -> "TrainConfig":
    """A copy with the presets filled in and every field validated.

    Raises:
      ValueError: a field is invalid; the message names its flag (see `validate`).
    """
    self.validate()
    preset = dataset_preset(self.dataset)
    if self.encoder in BASELINE_ENCODERS:
      preset["learning_rate"] = BASELINE_LEARNING_RATE
    cfg = dataclasses.replace(
        self,
        learning_rate=preset["learning_rate"] if self.learning_rate is None else self.learning_rate,
        alpha=preset["alpha"] if self.alpha is None else self.alpha,
        temperature=preset["temperature"] if self.temperature is None else self.temperature,
        weighting_encoder=self.weighting_encoder or self.encoder,
        length_buckets=tuple(sorted(int(b) for b in self.length_buckets)),
        classes=tuple(self.classes) if self.classes else None,
    )
    cfg.validate()
    return cfg

  def validate(self) -> None:
    """Checks every field; raises `ValueError` naming the flag (`--name`, the field).

    Run before anything is written (the trainer calls it through `resolved()`).
    """
    def bad(name: str, why: str) -> ValueError:
      return ValueError(f"--{name}={getattr(self, name)!r}: {why} (TrainConfig.{name})")

    is_int, is_real = _is_int, _is_real

    for name in ("dataset", "objective", "encoder", "workdir", "dtype", "parallelism",
                 "dropout_rng_impl"):
      if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
        raise bad(name, "must be a non-empty string")
    for name in ("weighting_encoder", "data_dir"):
      value = getattr(self, name)
      if value is not None and (not isinstance(value, str) or not value.strip()):
        raise bad(name, "must be a non-empty string or None")
    if self.objective not in OBJECTIVES:
      raise bad("objective", f"must be one of {OBJECTIVES}")
    if self.feature_pooling not in FEATURE_POOLINGS:
      raise bad("feature_pooling", f"must be one of {FEATURE_POOLINGS}")
    baseline = self.encoder in BASELINE_ENCODERS
    if baseline and self.objective == "bert_ce":
      raise bad("objective", f"bert_ce needs a BERT checkpoint, not the {self.encoder} baseline")
    if baseline and self.export_hf:
      raise bad("export_hf", f"the {self.encoder} baseline has no Hugging Face format")
    if (self.weighting_encoder in BASELINE_ENCODERS) != baseline and (
        self.objective == "lcl" and self.weighting_encoder is not None):
      raise bad("weighting_encoder", "a baseline and a transformer cannot share one "
                "tokenizer; use baselines for both networks or for neither")
    if self.glove_path is not None and self.encoder not in ("bilstm", "gru", "rnn"):
      raise bad("glove_path", "only the word-level baselines (bilstm, gru, rnn) take GloVe "
                "vectors")
    if self.parallelism not in PARALLELISM:
      raise bad("parallelism", f"must be one of {PARALLELISM}")
    if self.keep_checkpoints not in KEEP_CHECKPOINTS:
      raise bad("keep_checkpoints", f"must be one of {KEEP_CHECKPOINTS}")
    if self.dtype not in ("float32", "bfloat16"):
      raise bad("dtype", "must be 'float32' or 'bfloat16'")
    try:
      import jax
      jax.random.key(0, impl=self.dropout_rng_impl)
    except ValueError as e:
      raise bad("dropout_rng_impl", str(e)) from None
    if self.classes is not None and (
        isinstance(self.classes, str) or not len(self.classes)
        or any(not isinstance(c, str) or not c.strip() for c in self.classes)):
      raise bad("classes", "must be a non-empty list of class names or None")
    if not is_int(self.seed) or not 0 <= self.seed < 2**31 - 1:
      raise bad("seed", "must be an integer in [0, 2**31 - 1)")
    # Positive finite reals; None means the dataset preset (filled in by resolved()).
    for name, optional in (("learning_rate", True), ("temperature", True),
                           ("adam_eps", False), ("clip_norm", False)):
      value = getattr(self, name)
      if value is None and optional:
        continue
      if not is_real(value) or not math.isfinite(value) or not value > 0:
        raise bad(name, "must be a finite number > 0")
    for name, low, high, high_open in (("alpha", 0.0, 1.0, False), ("augment_p", 0.0, 1.0, False),
                                       ("adam_b1", 0.0, 1.0, True), ("adam_b2", 0.0, 1.0, True),
                                       ("weight_decay", 0.0, math.inf, True)):
      value = getattr(self, name)
      if value is None and name == "alpha":
        continue
      ok = is_real(value) and math.isfinite(value) and low <= value and (
          value < high if high_open else value <= high)
      if not ok:
        raise bad(name, f"must be a finite number in [{low}, {high}{')' if high_open else ']'}")
    for name in ("epochs", "texts_per_batch", "eval_batch_size", "checkpoint_every_steps",
                 "log_every_steps"):
      if not is_int(getattr(self, name)) or getattr(self, name) < 1:
        raise bad(name, "must be an integer >= 1")
    for name in ("patience", "max_train_examples", "max_eval_examples", "max_steps_per_epoch"):
      value = getattr(self, name)
      if value is not None and (not is_int(value) or value < 1):
        raise bad(name, "must be an integer >= 1 (or unset: no limit)")
    if not is_int(self.max_length) or self.max_length < MIN_MAX_LENGTH:
      raise bad("max_length", f"must be an integer >= {MIN_MAX_LENGTH} ([CLS], at least one "
                "token and [SEP])")
    buckets = self.length_buckets
    if (isinstance(buckets, (str, bytes)) or not isinstance(buckets, Sequence) or not buckets
        or any(not is_int(b) for b in buckets)):
      raise bad("length_buckets", "must be a non-empty list of integers")
    if min(buckets) < MIN_MAX_LENGTH:
      raise bad("length_buckets", f"every length must be >= {MIN_MAX_LENGTH}")
    thresholds = (self.thresholds,) if is_real(self.thresholds) else self.thresholds
    if (isinstance(thresholds, (str, bytes)) or not isinstance(thresholds, Sequence)
        or not thresholds or any(not is_real(t) or not 0.0 < t < 1.0 for t in thresholds)):
      raise bad("thresholds", "must be one number or a list of numbers, each in (0, 1)")
    for name in ("fresh_views_per_epoch", "remat", "export_hf", "progress_bar"):
      if not isinstance(getattr(self, name), bool):
        raise bad(name, "must be true or false")
    if self.lr_schedule not in LR_SCHEDULES:
      raise bad("lr_schedule", f"must be one of {LR_SCHEDULES}")
    if self.head not in PRIMARY_HEADS:
      raise bad("head", f"must be one of {PRIMARY_HEADS}")
    if self.head != "paper" and self.objective == "bert_ce":
      raise bad("head", "bert_ce has BertForSequenceClassification's head; use 'paper'")
    if self.classifier_dropout is not None and not (
        is_real(self.classifier_dropout) and 0.0 <= self.classifier_dropout < 1.0):
      raise bad("classifier_dropout", "must be a number in [0, 1) or unset")
    if not is_int(self.head_epochs) or self.head_epochs < 0:
      raise bad("head_epochs", "must be an integer >= 0")
    if not is_int(self.eval_every_steps) or self.eval_every_steps < 0:
      raise bad("eval_every_steps", "must be an integer >= 0 (0: evaluate at epoch ends only)")
    if self.head_learning_rate is not None and not (
        is_real(self.head_learning_rate) and math.isfinite(self.head_learning_rate)
        and self.head_learning_rate > 0):
      raise bad("head_learning_rate", "must be a finite number > 0 or unset")
    if self.threshold_fit not in THRESHOLD_FITS:
      raise bad("threshold_fit", f"must be one of {THRESHOLD_FITS}")
    if not is_int(self.concat_expansion) or self.concat_expansion < 0:
      raise bad("concat_expansion", "must be an integer >= 0")
    if not isinstance(self.save_features, bool):
      raise bad("save_features", "must be true or false")
    if self.early_stopping_on not in ("metric", "loss"):
      raise bad("early_stopping_on", "must be 'metric' or 'loss'")
    self._validate_scale_fields(bad)
    self._validate_fidelity_options(bad)
    self._validate_aux_fields(bad)
    self._validate_label_embeddings(bad)
    self._validate_embed_mix(bad)

  def _validate_aux_fields(self, bad) -> None:
    """Issue 10: the auxiliary task (seed 004, Section 3.2)."""
    if self.aux_task not in AUX_TASKS:
      raise bad("aux_task", f"must be one of {AUX_TASKS}")
    if self.aux_schedule not in AUX_SCHEDULES:
      raise bad("aux_schedule", f"must be one of {AUX_SCHEDULES}")
    for name in ("aux_weight_start", "aux_weight_end"):
      value = getattr(self, name)
      if not _is_real(value) or not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise bad(name, "must be a finite number in [0, 1] (T, the main task's weight)")
    if self.aux_weight_end < self.aux_weight_start:
      raise bad("aux_weight_end", f"must be >= --aux_weight_start={self.aux_weight_start} "
                "(T grows over training: the auxiliary loss weighs most at first)")
    if self.aux_task != "none":
      if self.dataset not in AUX_DATASETS:
        raise bad("aux_task", f"the coarse labelings are defined for the 28 GoEmotions "
                  f"labels only (--dataset in {AUX_DATASETS}), not --dataset={self.dataset}")
      if self.encoder in BASELINE_ENCODERS:
        raise bad("aux_task", f"the auxiliary head needs a transformer encoder, not the "
                  f"{self.encoder} baseline")

  def _validate_label_embeddings(self, bad) -> None:
    """Issue 10's label-embedding attention: the flags and what they cannot combine with.

    (The row length against the encoder's positions is checked with the tokenizer, when
    the data are prepared: `lcl_jax.train.data_pipeline`.)
    """
    if not isinstance(self.label_embeddings, bool):
      raise bad("label_embeddings", "must be true or false")
    if not _is_int(self.label_text_tokens) or self.label_text_tokens < 1:
      raise bad("label_text_tokens", "must be an integer >= 1 (text word pieces after the "
                "label block)")
    if not self.label_embeddings:
      return
    if self.encoder in BASELINE_ENCODERS:
      raise bad("label_embeddings", f"needs a transformer --encoder (BERT/ELECTRA/RoBERTa "
                f"checkpoint), not the {self.encoder} baseline")
    if self.objective == "bert_ce":
      raise bad("label_embeddings", "replaces the classifier head; use --objective=ce "
                "(or scl/lcl), not bert_ce (BertForSequenceClassification's pooler head)")
    if self.head != "paper":
      raise bad("label_embeddings", f"the label-attention head replaces Φ's head; "
                f"--head={self.head} cannot be combined with it (leave --head=paper)")

  def _validate_scale_fields(self, bad) -> None:
    """The issue-12 block: contrastive implementation and matmul precision."""
    if self.contrastive_impl not in CONTRASTIVE_IMPLS:
      raise bad("contrastive_impl", f"must be one of {CONTRASTIVE_IMPLS}")
    for name in ("contrastive_tile_size", "contrastive_auto_threshold"):
      if not _is_int(getattr(self, name)) or getattr(self, name) < 1:
        raise bad(name, "must be an integer >= 1")
    if self.matmul_precision not in MATMUL_PRECISIONS:
      raise bad("matmul_precision", f"must be one of {MATMUL_PRECISIONS}")

  def _validate_fidelity_options(self, bad) -> None:
    for name, allowed in (("baseline_views", BASELINE_VIEWS),
                          ("adam_epsilon_mode", ADAM_EPSILON_MODES),
                          ("head_init", HEAD_INITS)):
      if getattr(self, name) not in allowed:
        raise bad(name, f"must be one of {allowed}")
    if self.view_seed is not None and (isinstance(self.view_seed, bool)
                                       or not isinstance(self.view_seed, int)
                                       or self.view_seed < 0):
      raise bad("view_seed", "must be None or an int >= 0")

  def _validate_embed_mix(self, bad) -> None:
    """Seed 004's embedding mixing (checked before anything is written)."""
    import importlib.util
    import os
    if self.embed_mix not in EMBED_MIXES:
      raise bad("embed_mix", f"must be one of {EMBED_MIXES}")
    weight = self.embed_mix_weight
    if not (_is_real(weight) and math.isfinite(weight) and 0.0 <= weight <= 1.0):
      raise bad("embed_mix_weight", "must be a finite number in [0, 1] (the weight of the "
                "test example's own [CLS] vector)")
    if self.embed_mix_similarity not in EMBED_MIX_SIMILARITIES:
      raise bad("embed_mix_similarity", f"must be one of {EMBED_MIX_SIMILARITIES}")
    if self.embed_mix != "none" and self.encoder in BASELINE_ENCODERS:
      raise bad("embed_mix", f"mixes transformer [CLS] vectors; the {self.encoder} baseline "
                "has none")
    if self.embed_mix_similarity == "bertscore":
      if self.embed_mix != "train":
        raise bad("embed_mix_similarity", "bertscore chooses training candidates; it needs "
                  "--embed_mix=train")
      if importlib.util.find_spec("bert_score") is None:
        raise bad("embed_mix_similarity", "bertscore needs the bert-score package, which is "
                  "not installed (pip install bert-score), or use 'cosine'")
    for name, mode, kind in (("paraphrase_file", "paraphrase", "file"),
                             ("t5_checkpoint", "t5", "directory")):
      value = getattr(self, name)
      if value is None:
        if self.embed_mix == mode:
          raise bad(name, f"--embed_mix={mode} needs --{name}")
        continue
      if not isinstance(value, str) or not value.strip():
        raise bad(name, "must be a non-empty path or unset")
      if self.embed_mix != mode:
        raise bad(name, f"is only read with --embed_mix={mode}")
      exists = os.path.isfile(value) if kind == "file" else os.path.isdir(value)
      if not exists:
        raise bad(name, f"no such {kind}")

  @property
  def trains_on_views(self) -> bool:
    """Whether training batches hold the K augmented views beside the K texts."""
    return self.objective == "lcl" or self.baseline_views == "paired"

  @property
  def augmentation_seed(self) -> int:
    """The seed the augmented views are drawn with (`view_seed`, else `seed`)."""
    return self.seed if self.view_seed is None else self.view_seed

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

  @classmethod
  def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
      raise ValueError(f"unknown TrainConfig fields {unknown}; known: {sorted(known)}")
    values = dict(values)
    for name in ("length_buckets", "classes"):
      if isinstance(values.get(name), list):
        values[name] = tuple(values[name])
    if isinstance(values.get("thresholds"), list):
      values["thresholds"] = tuple(values["thresholds"])
    return cls(**values)


# What the runs of one program (`trainer.train_group`, --runs_per_program) may differ
# in: the seed (init, data order, augmented views, dropout), the objective's alpha and
# temperature (traced per-run scalars) and the folder. Every other field is shared.
GROUP_VARYING = ("seed", "alpha", "temperature", "workdir")


def group_key(cfg: TrainConfig) -> str:
  """Equal for configs that may train in one program (they differ only in GROUP_VARYING)."""
  return dataclasses.replace(cfg, seed=0, alpha=None, temperature=None, workdir="").to_json()


def parse_thresholds(spec: str | float | Sequence[float]) -> tuple[float, ...] | float:
  """'0.5' -> 0.5; '0.3,0.4,...' -> per-class tuple; validates the range."""
  if isinstance(spec, str):
    parts = [p for p in spec.split(",") if p.strip()]
    try:
      values = [float(p) for p in parts]
    except ValueError:
      raise ValueError(f"--thresholds={spec!r}: not a number or a comma-separated list of "
                       "numbers") from None
    if not values:
      raise ValueError(f"--thresholds={spec!r}: empty")
    spec = values[0] if len(values) == 1 else tuple(values)
  values = (spec,) if isinstance(spec, (int, float)) else tuple(spec)
  for v in values:
    if not 0.0 < float(v) < 1.0:
      raise ValueError(f"--thresholds: {v} is not in (0, 1)")
  return float(spec) if isinstance(spec, (int, float)) else tuple(float(v) for v in spec)
