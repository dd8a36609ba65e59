"""RQ-VAE: hand-computed residual quantization, straight-through gradients, k-means initialisation,
dead-code re-seeding, losses, learning clustered data, and round trips in a fresh process."""
import numpy as np
import pytest
import tensorflow as tf

from trainer import rqvae
from trainer import semantic_ids as sid

# Two levels, three codes each, 2-d latents (all values exact in float32).
LEVEL0 = [[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]]
LEVEL1 = [[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]


def quantizer_with(codebooks, beta=0.25):
    q = rqvae.ResidualQuantizer(num_levels=len(codebooks), codebook_size=len(codebooks[0]), commitment_beta=beta)
    q.build(tf.TensorShape([None, len(codebooks[0][0])]))
    for variable, values in zip(q.codebooks, codebooks):
        variable.assign(np.asarray(values, np.float32))
    return q


def small_config(**overrides):
    values = dict(input_dim=6, latent_dim=2, hidden_dims=(5,), num_levels=2, codebook_size=4,
                  kmeans_init_size=8, num_categories=3, seed=0)
    return rqvae.RQVAEConfig(**{**values, **overrides})


# --------------------------------------------------------------------------- config


def test_config_validates_and_round_trips():
    with pytest.raises(ValueError, match=r"Unknown RQ-VAE hyperparameters \['codebooks'\]"):
        rqvae.RQVAEConfig.from_dict({"input_dim": 8, "codebooks": 3})
    with pytest.raises(ValueError, match="needs input_dim"):
        rqvae.RQVAEConfig.from_dict({"latent_dim": 8})
    with pytest.raises(ValueError, match="num_levels must be a positive integer, got 0"):
        rqvae.RQVAEConfig(input_dim=8, num_levels=0)
    with pytest.raises(ValueError, match="codebook_size must be at least 2, got 1"):
        rqvae.RQVAEConfig(input_dim=8, codebook_size=1)
    with pytest.raises(ValueError, match="commitment_beta must be >= 0, got -0.1"):
        rqvae.RQVAEConfig(input_dim=8, commitment_beta=-0.1)
    with pytest.raises(ValueError, match="kmeans_init_size must be at least codebook_size"):
        rqvae.RQVAEConfig(input_dim=8, codebook_size=256, kmeans_init_size=100)
    config = rqvae.RQVAEConfig.from_dict({"input_dim": 8, "hidden_dims": [16, 4], "num_categories": 5})
    assert config.hidden_dims == (16, 4)
    assert rqvae.RQVAEConfig.from_dict(config.to_dict()) == config


def test_quantizer_rejects_bad_arguments_saying_what_it_got():
    with pytest.raises(ValueError, match="num_levels must be a positive integer, got 0"):
        rqvae.ResidualQuantizer(num_levels=0, codebook_size=4)
    with pytest.raises(ValueError, match="codebook_size must be an integer >= 2, got 1"):
        rqvae.ResidualQuantizer(num_levels=2, codebook_size=1)
    with pytest.raises(ValueError, match="commitment_beta must be >= 0, got -1"):
        rqvae.ResidualQuantizer(num_levels=2, codebook_size=4, commitment_beta=-1)


# --------------------------------------------------------------------------- residual quantization


def test_residual_quantization_on_a_hand_made_two_level_codebook():
    q = quantizer_with([LEVEL0, LEVEL1])
    z = tf.constant([[4.2, 0.9], [-0.5, 3.5]])
    quantized, codes, losses = q(z)
    # item 0: level 0 -> [4, 0] (d² 0.85), r1 = [0.2, 0.9]; level 1 -> [0, 1] (d² 0.05), r2 = [0.2, -0.1]
    # item 1: level 0 -> [0, 4] (d² 0.5), r1 = [-0.5, -0.5]; level 1 -> [-1, -1] (d² 0.5), r2 = [0.5, 0.5]
    assert codes.numpy().tolist() == [[1, 1], [2, 2]]
    assert codes.dtype == tf.int32
    np.testing.assert_allclose(quantized.numpy(), [[4.0, 1.0], [-1.0, 3.0]], atol=1e-6)
    residuals = q.residuals(z)
    np.testing.assert_allclose(residuals[1].numpy(), [[0.2, 0.9], [-0.5, -0.5]], atol=1e-6)
    # codebook loss: level 0 mean(0.85, 0.5) + level 1 mean(0.05, 0.5) = 0.675 + 0.275
    np.testing.assert_allclose(losses["codebook"].numpy(), 0.95, rtol=1e-5)
    np.testing.assert_allclose(losses["commitment"].numpy(), 0.25 * 0.95, rtol=1e-5)
    np.testing.assert_allclose(q.lookup(codes).numpy(), quantized.numpy(), atol=1e-6)


def test_straight_through_gradient_and_which_loss_moves_what():
    q = quantizer_with([LEVEL0, LEVEL1])
    z = tf.Variable([[4.2, 0.9], [-0.5, 3.5]])
    w = tf.constant([[1.0, 2.0], [3.0, -4.0]])
    with tf.GradientTape(persistent=True) as tape:
        quantized, _, losses = q(z)
        downstream = tf.reduce_sum(quantized * w)
    np.testing.assert_allclose(tape.gradient(downstream, z).numpy(), w.numpy())  # d quantized / d z = I
    # the codebook loss moves only codebooks, the commitment loss only the latents
    assert tape.gradient(losses["codebook"], z) is None
    assert all(g is None for g in tape.gradient(losses["commitment"], q.codebooks))
    level0_grad = tf.convert_to_tensor(tape.gradient(losses["codebook"], q.codebooks[0])).numpy()
    # d/d e_1 of mean_b ||r_b - e||² over the one item using code 1: 2 (e - r) / B = ([4, 0] - [4.2, 0.9])
    np.testing.assert_allclose(level0_grad[1], [-0.2, -0.9], atol=1e-6)
    np.testing.assert_allclose(level0_grad[0], [0.0, 0.0])  # unused code


def test_gradient_reaches_the_encoder_through_the_quantizer():
    model = rqvae.RQVAE(small_config(num_categories=0)).build_for_input()
    x = np.random.default_rng(0).normal(size=(16, 6)).astype(np.float32)
    model.initialize_codebooks(x)
    with tf.GradientTape() as tape:
        out = model(x, training=True)
        loss = rqvae.reconstruction_loss(x, out["reconstruction"])
    grads = tape.gradient(loss, model.encoder.trainable_variables)
    assert all(g is not None for g in grads)
    assert all(float(tf.reduce_sum(tf.abs(g))) > 0 for g in grads)


# --------------------------------------------------------------------------- k-means and dead codes


def hierarchical_points():
    """16 points a_i + b_j: coarse corners a (±100, ±100) and fine offsets b summing to zero."""
    coarse = np.array([[100, 100], [100, -100], [-100, 100], [-100, -100]], np.float32)
    fine = np.array([[1, 0], [-1, 0], [0, 1], [0, -1]], np.float32)
    return coarse, fine, (coarse[:, None, :] + fine[None, :, :]).reshape(-1, 2)


def as_row_set(a):
    return sorted(map(tuple, np.round(np.asarray(a), 6).tolist()))


def test_kmeans_initialisation_puts_each_level_on_its_residuals():
    coarse, fine, z = hierarchical_points()
    q = rqvae.ResidualQuantizer(num_levels=2, codebook_size=4, seed=3)
    assert q.initialize(tf.constant(z)).numpy()
    assert bool(q.initialized.numpy())
    # level 0: the means of the four coarse groups are the corners; level 1: the residuals are b
    assert as_row_set(q.codebooks[0].numpy()) == as_row_set(coarse)
    assert as_row_set(q.codebooks[1].numpy()) == as_row_set(fine)
    quantized, codes, _ = q(tf.constant(z))
    np.testing.assert_array_equal(quantized.numpy(), z)
    assert sid.collision_rate(codes.numpy()) == 0.0


def test_kmeans_picks_data_points_when_there_are_exactly_k_distinct_ones():
    points = np.repeat(np.array([[0, 0], [5, 1], [-3, 7], [9, -9], [2, 2]], np.float32), 3, axis=0)
    centres = rqvae.kmeans(tf.constant(points), 5, 10, tf.constant([0, 0])).numpy()
    assert as_row_set(centres) == as_row_set(np.unique(points, axis=0))
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least 6 points"):
        rqvae.kmeans(tf.constant(points[:5]), 6, 1, tf.constant([0, 0]))


def test_dead_codes_are_reseeded_from_current_residuals():
    q = quantizer_with([[[0, 0], [10, 0], [50, 50], [60, 60]],
                        [[0.5, 0], [0, 0.5], [9, 9], [-9, -9]]])
    z = np.array([[0.5, 0.2], [9.5, -0.2], [10.4, 0.3], [-0.3, 0.1], [20.0, 20.0]], np.float32)
    before = [c.numpy().copy() for c in q.codebooks]
    usage = np.array([[3, 2, 0, 0], [5, 0, 0, 0]], np.float32)  # level 0: 2 and 3 unused; level 1: 1, 2, 3
    assert q.reseed_dead_codes(z, usage, threshold=1.0, seed=0) == [2, 3]
    level0, level1 = q.codebooks[0].numpy(), q.codebooks[1].numpy()
    np.testing.assert_array_equal(level0[:2], before[0][:2])           # used codes stay
    assert set(as_row_set(level0[2:])) <= set(as_row_set(z))           # dead codes sit on data points
    assert len(set(as_row_set(level0[2:]))) == 2                       # distinct residuals
    np.testing.assert_array_equal(level1[0], before[1][0])
    level1_residuals = q.residuals(tf.constant(z))[1].numpy()           # with the new level 0
    assert set(as_row_set(level1[1:])) <= set(as_row_set(level1_residuals))
    with pytest.raises(ValueError, match=r"usage must have shape \(2, 4\)"):
        q.reseed_dead_codes(z, usage[:1], threshold=1.0, seed=0)


# --------------------------------------------------------------------------- losses and metrics


def test_losses_on_hand_computed_values():
    x = tf.constant([[1.0, 0.0], [0.0, 2.0]])
    np.testing.assert_allclose(rqvae.reconstruction_loss(x, tf.constant([[0.0, 0.0], [0.0, 1.0]])).numpy(),
                               (1 + 1) / (1 + 4), rtol=1e-6)
    ce, count = rqvae.masked_category_loss(tf.zeros([3, 4]), tf.constant([1, -1, 2]))
    np.testing.assert_allclose(ce.numpy(), np.log(4.0), rtol=1e-6)   # uniform logits, 2 labelled items
    assert count.numpy() == 2
    ce, count = rqvae.masked_category_loss(tf.zeros([2, 4]), tf.constant([-1, -1]))
    assert ce.numpy() == 0.0 and count.numpy() == 0
    total = rqvae.RQVAELoss(0.5)(x, {"reconstruction": x, "codebook_loss": tf.constant(1.0),
                                     "commitment_loss": tf.constant(0.25), "category_logits": tf.zeros([2, 4])},
                                 tf.constant([0, 3]))
    np.testing.assert_allclose(total["loss"].numpy(), 0 + 1.0 + 0.25 + 0.5 * np.log(4.0), rtol=1e-6)


def test_code_usage_counts_and_perplexity():
    usage = rqvae.CodeUsage(4)
    assert usage.result().numpy() == 0.0
    usage.update_state(tf.constant([0, 0, 1, 1]))
    np.testing.assert_array_equal(usage.counts.numpy(), [2, 2, 0, 0])
    np.testing.assert_allclose(usage.result().numpy(), 2.0, rtol=1e-6)
    usage.update_state(tf.constant([0, 0, 0, 0]))  # counts 6, 2 -> exp(H(0.75, 0.25))
    np.testing.assert_allclose(usage.result().numpy(), np.exp(-(0.75 * np.log(0.75) + 0.25 * np.log(0.25))),
                               rtol=1e-5)
    usage.reset_state()
    np.testing.assert_array_equal(usage.counts.numpy(), [0, 0, 0, 0])


# --------------------------------------------------------------------------- the model


def test_model_is_an_autoencoder_until_the_codebooks_are_initialised():
    model = rqvae.RQVAE(small_config())
    x = np.random.default_rng(1).normal(size=(10, 6)).astype(np.float32)
    out = model(x)
    np.testing.assert_array_equal(out["quantized"].numpy(), out["latent"].numpy())
    assert out["codes"].numpy().sum() == 0 and out["codebook_loss"].numpy() == 0
    model.initialize_codebooks(x)
    out = model(x)
    codes = model.encode(x).numpy()
    np.testing.assert_array_equal(out["codes"].numpy(), codes)
    np.testing.assert_allclose(out["quantized"].numpy(), model.quantizer.lookup(codes).numpy(), atol=1e-6)
    np.testing.assert_allclose(model.decode_codes(codes).numpy(), model.reconstruct(x).numpy(), atol=1e-6)
    assert out["category_logits"].shape == (10, 3)
    assert set(np.unique(codes[:, 0])) <= set(range(4))
    with pytest.raises(ValueError, match=r"codes must have shape \[N, 2\].*disambiguation"):
        model.decode_codes(sid.disambiguate(codes))


def test_get_config_mirrors_init():
    config = small_config()
    model = rqvae.RQVAE(config)
    assert rqvae.RQVAE.from_config(model.get_config()).config == config
    q = model.quantizer
    clone = rqvae.ResidualQuantizer.from_config(q.get_config())
    assert (clone.num_levels, clone.codebook_size, clone.commitment_beta, clone.kmeans_iterations, clone.seed) == \
        (2, 4, 0.25, 20, 0)


def test_train_rqvae_rejects_bad_inputs():
    config = small_config(num_categories=0)
    x = np.zeros((20, 6), np.float32)
    with pytest.raises(ValueError, match=r"shape \[N, 6\].*got \(20, 5\)"):
        rqvae.train_rqvae(x[:, :5], None, config)
    with pytest.raises(ValueError, match="at least codebook_size=4 items"):
        rqvae.train_rqvae(x[:3], None, config)
    bad = x.copy()
    bad[7, 2] = np.nan
    with pytest.raises(ValueError, match=r"NaN/inf in 1 rows, first rows \[7\]"):
        rqvae.train_rqvae(bad, None, config)
    with pytest.raises(ValueError, match="num_categories is 0"):
        rqvae.train_rqvae(x, np.zeros(20, int), config)
    with pytest.raises(ValueError, match="must be < num_categories=3"):
        rqvae.train_rqvae(x, np.full(20, 3), small_config())


def clustered_items(n=2048, dim=64, clusters=16, sub=4, seed=0):
    """16 well-separated Gaussian clusters (category = cluster), each with 4 sub-clusters."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    offsets = 0.5 * rng.normal(size=(clusters, sub, dim))
    category = np.arange(n) % clusters
    x = centres[category] + offsets[category, rng.integers(0, sub, n)] + 0.1 * rng.normal(size=(n, dim))
    return x.astype(np.float32), category


def test_learns_category_pure_first_level_codes_on_clustered_data(capsys):
    x, category = clustered_items()
    config = rqvae.RQVAEConfig(input_dim=64, latent_dim=16, hidden_dims=(64, 32), num_levels=3, codebook_size=32,
                               num_categories=16, epochs=30, warmup_epochs=5, batch_size=128, kmeans_init_size=2048)
    model, history = rqvae.train_rqvae(x, category, config)
    assert len(history) == 35
    printed = capsys.readouterr().out
    assert "[rqvae] epoch 1/35 (warm-up, not quantized)" in printed and "[rqvae] epoch 35/35: loss=" in printed
    assert "collision_rate" not in history[4] and " collisions=" in printed
    assert history[-1]["reconstruction"] < 0.5 * history[0]["reconstruction"]
    codes = model.encode(x).numpy()
    report = sid.semantic_id_report(x, codes, model.reconstruct(x).numpy(), category, codebook_size=32)
    # measured (seed 0): purity 1.0 vs random 0.12, cosine 0.93, level-0 perplexity 28.2, kNN recall 0.21
    assert report["category_purity"] >= 0.95
    assert report["random_category_purity"] <= 0.3
    assert report["reconstruction_cosine"] >= 0.88
    assert report["levels"][0]["perplexity"] >= 20
    assert report["collision_rate_disambiguated"] == 0.0
    np.testing.assert_allclose(history[-1]["perplexity_0"], report["levels"][0]["perplexity"], rtol=0.05)
    assert history[-1]["collision_rate"] == report["collision_rate"]  # the last epoch's log is the final model


# --------------------------------------------------------------------------- round trips


def initialised_model(config):
    model = rqvae.RQVAE(config).build_for_input()
    x = np.random.default_rng(2).normal(size=(32, config.input_dim)).astype(np.float32)
    model.initialize_codebooks(x)
    return model, x


def test_weights_and_config_round_trip_in_a_fresh_process(tmp_path, fresh_process):
    model, x = initialised_model(small_config())
    path = str(tmp_path / "rqvae")
    rqvae.save_rqvae(model, path)
    got = fresh_process(f"""
        import numpy as np
        from trainer import rqvae
        model = rqvae.load_rqvae({path!r})
        x = np.array({x.tolist()}, np.float32)
        result = {{"codes": model.encode(x).numpy().tolist(), "recon": model.reconstruct(x).numpy().tolist(),
                   "config": model.config.to_dict()}}
    """)
    assert got["config"] == model.config.to_dict()
    np.testing.assert_array_equal(got["codes"], model.encode(x).numpy())
    np.testing.assert_allclose(got["recon"], model.reconstruct(x).numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(FileNotFoundError, match="not a directory written by save_rqvae"):
        rqvae.load_rqvae(str(tmp_path))


class ToyItemEncoder(tf.Module):
    """What the lead's item encoder looks like: text -> embedding (here a lookup) -> Semantic ID codes."""

    def __init__(self, words, vectors, semantic_ids):
        super().__init__()
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(words), tf.range(len(words), dtype=tf.int64)), -1)
        self.vectors = tf.Variable(vectors, trainable=False)
        self.semantic_ids = semantic_ids

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def encode_text(self, text):
        embedding = tf.gather(self.vectors, self.table.lookup(text))
        return {"embedding": embedding, "codes": self.semantic_ids.codes_from_embedding(embedding)}


