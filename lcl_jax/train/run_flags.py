"""The absl flags of one training run's settings, shared by every binary.

`experiments/train.py` and the table/figure binaries (through
`lcl_jax.experiment.cli`) define the same per-run flags here and build their
`TrainConfig`s with `run_config`, so a setting means the same thing everywhere.
"""
from __future__ import annotations

from typing import Any, Callable

from absl import flags

from lcl_jax.train import config
from lcl_jax.train.config import TrainConfig, parse_thresholds

FLAGS = flags.FLAGS
# The flags defined below (by the functions of this module) are key flags of the binary
# that calls them, so its --help lists them (not only --helpfull).
flags.disclaim_key_flags()


def define_run_flags(*, encoder_default: str, encoder_help: str) -> None:
  """Defines the per-run flags (None: the paper's per-dataset preset / release default)."""
  flags.DEFINE_string("encoder", encoder_default, encoder_help)
  flags.DEFINE_string("weighting_encoder", None,
                      "Checkpoint of LCL's weighting network (default: --encoder).")
  flags.DEFINE_string("data_dir", None, "Folder with the release files (default $LCL_DATA_DIR).")
  flags.DEFINE_integer("epochs", None,
                       "Epochs per run. Default: 5 (the paper's) for every paper dataset; "
                       "3 for the synthetic built-in dataset of experiments.train; 1 with "
                       "--smoke.")
  flags.DEFINE_integer("patience", None, "Early-stopping patience in epochs (default: none).")
  flags.DEFINE_enum("early_stopping_on", "metric", ["metric", "loss"],
                    "What --patience watches: the validation accuracy / macro F1, or the "
                    "validation loss (seed 000's biLSTM).")
  flags.DEFINE_float("learning_rate", None, "Peak learning rate (default: per-dataset preset).")
  flags.DEFINE_float("alpha", None, "Classification-term weight (default: preset).")
  flags.DEFINE_float("temperature", None, "Contrastive temperature tau (default: preset).")
  flags.DEFINE_enum("feature_pooling", "cls", list(config.FEATURE_POOLINGS),
                    "Contrastive features of SCL/LCL: the [CLS] state (the paper) or the mean "
                    "over non-padding tokens (seed 001).")
  flags.DEFINE_string("glove_path", None,
                      "GloVe text file for the word embeddings of --encoder=bilstm/gru/rnn "
                      "(seed 000: glove.twitter.27B.200d.txt); default: trained from scratch.")
  flags.DEFINE_integer("texts_per_batch", 10, "K: texts per batch (plus K augmented views).")
  flags.DEFINE_integer("max_length", 128, "Token truncation length.")
  flags.DEFINE_list("length_buckets", [str(b) for b in config.DEFAULT_LENGTH_BUCKETS],
                    "Static padded lengths (those <= --max_length are used; one compiled "
                    "train step per length that occurs): by default every 8 tokens up to "
                    "64, every 16 up to 128, every 32 up to 256, every 64 up to 512. Fewer "
                    "lengths compile less but pad more.")
  flags.DEFINE_integer("eval_batch_size", 64, "Rows per evaluation batch.")
  flags.DEFINE_bool("fresh_views_per_epoch", False, "Re-augment the training texts every epoch.")
  flags.DEFINE_string("thresholds", "0.5",
                      "Multi-label decision threshold: one value or one per class (comma list).")
  flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Compute dtype of the encoders.")
  flags.DEFINE_bool("remat", False, "Rematerialise each transformer layer (saves memory).")
  flags.DEFINE_enum("parallelism", "jit", list(config.PARALLELISM), "Data-parallel implementation.")
  flags.DEFINE_integer("max_train_examples", None, "Use a fixed random subset of the train split.")
  flags.DEFINE_integer("max_eval_examples", None,
                       "Use fixed random subsets of validation AND test (smoke runs); "
                       "results.json ('test_subset') and the results table then say that "
                       "the test metrics are on a subset.")
  flags.DEFINE_integer("max_steps_per_epoch", None, "Cap on training steps per epoch.")
  flags.DEFINE_integer("checkpoint_every_steps", 200, "Steps between mid-epoch checkpoints.")
  flags.DEFINE_bool("progress_bar", True, "Show a tqdm progress bar (in-process runs).")
  flags.DEFINE_integer("eval_every_steps", 0,
                       "Also evaluate validation and test every N training steps, recorded "
                       "in metrics.jsonl (kind 'step_eval'); 0 = at epoch ends only. Model "
                       "selection stays per epoch.")
  flags.DEFINE_enum("lr_schedule", "linear", list(config.LR_SCHEDULES),
                    "Learning-rate schedule: linear decay to 0 (the paper) or constant.")
  flags.DEFINE_enum("head", "paper", list(config.PRIMARY_HEADS),
                    "Φ's head: the LCL release's (paper: new dense -> dropout -> ReLU -> "
                    "dense -> dropout on the logits; the paper's reproductions), the "
                    "checkpoint's transformers *ForSequenceClassification head (hf: for BERT "
                    "the pre-trained pooler -> dropout -> linear; what a plain transformers "
                    "loop trains, and better on your own data), seed 000's direct head "
                    "(dense + tanh, dropout 0.3), seed 003's DenseLayer(1)/(2) "
                    "(dense1/dense2).")
  flags.DEFINE_float("classifier_dropout", None, "Head dropout p (default: the head's own).")
  flags.DEFINE_integer("head_epochs", 0, "Two-stage training: epochs of stage 2 (encoders "
                       "frozen, heads re-initialised) after --epochs; 0 = one stage.")
  flags.DEFINE_float("head_learning_rate", None,
                     "Stage-2 learning rate (default: --learning_rate).")
  flags.DEFINE_enum("threshold_fit", "validation", list(config.THRESHOLD_FITS),
                    "Multi-label: split on which per-class thresholds (max F1 per class) "
                    "are fitted and then applied to test, beside --thresholds.")
  flags.DEFINE_integer("concat_expansion", 0, "Multi-label: extra training rows made by "
                       "concatenating two training texts (union of labels), per seed.")
  flags.DEFINE_bool("export_hf", False,
                    "Also write the best-validation networks as Hugging Face checkpoints "
                    "(<run>/export/<network>, safetensors, tokenizer and a model card "
                    "README.md; loadable by transformers).")
  flags.DEFINE_enum("keep_checkpoints", "best", list(config.KEEP_CHECKPOINTS),
                    "What a finished run keeps on disk: 'best' deletes the latest-state "
                    "checkpoint (parameters + optimiser state, only needed to resume) once "
                    "results.json is written, keeping best/ (the best-validation "
                    "parameters); 'all' keeps both.")
  # Scale (issue 12).
  flags.DEFINE_enum("contrastive_impl", "auto", list(config.CONTRASTIVE_IMPLS),
                    "Contrastive term: dense [B, B]; tiled (memory O(B * tile)); ring over "
                    "the devices (jit); auto = dense below --contrastive_auto_threshold rows.")
  flags.DEFINE_integer("contrastive_tile_size", 512, "Columns per tile of the tiled/ring loss.")
  flags.DEFINE_integer("contrastive_auto_threshold", 4096,
                       "Global batch rows from which --contrastive_impl=auto tiles.")
  flags.DEFINE_enum("matmul_precision", "highest", list(config.MATMUL_PRECISIONS),
                    "jax.default_matmul_precision of the steps: highest = true float32 "
                    "(no TF32/bf16 passes on GPU/TPU); default = the backend's fastest.")
  # Label-embedding attention (seed 004 Section 3.3; issue 10).
  flags.DEFINE_bool("label_embeddings", False,
                    "Label-embedding attention (seed 004): rows are [CLS] + the label names' "
                    "word pieces + [SEP] + the text + [SEP]; each label's score comes from "
                    "its own last hidden state(s) (mean over a name's pieces) through a "
                    "shared feed-forward layer. LCL: Ψ scores the same way.")
  flags.DEFINE_integer("label_text_tokens", 50,
                       "With --label_embeddings: text word pieces kept after the label "
                       "block (the document's 50); the row length replaces --max_length.")
  flags.DEFINE_string("compilation_cache", None,
                      "JAX persistent compilation cache folder ('' disables; default "
                      "$LCL_JAX_COMPILATION_CACHE or <user cache dir>/lcl_jax/jax_cache).")
  # Fidelity options (issue 14); see TrainConfig for what each reading is.
  flags.DEFINE_enum("baseline_views", "paired", list(config.BASELINE_VIEWS),
                    "What the CE/SCL baselines train on: 'paired' (K texts + K augmented "
                    "views) or 'texts' (the K texts only). LCL always uses paired batches.")
  flags.DEFINE_enum("adam_epsilon_mode", "optax", list(config.ADAM_EPSILON_MODES),
                    "AdamW rule: 'optax' (optax.adamw) or 'legacy_hf' (the release's "
                    "transformers.AdamW: eps added to the uncorrected sqrt(v)).")
  flags.DEFINE_integer("view_seed", None,
                       "Seed of the augmented views: unset = each run's seed; an int = "
                       "the same views for every seed (as the release).", lower_bound=0)
  define_embed_mix_flags()
  flags.DEFINE_enum("head_init", "normal_0.02", list(config.HEAD_INITS),
                    "Init of the primary network's head layers: 'normal_0.02' or "
                    "'torch_default' (torch.nn.Linear's default, as the release).")
  # Seed 004's auxiliary task (issue 10).
  flags.DEFINE_enum("aux_task", "none", list(config.AUX_TASKS),
                    "GoEmotions-28 only: a second head on the encoder predicting the coarse "
                    "groups (+ neutral) of the release's ekman_mapping.json / "
                    "sentiment_dict.json; loss T * L_main + (1 - T) * L_aux.")
  flags.DEFINE_float("aux_weight_start", 0.8, "T (the main loss's weight) at the first step "
                     "(seed 004: 0.8).")
  flags.DEFINE_float("aux_weight_end", 1.0, "T at the last step of --epochs (>= "
                     "--aux_weight_start; equal values keep T constant).")
  flags.DEFINE_enum("aux_schedule", "linear", list(config.AUX_SCHEDULES),
                    "How T moves from start to end: linear in the step, or a half-cosine "
                    "ramp (flat at both ends).")


