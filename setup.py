"""Commerce recommender stack on TFX, Keras, ScaNN and TF Serving's API."""
from setuptools import find_packages, setup

PACKAGES = ["recsys", "transform", "trainer", "export", "tfx_pipeline", "serving", "apps"]
#: the client distribution's package (clients/python, installable alone without TensorFlow):
#: the full stack ships it too, since ``serving.client`` and ``serving.tensors`` re-export it
CLIENT = "commerce_recsys_client"

setup(
    name="commerce-recsys",
    version="0.1.0",
    description=(
        "Multi-stage e-commerce recommender: TFX + Beam pipeline, Keras models "
        "exported as SavedModels with ScaNN, served through TF Serving's API."
    ),
    python_requires=">=3.10,<3.11",
    packages=find_packages(include=[p for name in PACKAGES for p in (name, name + ".*")]) + [CLIENT],
    package_dir={CLIENT: "clients/python/src/" + CLIENT},
    package_data={"serving": ["*.config", "*.yml"]},
    install_requires=[
        "tfx==1.16.0",
        "tensorflow==2.16.2",
        "tf-keras==2.16.0",
        "tensorflow-recommenders==0.7.7",
        "scann==1.3.2",
        "tensorflow-text==2.16.1",
        "tensorflow-serving-api==2.16.1",
        "tensorflow-transform==1.16.0",
        "apache-beam[gcp,dill]==2.74.0",
        "protobuf==3.20.3",
        "pyarrow==10.0.1",
        "numpy==1.26.4",
    ],
    extras_require={"test": ["pytest"]},
    entry_points={"console_scripts": ["recsys=apps.cli:main"]},
)