def test_codes_from_embedding_inside_another_saved_model_in_a_fresh_process(tmp_path, fresh_process):
    model, x = initialised_model(small_config())
    encoder = rqvae.SemanticIdEncoder(model)
    np.testing.assert_array_equal(encoder.codes_from_embedding(tf.constant(x)).numpy(), model.encode(x).numpy())
    words = [f"w{i}" for i in range(len(x))]
    item_encoder = ToyItemEncoder(words, x, encoder)
    path = str(tmp_path / "item_encoder")
    tf.saved_model.save(item_encoder, path, signatures={"encode_text": item_encoder.encode_text})
    del item_encoder, encoder
    got = fresh_process(f"""
        import tensorflow as tf
        loaded = tf.saved_model.load({path!r})
        sig = loaded.signatures["encode_text"]
        out = sig(text=tf.constant({words[::-1]!r}))
        direct = loaded.semantic_ids.codes_from_embedding(tf.constant(out["embedding"]))
        result = {{"codes": out["codes"].numpy().tolist(), "direct": direct.numpy().tolist(),
                   "inputs": sorted(sig.structured_input_signature[1]), "outputs": sorted(sig.structured_outputs),
                   "dtype": out["codes"].dtype.name}}
    """)
    expected = model.encode(x[::-1]).numpy()
    assert got["inputs"] == ["text"] and got["outputs"] == ["codes", "embedding"] and got["dtype"] == "int32"
    np.testing.assert_array_equal(got["codes"], expected)
    np.testing.assert_array_equal(got["direct"], expected)
