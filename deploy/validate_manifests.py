#!/usr/bin/env python3
"""Validate Kubernetes manifests offline (run by deploy/validate.sh with the k8s-venv's
Python; see docs/KUBERNETES.md, "Validation").

    validate_manifests.py --kubernetes-version 1.34 [--crds deploy/crds/agentdb.io.yaml] FILE...

Every YAML document of every FILE (multi-document streams; empty documents skipped) is
checked and reported on one line, `ok  Kind/name` or `FAIL Kind/name: reason`:

- built-in kinds: kubernetes-validate's JSON schemas of that Kubernetes version, strict
  (an unknown field anywhere fails, and so does a kind/apiVersion it has no schema for);
- AgentCluster, AgentIngestJob (agentdb.io): the CRD's openAPIV3Schema (from --crds)
  with jsonschema, an unknown field failing as on the API server with field validation
  Strict, and metadata against the strict ObjectMeta schema; with no CRD file (or only
  its placeholder) they get the basic checks below and say so;
- ServiceMonitor (monitoring.coreos.com): kubernetes-validate has no schema for it, so
  only apiVersion, kind, metadata.name and spec are checked (said on its line);
- any other custom resource: FAIL (no schema to check it against).

Also fails: a document that is not a mapping, a missing apiVersion, kind or
metadata.name, a custom resource name that is not a DNS-1123 subdomain, a Service name
that is not a DNS-1035 label, and the same object (apiVersion group, kind, namespace,
name) twice in one file. Exit status 1 if anything failed, 0 otherwise.
"""

import argparse
import copy
import json
import os
import re
import sys

import importlib_resources
import jsonschema
import kubernetes_validate
import yaml
from kubernetes_validate import utils as kv
from referencing import Registry, Resource

AGENTDB_GROUP = "agentdb.io"
AGENTDB_KINDS = {"AgentCluster", "AgentIngestJob"}
BASIC_ONLY = {("monitoring.coreos.com", "ServiceMonitor")}
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def name_error(doc):
    """What the API server would say about metadata.name, for the kinds whose rule the
    schemas do not carry: custom resources (a DNS-1123 subdomain) and Services (a
    DNS-1035 label). None when fine or not checked."""
    name, kind = doc["metadata"]["name"], doc["kind"]
    if not isinstance(name, str):
        return "metadata.name: not a string"
    if kind == "Service" and group_of(doc["apiVersion"]) == "":
        if len(name) > 63 or not DNS1035_LABEL.match(name):
            return f"metadata.name {name!r}: a Service name must be a DNS-1035 label (a-z, 0-9, '-', at most 63, starting with a letter)"
    elif group_of(doc["apiVersion"]) in (AGENTDB_GROUP, "monitoring.coreos.com"):
        if len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
            return f"metadata.name {name!r}: must be a DNS-1123 subdomain (a-z, 0-9, '-', '.')"
    return None


def group_of(api_version):
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


def load_documents(path):
    """The non-empty YAML documents of a file, or raise ValueError."""
    # kubernetes-validate's loader: a value node ('=') is read as a string.
    yaml.SafeLoader.add_constructor("tag:yaml.org,2002:value", kv.construct_value)
    with open(path) as f:
        text = f.read()
    try:
        return [d for d in yaml.load_all(text, Loader=yaml.SafeLoader) if d is not None]
    except yaml.YAMLError as e:
        raise ValueError("not YAML: " + " ".join(str(e).split())) from e


# ---- CRD schemas ----------------------------------------------------------------------


def load_crds(path):
    """{(group, kind, version): openAPIV3Schema} from a CRD file, {} when the file is
    absent or holds no CustomResourceDefinition (the placeholder)."""
    if not path or not os.path.exists(path):
        return {}
    out = {}
    for doc in load_documents(path):
        if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
            continue
        spec = doc.get("spec") or {}
        group, kind = spec.get("group"), (spec.get("names") or {}).get("kind")
        for v in spec.get("versions") or []:
            schema = ((v.get("schema") or {}).get("openAPIV3Schema"))
            if schema is not None:
                out[(group, kind, v.get("name"))] = schema
    return out


