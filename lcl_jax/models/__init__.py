"""Flax BERT/ELECTRA/RoBERTa-family encoders, Hugging Face checkpoint conversion, and the LCL heads.

Typical use::

  from lcl_jax import models
  module, params = models.from_pretrained("google/electra-base-discriminator")
  hidden = module.apply({"params": params}, input_ids, attention_mask)   # [B, T, H]

  dual = models.build_dual_network(encoder_dir, None, num_classes, rng=key)
  out = dual.primary.apply({"params": dual.primary_params}, ids, mask)  # ClassifierOutput
"""
from lcl_jax.models.classifiers import (CLASSIFIERS, BertSequenceClassifier, DualNetwork,
                                        ElectraSequenceClassifier,
                                        LabelAttentionClassifier, PaperClassifier,
                                        RobertaSequenceClassifier, build_classifier,
                                        build_dual_network, resolve_head,
                                        save_classifier, sequence_classification_head_for,
                                        weighting_head_for)
from lcl_jax.models.config import ConfigError, EncoderConfig
from lcl_jax.models.convert import CheckpointMismatchError, LoadReport
from lcl_jax.models.encoder import BertPooler, TransformerEncoder
from lcl_jax.models.label_attention import LabelAttentionHead, LabelLayout
from lcl_jax.models.heads import (FEATURE_POOLINGS, BertClassificationHead, ClassifierOutput,
                                  ElectraClassificationHead, PaperHead,
                                  RobertaClassificationHead, pool_features)
from lcl_jax.models.pretrained import (Checkpoint, CheckpointNotFoundError,
                                       from_pretrained, load_checkpoint,
                                       load_pretrained_pooler, load_tokenizer,
                                       minilm_checkpoint_dir, save_pretrained)

__all__ = [
    "BertClassificationHead", "BertPooler", "BertSequenceClassifier", "CLASSIFIERS",
    "Checkpoint", "CheckpointMismatchError", "CheckpointNotFoundError", "ClassifierOutput",
    "ConfigError", "DualNetwork", "ElectraClassificationHead", "ElectraSequenceClassifier",
    "EncoderConfig", "FEATURE_POOLINGS", "LabelAttentionClassifier", "LabelAttentionHead",
    "LabelLayout", "LoadReport", "PaperClassifier", "PaperHead",
    "RobertaClassificationHead", "RobertaSequenceClassifier", "TransformerEncoder",
    "build_classifier", "build_dual_network", "from_pretrained", "load_checkpoint",
    "load_pretrained_pooler", "load_tokenizer", "minilm_checkpoint_dir", "pool_features",
    "resolve_head", "save_classifier", "save_pretrained", "sequence_classification_head_for",
    "weighting_head_for",
]
