"""Model server configuration: config files, version policies, file-system polling, CLI flags."""
from __future__ import annotations

import os
import shutil

import grpc
import pytest
import yaml
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving import server as server_module
from serving.models import ModelRegistry, State
from serving.server import load_model_server_config, model_server_config
from recsys.names import SERVED_MODELS
from serving.status import ServerError

SERVING_DIR = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "serving")


def registry_for(text: str) -> ModelRegistry:
    config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    registry = ModelRegistry(config)
    registry.poll()
    return registry


def versions(registry: ModelRegistry, name: str) -> list[tuple[int, str]]:
    return [(v, State.Name(s.state)) for v, s in registry.status(name)]


def _repo_config(name: str, rewrite=()):
    config = load_model_server_config(os.path.join(SERVING_DIR, name), list(rewrite))
    return [(c.name, c.base_path, c.model_platform, c.model_version_policy.latest.num_versions)
            for c in config.model_config_list.config]


def pushed_by_the_pipeline(tmp_path) -> list[str]:
    """The model names the full pipeline's Pushers push to (built, not run; with the opt-in sequence model)."""
    from google.protobuf import json_format
    from tfx import v1 as tfx

    from tfx_pipeline.pipeline import create_pipeline

    pipeline = create_pipeline(pipeline_name="p", pipeline_root=str(tmp_path / "root"),
                               metadata_path=str(tmp_path / "m.sqlite"), serving_dir="/serving",
                               dataset="movielens-100k", sequential=True)
    out = []
    for component in pipeline.components:
        if component.type.endswith(".Pusher"):
            destination = json_format.Parse(component.exec_properties["push_destination"],
                                            tfx.proto.PushDestination())
            out.append(os.path.relpath(destination.filesystem.base_directory, "/serving"))
    return out


def test_repo_models_config_lists_every_model_the_pipeline_pushes(tmp_path):
    from recsys import names as N

    assert sorted(pushed_by_the_pipeline(tmp_path)) == sorted(N.SERVED_MODELS)
    assert _repo_config("models.config", [("/models", str(tmp_path))]) == [
        (name, str(tmp_path / name), "tensorflow", 1) for name in N.SERVED_MODELS]
    assert _repo_config("models.config") == [
        (name, f"/models/{name}", "tensorflow", 1) for name in N.SERVED_MODELS]


def test_repo_bruteforce_config_is_everything_but_the_scann_models():
    from recsys import names as N

    scann_models = set(N.BRUTE_FORCE_TWINS)
    assert scann_models == {N.RETRIEVAL, N.DUAL_RETRIEVAL, N.GRAPH_RETRIEVAL, N.SEQUENTIAL_RETRIEVAL}
    assert _repo_config("models.bruteforce.config") == [
        (name, f"/models/{name}", "tensorflow", 1) for name in N.SERVED_MODELS if name not in scann_models]
    # each ScaNN model's exact twin is there to take its place
    names = {name for name, *_ in _repo_config("models.bruteforce.config")}
    assert set(N.BRUTE_FORCE_TWINS.values()) <= names


def test_docker_compose_runs_tf_serving_with_the_config():
    with open(os.path.join(SERVING_DIR, "docker-compose.yml"), encoding="utf-8") as f:
        text = f.read()
    compose = yaml.safe_load(text)
    (service,) = compose["services"].values()
    assert service["image"] == "${TF_SERVING_IMAGE:-tensorflow/serving:2.16.1}"
    assert service["ports"] == ["8500:8500", "8501:8501"]
    assert "../artifacts/serving:/models" in service["volumes"]
    assert "--model_config_file=/models/${MODEL_CONFIG:-models.config}" in service["command"]
    # both configs are mounted from this directory beside the models
    for name in ("models.config", "models.bruteforce.config"):
        assert f"./{name}:/models/{name}:ro" in service["volumes"]
        assert os.path.exists(os.path.join(SERVING_DIR, name))
    from recsys import names as N

    for name in N.SERVED_MODELS:  # the comment says what the mounted directory holds
        assert name in text, name


def test_relative_base_paths_resolve_against_the_config_file(tmp_path):
    path = tmp_path / "conf" / "models.config"
    path.parent.mkdir()
    path.write_text('model_config_list { config { name: "a" base_path: "../exports/a" } '
                    'config { name: "b" base_path: "/abs/b" } }')
    config = load_model_server_config(str(path))
    assert [c.base_path for c in config.model_config_list.config] == [
        str(tmp_path / "exports" / "a"), "/abs/b"]


