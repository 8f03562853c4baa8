"""Split a multi-document YAML stream into one JSON file per Kubernetes object.

Equivalent of `yq -s . FILE.yaml` followed by taking each array element, but per object, so that
check-jsonschema reports failures by object name. Usage:
    split_manifests.py INPUT.yaml OUTDIR   -> prints one "path<TAB>kind/namespace/name" line per object
Empty documents are skipped; a `kind: List` is expanded into its items.
"""
import json
import re
import sys
from pathlib import Path

from ruamel.yaml import YAML


def objects(stream):
    for doc in stream:
        if doc is None:
            continue
        if isinstance(doc, dict) and doc.get("apiVersion") == "v1" and doc.get("kind") == "List":
            yield from (item for item in doc.get("items") or [] if item is not None)
        else:
            yield doc


def main(src: str, outdir: str) -> int:
    yaml = YAML(typ="safe", pure=True)
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    with open(src, encoding="utf-8") as fh:
        for i, obj in enumerate(objects(yaml.load_all(fh))):
            meta = obj.get("metadata") or {} if isinstance(obj, dict) else {}
            kind = obj.get("kind", "?") if isinstance(obj, dict) else type(obj).__name__
            label = f"{kind}/{meta.get('namespace', '-')}/{meta.get('name', '?')}"
            safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", label)
            path = out / f"{i:03d}-{safe}.json"
            path.write_text(json.dumps(obj, default=str), encoding="utf-8")
            print(f"{path}\t{label}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
