"""RankerTrainer: the exposures + content embeddings + Semantic IDs → the trained ranker (a Model artifact).

Trains ``trainer.ranker`` (DCN-v2 + ESMM by default; ``config_json`` holds
``RankerConfig`` overrides) on the window units' exposures, with early stopping on the
validation units' end-to-end NDCG@10, and writes config, tables and weights
(``trainer.ranker.persist``) to ``Format-Serving``.
"""
import json
import os

from tfx import v1 as tfx
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component

from recsys import names as N


@component
def RankerTrainer(  # noqa: N802
    examples: InputArtifact[tfx.types.standard_artifacts.Examples],
    exposures: InputArtifact[tfx.types.standard_artifacts.Examples],
    content: InputArtifact[tfx.types.standard_artifacts.Examples],
    semantic_ids: InputArtifact[tfx.types.standard_artifacts.Model],
    model: OutputArtifact[tfx.types.standard_artifacts.Model],
    config_json: Parameter[str] = "{}",
    code_version: Parameter[int] = 1,  # the pipeline passes it; bumped when training changes (cache key)
) -> None:
    from trainer import ranker as R
    from trainer.semantic_id_trainer import content_space_paths

    config = R.RankerConfig.from_dict(json.loads(config_json))
    tables = R.catalogue_tables(examples.uri, content.uri, content_space_paths(semantic_ids.uri)[0])
    train_set, about = R.training_exposures(exposures.uri, tables.positions, config)
    from transform import examples_io

    val_users = examples_io.sampled_users(examples_io.split_files(exposures.uri, "eval"), config.val_users)
    val_set = R.read_exposures(exposures.uri, "eval", tables.positions, config.actions, users=val_users)
    print(f"[ranker] training on {about['units']:,} window units ({about['exposures']:,} exposures, "
          f"{about['clicks']:,} clicks), {about['how']}; {len(val_set):,} validation units"
          + (f" (a sample of {config.val_users:,} users)" if val_users is not None else ""), flush=True)
    result = R.train(train_set, val_set, config, tables.items, log=lambda m: print(m, flush=True))
    info = {"best_epoch": result.best_epoch, "epochs": len(result.history), "wall_s": round(result.wall_s, 1),
            "seconds_per_epoch": round(result.seconds_per_epoch, 2), "validation": result.best_val,
            "history": result.history}
    R.save_trained(result.model, config, tables.item_ids, tables.popularity, tables.categories, tables.items,
                   result.cvr_power, about["user_dim"], info,
                   os.path.join(model.uri, N.SERVING_SUBDIR))
    print(f"[ranker] best epoch {result.best_epoch} of {len(result.history)}: validation NDCG@10 "
          f"{result.best_val['NDCG@10']:.4f} (cvr power {result.cvr_power}), {result.wall_s:.0f} s", flush=True)