def test_model_server_config_helper():
    config = model_server_config([("retrieval", "/x/r"), ("toy", "/x/t")])
    assert [(c.name, c.base_path, c.model_platform) for c in config.model_config_list.config] == [
        ("retrieval", "/x/r", "tensorflow"), ("toy", "/x/t", "tensorflow")]
    assert not config.model_config_list.config[0].HasField("model_version_policy")


@pytest.mark.parametrize("text,message", [
    ('model_config_list { config { name: "a" base_path: "/a" } config { name: "a" '
     'base_path: "/b" } }', "Illegal to list model a multiple times"),
    ('model_config_list { config { name: "a" } }', "Model a has no base_path"),
    ('model_config_list { config { name: "a" base_path: "/a" model_platform: "onnx" } }',
     "unsupported model_platform"),
])
def test_invalid_configs_are_rejected(text, message):
    with pytest.raises(ServerError, match=message):
        ModelRegistry(text_format.Parse(text, model_server_config_pb2.ModelServerConfig()))


@pytest.mark.parametrize("policy,expected", [
    ("", [(2, "AVAILABLE")]),
    ("model_version_policy { latest { num_versions: 2 } }", [(2, "AVAILABLE"), (1, "AVAILABLE")]),
    ("model_version_policy { all {} }", [(2, "AVAILABLE"), (1, "AVAILABLE")]),
    ("model_version_policy { specific { versions: 1 versions: 7 } }", [(1, "AVAILABLE")]),
])
def test_version_policies(model_root, policy, expected):
    registry = registry_for(f'model_config_list {{ config {{ name: "r" base_path: '
                            f'"{model_root}/retrieval" {policy} }} }}')
    assert versions(registry, "r") == expected
    assert registry.resolve("r").version == expected[0][0]


def test_missing_base_path_then_versions_appear(model_root, tmp_path):
    base = tmp_path / "later"
    registry = registry_for(f'model_config_list {{ config {{ name: "m" base_path: "{base}" }} }}')
    with pytest.raises(ServerError) as info:
        registry.resolve("m")
    assert info.value.code == grpc.StatusCode.NOT_FOUND
    base.mkdir()
    (base / "3").mkdir()  # no saved_model.pb yet: not a loadable version
    registry.poll()
    with pytest.raises(ServerError, match="Could not find any versions of model m"):
        registry.status("m")
    shutil.copytree(os.path.join(model_root, "toy", "1"), base / "1")
    registry.poll()
    assert versions(registry, "m") == [(1, "AVAILABLE")]


def test_a_broken_new_version_does_not_take_the_old_one_down(model_root, tmp_path):
    shutil.copytree(os.path.join(model_root, "toy", "1"), tmp_path / "1")
    registry = registry_for(f'model_config_list {{ config {{ name: "m" base_path: "{tmp_path}" }} }}')
    (tmp_path / "2").mkdir()
    (tmp_path / "2" / "saved_model.pb").write_bytes(b"not a protobuf")
    registry.poll()
    registry.poll()  # not retried while unchanged; v1 stays until a wanted version is up
    assert versions(registry, "m") == [(2, "END"), (1, "AVAILABLE")]
    failed = dict(registry.status("m"))[2]
    assert failed.error_code == grpc.StatusCode.DATA_LOSS
    assert "Could not parse the SavedModel" in failed.error_message
    assert registry.resolve("m").version == 1


def test_cli_flags_and_defaults(tmp_path):
    parser = server_module.build_arg_parser()
    args = parser.parse_args(["--model_base_path", str(tmp_path)])
    assert (args.port, args.rest_api_port, args.file_system_poll_wait_seconds,
            args.rest_api_timeout_in_ms, args.model_name) == (8500, 8501, 1, 30000, "default")
    server = server_module.server_from_args(parser.parse_args(
        ["--model_name=m", f"--model_base_path={tmp_path}", "--rest_api_port=0", "--port=0",
         "--file_system_poll_wait_seconds=0"]))
    assert server.rest_port is None and server.grpc_port == 0 and server.poll_seconds == 0
    assert [(c.name, c.base_path) for c in server.config.model_config_list.config] == [
        ("m", str(tmp_path))]
    args = parser.parse_args([f"--model_config_file={SERVING_DIR}/models.config",
                              "--base_path_rewrite=/models=/srv/exports"])
    assert [c.base_path for c in server_module.server_from_args(args).config
            .model_config_list.config] == [f"/srv/exports/{name}" for name in SERVED_MODELS]
    with pytest.raises(SystemExit):
        parser.parse_args(["--base_path_rewrite=nonsense"])