def structural_to_jsonschema(s, root=False):
    """A CRD's structural OpenAPI v3 schema as a JSON Schema (draft 4 semantics, as
    OpenAPI 3.0 has): `nullable` allows null, x-kubernetes-int-or-string allows both,
    and an object with `properties` rejects other fields unless
    x-kubernetes-preserve-unknown-fields (the API server prunes them; with
    kubectl's --validate=strict it rejects them, and so does this)."""
    if not isinstance(s, dict):
        return s
    s = copy.copy(s)
    for key in ("properties", "patternProperties", "definitions"):
        if isinstance(s.get(key), dict):
            s[key] = {k: structural_to_jsonschema(v) for k, v in s[key].items()}
    for key in ("items", "additionalProperties", "not"):
        if isinstance(s.get(key), dict):
            s[key] = structural_to_jsonschema(s[key])
    for key in ("allOf", "anyOf", "oneOf"):
        if isinstance(s.get(key), list):
            s[key] = [structural_to_jsonschema(x) for x in s[key]]
    if s.get("x-kubernetes-int-or-string"):
        s.pop("type", None)
        s["anyOf"] = s.get("anyOf", []) + [{"type": "integer"}, {"type": "string"}]
    if "properties" in s and "additionalProperties" not in s and not s.get(
        "x-kubernetes-preserve-unknown-fields"
    ):
        extra = set(s["properties"])
        if root:
            # apiVersion, kind and metadata are the API server's, whether or not the
            # generated schema lists them.
            extra |= {"apiVersion", "kind", "metadata"}
            s["properties"] = dict(s["properties"])
            for k in ("apiVersion", "kind"):
                s["properties"].setdefault(k, {"type": "string"})
            s["properties"].setdefault("metadata", {"type": "object"})
        s["additionalProperties"] = False
    if s.get("nullable"):
        s = {"anyOf": [s, {"type": "null"}]}
    return s


class K8sSchemas:
    """Strict Kubernetes schemas of one version, from kubernetes-validate's package."""

    def __init__(self, version):
        self.version = version
        base = f"v{self._schema_version(version)}-local-strict"
        root = importlib_resources.files("kubernetes_validate").joinpath("kubernetes-json-schema", base)
        with importlib_resources.as_file(root.joinpath("_definitions.json")) as p:
            defs = json.load(open(p))
        with importlib_resources.as_file(root.joinpath("objectmeta-meta-v1.json")) as p:
            self.objectmeta = json.load(open(p))
        self.registry = Resource.from_contents(defs) @ Registry()

    @staticmethod
    def _schema_version(version):
        mm = kv.major_minor(version.lstrip("v"))
        versions = [v for v in kv.all_versions() if kv.major_minor(v) <= mm]
        if not versions or mm > kv.major_minor(kv.latest_version()):
            raise SystemExit(
                f"kubernetes-validate {kubernetes_validate.__version__} has no schemas for Kubernetes {version}"
            )
        return versions[-1]

    def metadata_errors(self, metadata):
        v = jsonschema.Draft202012Validator(self.objectmeta, registry=self.registry)
        return [".".join(["metadata", *map(str, e.path)]) + f": {e.message}" for e in v.iter_errors(metadata)]


# ---- checks ---------------------------------------------------------------------------


def first_error(errors):
    errors = sorted(errors, key=lambda e: (len(list(e.path)), list(map(str, e.path))))
    e = errors[0]
    path = ".".join(str(p) for p in e.path)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{path or '<root>'}: {e.message}{more}"


def basic(doc):
    """apiVersion, kind, metadata.name and spec present; the reason, or None."""
    meta = doc.get("metadata")
    if not isinstance(meta, dict) or not meta.get("name"):
        return "no metadata.name"
    if not isinstance(doc.get("spec"), dict):
        return "no spec (a mapping)"
    return None


