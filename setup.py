"""alm_beam package. Also the --setup_file that ships alm_beam to remote Beam workers."""

from setuptools import find_packages, setup

BEAM_VERSION = "2.77.0"  # newest apache-beam on PyPI; see README "Engines and versions"

setup(
    name="alm_beam",
    version="0.1.0",
    description="NeMo Curator's ALM window curation as an Apache Beam pipeline",
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["alm_beam", "alm_beam.*"]),
    package_data={"alm_beam": ["data/*.jsonl.gz"]},
    install_requires=[
        f"apache-beam=={BEAM_VERSION}",
        "orjson==3.13.0",
        "PyYAML==6.0.4",
        # report.html: plotly ships plotly.js, inlined into every run's report
        # (~70 MB installed with narwhals, next to Beam's ~500 MB).
        "plotly==7.1.0",
    ],
    extras_require={
        # websocket-client: the report's browser test drives chromium over DevTools
        "test": ["pytest==9.2.0", "hypothesis==6.170.17", "websocket-client==1.9.2"],
    },
    entry_points={"console_scripts": ["alm-beam=alm_beam.run:main"]},
)
