"""TFX Trainer entry point (``run_fn``, referred to as ``trainer.dual_head.run_fn``) and its artifact layout."""
from __future__ import annotations

import os

from recsys import features as F
from trainer import base
from trainer.dual_head.config import DualHeadConfig
from trainer.dual_head.data import (exclude_history_for, load_item_space, load_sequences,
                                    most_frequent_event)
from trainer.dual_head.persist import save_trained
from trainer.dual_head.training import train
from trainer.semantic_id_trainer import content_space_paths


def run_fn(fn_args) -> None:
    """TFX Trainer entry point (GenericExecutor).

    Inputs: ``examples`` = the raw sequence Examples (order positions and behaviour
    are not in the transformed rows), ``transform_graph`` (training counts),
    ``base_model`` = the Semantic ID trainer's model (ID table + content embeddings).
    Output: ``Format-Serving/`` holds the weights, config and item space.
    """
    config = DualHeadConfig.from_dict((fn_args.custom_config or {}).get("dual_head"))
    examples_uri = os.path.dirname(os.path.dirname(fn_args.train_files[0]))
    vocab = base.load_vocabularies(fn_args.transform_output)
    tsv, npz = content_space_paths(fn_args.base_model)
    items = load_item_space(examples_uri, tsv, npz, vocab.item_counts)
    exclude = exclude_history_for(examples_uri)
    train_data = load_sequences(examples_uri, F.TRAIN, items, config)
    val_data = load_sequences(examples_uri, F.EVAL, items, config)
    result = train(train_data, val_data, items, config, exclude, label=config.variant)
    save_trained(result, items, config, fn_args.serving_model_dir,
                 {"exclude_history": exclude, "default_event": most_frequent_event(train_data, items)})
