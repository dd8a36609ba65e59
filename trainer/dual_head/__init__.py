"""The dual-head transformer: one history encoder, a generative head (teacher) and a retrieval head (student).

Items enter the encoder as the sum of their Semantic ID code embeddings (one
table per code position), a projection of their content embedding and, unless
switched off, a free ID embedding. Items of one order share one position
embedding: the position of a history item is how many orders before the
target it was placed (1 = the latest order). A behaviour embedding (click,
purchase, ...) is added where the data has several.

* **Generative head**: a causal transformer decoder reads ``memory_tokens``
  attention-pooled summaries of the encoder output, then BOS, c_1, ..., and
  predicts the next purchase's Semantic ID code by code (one softmax per code
  position, each sized from the data). Inference: ``constrained_beam``.
* **Retrieval head**: user vector = MLP(last state, mean state); item vector =
  MLP mapping network(content embedding) + ID residual (zero for items never
  seen in training, so a new item is embeddable from its content alone).
  Loss: multi-positive InfoNCE (every item of the next order is a positive)
  over in-batch candidates (logQ-corrected) and hard negatives.
* **Distillation**: teacher score of item v = Σ_t log softmax(logits_t)[c_t(v)]
  (teacher-forced over v's prefix). On the student's top ``distill_candidates``
  in-batch candidates, KL(teacher ‖ student) plus ListMLE of the teacher's
  order under the student's scores. Teacher scores are stop-gradient.
* **Data engineering** (``debias_targets``, ``hard_negatives_*``): training
  targets drawn with probability ∝ 1/sqrt(training frequency); hard negatives
  from the target's category and from the user's own history, never one of
  the row's positives (those are replaced by padding, i.e. removed).

``variant="sasrec"`` is the plain SASRec-style baseline on the same code: free
ID embeddings only, positions count items, full softmax over the catalogue. The
variant is the model's item block (``items.ITEM_BLOCKS``), chosen once.

Modules (imports point down this list; none imports ``tfx_pipeline``):

* ``config``: ``DualHeadConfig``, ``EVENT_TYPES``, ``VARIANTS``, the SASRec preset (``SASREC``, ``sasrec_config``);
* ``data``: ``ItemSpace``, ``SequenceData``, readers of the Examples artifact;
* ``losses``: InfoNCE, distillation KL, ListMLE (pure functions);
* ``layers``: ``TransformerBlock``;
* ``items``: the item blocks (``SemanticIdItems``, ``FreeIdItems``);
* ``generative``: ``GenerativeHead`` (decoder, likelihoods, beam search);
* ``model``: ``DualHeadModel`` (encoder + user side; holds an item block and the generative head);
* ``sampler``: ``PairSampler`` (targets, positives, hard negatives);
* ``evaluation``: top-k inference and full-ranking metrics;
* ``training``: ``Trainer``, ``train``;
* ``persist``: ``save_trained`` / ``load_trained`` (every weight checked);
* ``run``: the TFX Trainer's ``run_fn``.

Index conventions: catalogue items 0..N-1 (catalogue order), OOV = N, PAD = N+1;
OOV and PAD are masked out of histories. Shapes: B batch, L history length,
T code positions, N items, D model width, C candidates.
"""
from trainer.dual_head.config import EVENT_TYPES, SASREC, VARIANTS, DualHeadConfig, sasrec_config
from trainer.dual_head.data import (ItemSpace, SequenceData, exclude_history_for, load_item_space,
                                    load_sequences, most_frequent_event, relative_orders, sample_users)
from trainer.dual_head.evaluation import (catalogue_vectors, evaluate, generative_exact_topk, generative_topk,
                                          metrics_with_missing, retrieval_topk, user_vectors)
from trainer.dual_head.generative import GenerativeHead
from trainer.dual_head.items import ITEM_BLOCKS, FreeIdItems, ItemBlock, ItemTables, SemanticIdItems
from trainer.dual_head.layers import TransformerBlock
from trainer.dual_head.losses import distillation_kl, listmle, multi_positive_infonce
from trainer.dual_head.model import DualHeadModel
from trainer.dual_head.persist import (TRAIN_INFO, WEIGHTS, WeightsMismatchError, load_trained, restore_weights,
                                       save_trained)
from trainer.dual_head.run import content_space_paths, run_fn
from trainer.dual_head.sampler import PairSampler
from trainer.dual_head.training import Trainer, TrainResult, train

__all__ = [
    "EVENT_TYPES", "SASREC", "VARIANTS", "DualHeadConfig", "sasrec_config",
    "ItemSpace", "SequenceData", "exclude_history_for", "load_item_space", "load_sequences", "most_frequent_event",
    "relative_orders", "sample_users",
    "catalogue_vectors", "evaluate", "generative_exact_topk", "generative_topk", "metrics_with_missing",
    "retrieval_topk", "user_vectors",
    "GenerativeHead", "ITEM_BLOCKS", "FreeIdItems", "ItemBlock", "ItemTables", "SemanticIdItems",
    "TransformerBlock", "distillation_kl", "listmle", "multi_positive_infonce", "DualHeadModel",
    "TRAIN_INFO", "WEIGHTS", "WeightsMismatchError", "load_trained", "restore_weights", "save_trained",
    "content_space_paths", "run_fn", "PairSampler", "Trainer", "TrainResult", "train",
]
