"""The ranker family (DCN-v2 / DeepFM interaction, optional TransAct block, ESMM heads) on the retrievers' exposures.

Modules (imports point down this list; none imports ``tfx_pipeline``):

* ``config``: ``RankerConfig``;
* ``data``: ``ExposureSet`` (the ExposureBuilder's artifact as padded arrays), ``ExposureStream`` (the same
  read batch by batch each epoch, for splits too large to hold), negative sampling;
* ``model``: ``Ranker``, ``TransAct``, the time-window mask, ESMM loss and served score;
* ``metrics``: AUC / GAUC / logloss per head, end-to-end top-k list metrics;
* ``training``: ``train`` (early stopping on validation NDCG@10 of the ranked lists);
* ``persist``: ``save_trained`` / ``load_trained``.
"""
from trainer.ranker.config import CROSS, DEEPFM, RankerConfig
from trainer.ranker.data import (CatalogueTables, ExposureSet, ExposureStream, ItemTables, catalogue_tables,
                                 read_exposures, sample_training, split_bytes, training_exposures)
from trainer.ranker.persist import TrainedRanker, load_trained, save_trained
from trainer.ranker.training import TrainResult, evaluate, predict, train

__all__ = ["CROSS", "DEEPFM", "RankerConfig", "CatalogueTables", "ExposureSet", "ExposureStream", "ItemTables",
           "catalogue_tables", "read_exposures", "sample_training", "split_bytes", "training_exposures", "TrainedRanker",
           "load_trained", "save_trained", "TrainResult", "evaluate", "predict", "train"]