def define_embed_mix_flags() -> None:
  """Seed 004's inference-time embedding mixing (also defined by experiments/evaluate.py)."""
  flags.DEFINE_enum("embed_mix", "none", list(config.EMBED_MIXES),
                    "Embedding mixing after training (seed 004 Sec. 3.4): Φ's [CLS] vector "
                    "mixed as w*h_test + (1-w)*h_candidate before the head, candidates the "
                    "most similar training text (train), a --paraphrase_file (paraphrase) or "
                    "--t5_checkpoint paraphrases (t5); results['mixed']. none = off.")
  flags.DEFINE_float("embed_mix_weight", 0.92, "Mixing weight w of the test example's own "
                     "[CLS] vector, in [0, 1] (0.92: the document's best).")
  flags.DEFINE_enum("embed_mix_similarity", "cosine", list(config.EMBED_MIX_SIMILARITIES),
                    "--embed_mix=train: cosine similarity of Φ's [CLS] vectors (exact top-1), "
                    "or BERTScore F1 (the bert-score package, not installed by default).")
  flags.DEFINE_string("paraphrase_file", None,
                      "--embed_mix=paraphrase: TSV with a header, columns 'text' and "
                      "'paraphrase' (or 'split', 'index', 'paraphrase'); see "
                      "lcl_jax.train.mixing.read_paraphrase_file.")
  flags.DEFINE_string("t5_checkpoint", None, "--embed_mix=t5: a local T5 (seq2seq) checkpoint "
                      "folder whose generations are the candidates.")


