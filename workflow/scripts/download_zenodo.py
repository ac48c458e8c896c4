"""Rule download_zenodo: one file of a Zenodo record -> resources/zenodo/{record}/{file}.

Uses scziva_bench.data.zenodo.fetch_record (resumable, MD5-checked, atomic; the configured
file name is matched literally, https only). A draft or
restricted record needs an access token: set the environment variable ZENODO_TOKEN.
SCZIVA_ZENODO_API overrides the API address (a mirror, or a local stand-in in tests).
"""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve()))  # noqa: F821  (finds _bootstrap)
import _bootstrap  # noqa: E402,F401  (this checkout's src/ first on sys.path)
from scziva_bench.pipeline.job import start_script  # noqa: E402

log = start_script(snakemake)  # noqa: F821

from scziva_bench.data import zenodo  # noqa: E402

record = snakemake.params.record  # noqa: F821
name = snakemake.params.file  # noqa: F821
out = Path(snakemake.output[0])  # noqa: F821
api = os.environ.get("SCZIVA_ZENODO_API") or zenodo.ZENODO_API
log.info("record %s, file %s, API %s", record, name, api)
paths = zenodo.fetch_record(record, out.parent, api_url=api, names=[name], extract=False,
                            progress=False, token=os.environ.get("ZENODO_TOKEN") or None)
log.info("downloaded %s", ", ".join(map(str, paths)))
if not out.is_file():
    raise FileNotFoundError(f"Zenodo record {record}: {name} was not downloaded to {out}")
