"""mmoe-pipeline: a TFX pipeline that trains a Multi-gate Mixture-of-Experts model."""

from setuptools import find_packages, setup

setup(
    name="mmoe-pipeline",
    version="0.1.0",
    description="Production TFX pipeline for multi-task MMoE models, local (Beam) and on Kubeflow.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10,<3.11",
    packages=find_packages(include=["pipeline", "pipeline.*", "components", "heads", "trainer", "schemas", "sources"]),
    package_data={
        "schemas": ["*/*.pbtxt", "*/*.yaml"],
        "sources": ["data/*.gz", "data/README.md"],
    },
    install_requires=[
        "tfx[kfp]==1.16.0",
        "apache-beam[gcp]==2.59.0",
        "dill",
        "click>=8",
        "PyYAML>=6",
        "matplotlib>=3.8,<3.9",
    ],
    extras_require={
        "test": ["pytest", "moto[server]", "ruff==0.17.6"],
        # s3:// URIs (MinIO on Kubeflow, AWS): tensorflow-io registers s3:// with TensorFlow (hence TFX
        # fileio), apache-beam[aws] with Beam. See components/object_store.py.
        "s3": ["tensorflow-io==0.37.1", "apache-beam[aws]==2.59.0"],
        # The benchmarks' boosted-tree reference (bench/paper.py), not the pipeline.
        "bench": ["lightgbm==4.7.0"],
    },
    entry_points={"console_scripts": ["mmoe-pipeline=pipeline.cli:entrypoint"]},
)