def _length_buckets(values: Any) -> tuple[int, ...]:
  """--length_buckets '32,64,128' -> (32, 64, 128); a clear error naming the flag."""
  items = values.split(",") if isinstance(values, str) else list(values or ())
  try:
    buckets = tuple(int(str(b).strip()) for b in items if str(b).strip())
  except ValueError:
    raise ValueError(f"--length_buckets={','.join(map(str, items))!r}: expected a "
                     "comma-separated list of integers (token lengths)") from None
  if not buckets:
    raise ValueError("--length_buckets is empty: give at least one token length")
  return buckets


def _flag_value(name: str) -> Any:
  return FLAGS[name].value


def run_config(*, value: Callable[[str], Any] | None = None, **overrides: Any) -> TrainConfig:
  """A TrainConfig from the run flags; `value(name)` may substitute flag values (e.g.
  --smoke settings) and `overrides` set fields directly (dataset, objective, seed, ...)."""
  value = value or _flag_value
  max_length = int(value("max_length"))
  buckets = _length_buckets(value("length_buckets"))
  fields = dict(
      encoder=value("encoder"), weighting_encoder=value("weighting_encoder"),
      data_dir=value("data_dir"), learning_rate=value("learning_rate"),
      alpha=value("alpha"), temperature=value("temperature"),
      feature_pooling=value("feature_pooling"), glove_path=value("glove_path"),
      epochs=5 if value("epochs") is None else int(value("epochs")), patience=value("patience"),
      early_stopping_on=value("early_stopping_on"),
      texts_per_batch=int(value("texts_per_batch")), max_length=max_length,
      length_buckets=tuple(b for b in buckets if b <= max_length) or (max_length,),
      eval_batch_size=int(value("eval_batch_size")),
      fresh_views_per_epoch=bool(value("fresh_views_per_epoch")),
      thresholds=parse_thresholds(value("thresholds")), dtype=value("dtype"),
      remat=bool(value("remat")), parallelism=value("parallelism"),
      max_train_examples=value("max_train_examples"),
      max_eval_examples=value("max_eval_examples"),
      max_steps_per_epoch=value("max_steps_per_epoch"),
      checkpoint_every_steps=int(value("checkpoint_every_steps")),
      progress_bar=bool(value("progress_bar")), export_hf=bool(value("export_hf")),
      eval_every_steps=int(value("eval_every_steps")),
      contrastive_impl=value("contrastive_impl"),
      contrastive_tile_size=int(value("contrastive_tile_size")),
      contrastive_auto_threshold=int(value("contrastive_auto_threshold")),
      matmul_precision=value("matmul_precision"),
      baseline_views=value("baseline_views"), adam_epsilon_mode=value("adam_epsilon_mode"),
      view_seed=value("view_seed"), head_init=value("head_init"),
      lr_schedule=value("lr_schedule"), head=value("head"),
      classifier_dropout=value("classifier_dropout"), head_epochs=int(value("head_epochs")),
      head_learning_rate=value("head_learning_rate"), threshold_fit=value("threshold_fit"),
      concat_expansion=int(value("concat_expansion")),
      keep_checkpoints=value("keep_checkpoints"),
      label_embeddings=bool(value("label_embeddings")),
      label_text_tokens=int(value("label_text_tokens")),
      aux_task=value("aux_task"), aux_weight_start=float(value("aux_weight_start")),
      aux_weight_end=float(value("aux_weight_end")), aux_schedule=value("aux_schedule"),
      embed_mix=value("embed_mix"), embed_mix_weight=float(value("embed_mix_weight")),
      embed_mix_similarity=value("embed_mix_similarity"),
      paraphrase_file=value("paraphrase_file"), t5_checkpoint=value("t5_checkpoint"),
  )
  fields.update(overrides)
  return TrainConfig(**fields)
