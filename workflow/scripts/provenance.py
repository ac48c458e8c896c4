"""Rule provenance: results/provenance.yaml -- the config, package versions, git commit."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve()))  # noqa: F821  (finds _bootstrap)
import _bootstrap  # noqa: E402,F401  (this checkout's src/ first on sys.path)
from scziva_bench.pipeline.provenance import provenance  # noqa: E402
from scziva_bench.pipeline.job import start_script, write_text_atomic  # noqa: E402

log = start_script(snakemake)  # noqa: F821

import yaml  # noqa: E402

from scziva_bench.methods import external  # noqa: E402

sm = snakemake  # noqa: F821
info = provenance(dict(sm.params.config), sm.params.workdir)
# each method's kind (control, package, re-implementation, user-supplied) and source
info["methods"] = external.provenance(dict(sm.params.config)["methods"])
text = yaml.safe_dump(info, sort_keys=False, default_flow_style=False)
log.info("\n%s", text)
write_text_atomic(text, sm.output[0])
