"""alm_beam package. Also the --setup_file that ships alm_beam to remote Beam workers."""

from setuptools import find_packages, setup

# Ranges, so alm_beam installs next to an existing Beam or NeMo Curator
# environment; constraints.txt pins what CI installs. apache-beam: only what CI
# tests. The floor is .ci/run's floor job (ALM_BEAM_CI_BEAM_FLOOR=1, unit and
# golden tests); the ceiling is constraints.txt's pin (the whole suite). Raise
# the ceiling together with the pin (tests/test_tested_versions.py checks both,
# and README's "Versions" line).
BEAM_FLOOR = "2.71.0"
BEAM_CEILING = "2.77.0"
BEAM = f">={BEAM_FLOOR},<={BEAM_CEILING}"

setup(
    name="alm_beam",
    version="0.1.0",
    description="NeMo Curator's ALM window curation as an Apache Beam pipeline",
    long_description=open("README.md", encoding="utf-8").read()
    if __import__("os").path.exists("README.md")
    else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["alm_beam", "alm_beam.*"]),
    package_data={"alm_beam": ["data/*.jsonl.gz"]},
    install_requires=[
        f"apache-beam{BEAM}",
        "orjson>=3.10,<4",
        "PyYAML>=6.0.1,<7",
    ],
    extras_require={
        # websocket-client: the report's browser test drives chromium over DevTools
        "test": ["pytest>=8,<10", "hypothesis>=6.100,<7", "websocket-client>=1.9,<2"],
        # The layer contracts (pyproject.toml, `lint-imports`) and the lint CI runs.
        "lint": ["import-linter>=2.17,<3", "ruff>=0.17,<0.18"],
        # Object stores and Beam YAML: Beam's own extras of the same name.
        "aws": [f"apache-beam[aws]{BEAM}"],  # s3://
        "gcp": [f"apache-beam[gcp]{BEAM}"],  # gs://
        "azure": [f"apache-beam[azure]{BEAM}"],  # azfs://
        "yaml": [f"apache-beam[yaml]{BEAM}"],  # pipelines/alm.yaml
    },
    entry_points={"console_scripts": ["alm-beam=alm_beam.run:cli"]},
)