def check(doc, k8s, crds, crd_file):
    """(ok, note-or-reason) for one document."""
    api_version, kind = doc["apiVersion"], doc["kind"]
    group = group_of(api_version)
    if group == AGENTDB_GROUP and kind in AGENTDB_KINDS:
        version = api_version.split("/", 1)[1]
        schema = crds.get((group, kind, version))
        if schema is None:
            reason = basic(doc)
            if reason:
                return False, reason
            if crds:
                return False, f"{crd_file} has no schema for {kind} {api_version}"
            return True, f"basic checks only: no CRD schema in {crd_file} yet"
        errors = k8s.metadata_errors(doc.get("metadata") or {})
        if errors:
            return False, errors[0]
        js = structural_to_jsonschema(schema, root=True)
        errs = list(jsonschema.Draft4Validator(js).iter_errors(doc))
        if errs:
            return False, first_error(errs)
        return True, f"against the CRD schema in {crd_file}"
    if (group, kind) in BASIC_ONLY:
        reason = basic(doc)
        if reason:
            return False, reason
        return True, f"basic checks only: kubernetes-validate has no schema for {api_version} {kind}"
    try:
        kv.validate(doc, k8s.version, strict=True)
    except kv.ValidationError as e:
        return False, first_error([e])
    except kv.SchemaNotFoundError:
        return False, f"no schema for {kind} {api_version} in Kubernetes {k8s.version} (a typo, or a custom resource)"
    except Exception as e:  # noqa: BLE001 - report, do not crash
        return False, f"could not be validated: {e}"
    return True, None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kubernetes-version", "-k", default="1.34")
    ap.add_argument("--crds", default="deploy/crds/agentdb.io.yaml", help="the CRD file for AgentCluster/AgentIngestJob")
    ap.add_argument("--quiet-ok", action="store_true", help="print only failures and the summary")
    ap.add_argument("--rendered", action="append", default=[], metavar="FILE=TITLE",
                    help="show FILE as TITLE in the headers (the temporary helm template outputs)")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()

    k8s = K8sSchemas(args.kubernetes_version)
    try:
        crds = load_crds(args.crds)
    except (ValueError, OSError) as e:
        print(f"FAIL {args.crds}: {e}")
        return 1
    counts = {"ok": 0, "basic": 0, "fail": 0}

    titles = dict(r.split("=", 1) for r in args.rendered)
    for path in args.files:
        print(f"== {titles.get(path, path)}")
        try:
            docs = load_documents(path)
        except (ValueError, OSError) as e:
            print(f"FAIL {path}: {e}")
            counts["fail"] += 1
            continue
        seen = set()
        for i, doc in enumerate(docs):
            where = f"{os.path.basename(path)} #{i + 1}"
            if not isinstance(doc, dict):
                print(f"FAIL {where}: not a mapping")
                counts["fail"] += 1
                continue
            kind = doc.get("kind") or "?"
            name = (doc.get("metadata") or {}).get("name") if isinstance(doc.get("metadata"), dict) else None
            label = f"{kind}/{name or '?'}"
            if not doc.get("apiVersion") or not doc.get("kind"):
                print(f"FAIL {label} ({where}): no apiVersion or kind")
                counts["fail"] += 1
                continue
            if not name:
                print(f"FAIL {label} ({where}): no metadata.name")
                counts["fail"] += 1
                continue
            key = (group_of(doc["apiVersion"]), kind, (doc.get("metadata") or {}).get("namespace", ""), name)
            if key in seen:
                print(f"FAIL {label} ({where}): the same object appears twice")
                counts["fail"] += 1
                continue
            seen.add(key)
            reason = name_error(doc)
            ok, note = (False, reason) if reason else check(doc, k8s, crds, args.crds)
            if not ok:
                print(f"FAIL {label}: {note}")
                counts["fail"] += 1
            else:
                counts["basic" if note and note.startswith("basic") else "ok"] += 1
                if not args.quiet_ok:
                    print(f"ok  {label}" + (f" ({note})" if note else ""))
    total = sum(counts.values())
    print(
        f"validate: {total} documents against Kubernetes {args.kubernetes_version} (strict): "
        f"{counts['ok'] + counts['basic']} ok ({counts['basic']} with basic checks only), {counts['fail']} failed"
    )
    return 1 if counts["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
