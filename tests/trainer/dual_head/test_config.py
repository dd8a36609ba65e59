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
