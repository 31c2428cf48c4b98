"""Names that `lcl_jax.train.config` (read while a binary parses its flags, so no Flax,
data package or optax) shares with the modules that own and use them: each owner
imports its tuple from here and re-exports it under its own name, so every tuple is
written once. No imports: any layer may import this module.

=========================  ==================================================
here                       owner (re-exported as)
=========================  ==================================================
FEATURE_POOLINGS           lcl_jax.models.heads.FEATURE_POOLINGS
PRIMARY_HEADS              lcl_jax.models.classifiers.PRIMARY_HEADS
BASELINE_ENCODERS          the keys of lcl_jax.models.baselines.BASELINES (a
                           dict of specs: checked equal at its import)
COARSE_GROUPINGS           lcl_jax.data.goemotions.COARSE_GROUPINGS
DEFAULT_LENGTH_BUCKETS     lcl_jax.data.batching.DEFAULT_BUCKETS
ADAM_EPSILON_MODES         lcl_jax.train.optim.EPSILON_MODES
CONTRASTIVE_REDUCTIONS     lcl_jax.losses._checks.REDUCTIONS
=========================  ==================================================

(The objective names come from the light registry `lcl_jax.train.objective_specs`, the
contrastive implementations from `lcl_jax.losses.tiled`, which ``import lcl_jax`` loads.)
"""

# Φ's contrastive features: the [CLS] state or the mean over non-padding tokens.
FEATURE_POOLINGS = ("cls", "mean")
# Heads a run may put on Φ in place of the paper head ("hf": the checkpoint's own
# transformers *ForSequenceClassification head).
PRIMARY_HEADS = ("paper", "hf", "direct", "dense1", "dense2")
# --encoder names of the non-transformer baselines.
BASELINE_ENCODERS = ("bilstm", "gru", "rnn", "charcnn")
# Seed 004's coarse GoEmotions labelings (the auxiliary tasks).
COARSE_GROUPINGS = ("ekman", "sentiment")
# Static padded lengths: every 8 tokens up to 64, every 16 up to 128, every 32 up to
# 256, every 64 up to 512.
DEFAULT_LENGTH_BUCKETS = (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224,
                          256, 320, 384, 448, 512)
# AdamW rules: optax.adamw, or the release's transformers.AdamW (eps on uncorrected sqrt(v)).
ADAM_EPSILON_MODES = ("optax", "legacy_hf")
# How a contrastive loss reduces its per-anchor terms L_i over the anchors with |P_i| > 0:
# 'mean' (Khosla et al.; Suresh & Ong 2021, Eq. 2 / Eq. 4's 1/N; the release) or 'sum'
# (Modarres & Raeisi, seed 001 Sec. 3.3-3.4: L = sum_{i=1}^K -1/|P| L_i).
CONTRASTIVE_REDUCTIONS = ("mean", "sum")
