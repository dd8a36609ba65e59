"""DualHeadConfig: validation and the variant's consequences."""
import pytest

from trainer import dual_head as D


def test_config_validation():
    with pytest.raises(ValueError, match="Unknown dual-head hyperparameters"):
        D.DualHeadConfig.from_dict({"layers": 2})
    with pytest.raises(ValueError, match="divisible"):
        D.DualHeadConfig(d_model=10, num_heads=3)
    with pytest.raises(ValueError, match="distillation needs a trained generative head"):
        D.DualHeadConfig(generative_weight=0.0, distill_weight=1.0)
    with pytest.raises(ValueError, match="variant"):
        D.DualHeadConfig(variant="bert4rec")
    assert not D.DualHeadConfig(variant="sasrec", distill_weight=0).has_generative_head
    assert D.DualHeadConfig.from_dict({"epochs": 2}) == D.DualHeadConfig(epochs=2)


def test_every_variant_has_an_item_block():
    assert set(D.ITEM_BLOCKS) == set(D.VARIANTS)
    assert D.ITEM_BLOCKS["dual_head"] is D.SemanticIdItems and D.ITEM_BLOCKS["sasrec"] is D.FreeIdItems


def test_the_sasrec_preset_is_the_ablations_row_and_refuses_to_become_another_model():
    from benchmarks.dual_head_ablation import VARIANTS

    assert VARIANTS["sasrec"] == D.SASREC  # the served model and the ablation's row are one configuration
    config = D.sasrec_config({"epochs": 9, "d_model": 32})
    assert config.variant == "sasrec" and not config.has_generative_head and not config.order_positions
    assert (config.epochs, config.d_model) == (9, 32)
    assert D.sasrec_config({"variant": "sasrec", "distill_weight": 0.0}) == D.sasrec_config()
    with pytest.raises(ValueError, match="another model"):
        D.sasrec_config({"variant": "dual_head"})
    with pytest.raises(ValueError, match="another model"):
        D.sasrec_config({"generative_weight": 1.0})
    with pytest.raises(ValueError, match="Unknown dual-head hyperparameters"):
        D.sasrec_config({"epoch": 3})
