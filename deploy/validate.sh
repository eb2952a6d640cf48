#!/usr/bin/env bash
# Validates the Kubernetes manifests offline (docs/KUBERNETES.md, "Validation"):
#   bash deploy/validate.sh [EXTRA_MANIFEST.yaml ...]
#
# 1. `helm lint --strict` on deploy/helm/agentdb with its default values,
#    values-single.yaml and values-cluster.yaml;
# 2. `helm template` of the chart (CRDs included) for the same three, into a temporary
#    folder;
# 3. every document of those renders, of deploy/examples/*.yaml and of the extra files
#    given (multi-document YAML, e.g. `agentdb-operator render` output) through
#    deploy/validate_manifests.py:
#    Kubernetes $K8S_VERSION schemas in strict mode (kubernetes-validate), the
#    AgentCluster/AgentIngestJob CRD schemas from deploy/crds/agentdb.io.yaml (jsonschema),
#    basic checks for ServiceMonitors.
# One line per document (`ok  Kind/name`, `FAIL Kind/name: reason`), a summary, and a
# non-zero exit status on any failure. Needs no network and no cluster: the tools are
# the ones .ci/setup.sh installs into ~/.cache/agentdb/k8s-venv (Helm 3.19.0,
# kubernetes-validate 1.37.0, jsonschema 4.26.0).
set -euo pipefail
cd "$(dirname "$0")/.."

K8S_VENV="${K8S_VENV:-$HOME/.cache/agentdb/k8s-venv}"
K8S_VERSION="${K8S_VERSION:-1.34}"
CHART=deploy/helm/agentdb
CRDS=deploy/crds/agentdb.io.yaml
PY="$K8S_VENV/bin/python"
HELM="$K8S_VENV/bin/helm"
[ -x "$HELM" ] || HELM="$(command -v helm || true)"

if [ ! -x "$PY" ] || ! "$PY" -c "import kubernetes_validate, jsonschema, yaml" 2>/dev/null || [ -z "$HELM" ]; then
  echo "validate: the tools are missing from $K8S_VENV; run: bash .ci/setup.sh" >&2
  exit 2
fi

for f in "$@"; do
  [ -f "$f" ] || { echo "validate: no such file: $f" >&2; exit 2; }
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Helm's own folders in the temporary one: nothing read from or written to the home
# folder, no repositories, no network.
export HELM_CACHE_HOME="$tmp/helm/cache" HELM_CONFIG_HOME="$tmp/helm/config" HELM_DATA_HOME="$tmp/helm/data"
export KUBECONFIG=/dev/null

echo "validate: $("$HELM" version --short), kubernetes-validate $("$PY" -c 'import kubernetes_validate; print(kubernetes_validate.__version__)'), jsonschema $("$PY" -c 'from importlib.metadata import version; print(version("jsonschema"))'); Kubernetes $K8S_VERSION"

failed=0

# The chart's copy of the CRDs must be the generated file once there is one.
if [ -f "$CRDS" ] && grep -q '^kind: CustomResourceDefinition' "$CRDS"; then
  if ! cmp -s "$CRDS" "$CHART/crds/agentdb.io.yaml"; then
    echo "FAIL $CHART/crds/agentdb.io.yaml differs from $CRDS: cp $CRDS $CHART/crds/"
    failed=1
  fi
else
  echo "note: $CRDS absent or not generated yet: AgentCluster/AgentIngestJob get basic checks only"
fi

# Every documented value (a `# --` comment in values.yaml) is in both values tables.
if ! "$PY" - "$CHART/values.yaml" "$CHART/README.md" docs/KUBERNETES.md <<'PY'
import re, sys
values, docs = sys.argv[1], sys.argv[2:]
stack, keys, documented = [], [], False
for line in open(values):
    s = line.strip()
    if s.startswith("# -- "):
        documented = True
        continue
    if not s or s.startswith("#"):
        documented = documented and s.startswith("#")
        continue
    m = re.match(r"^(\s*)([A-Za-z0-9_]+):", line)
    if not m:
        continue
    indent = len(m.group(1))
    while stack and stack[-1][0] >= indent:
        stack.pop()
    stack.append((indent, m.group(2)))
    if documented:
        keys.append(".".join(k for _, k in stack))
    documented = False
bad = 0
for d in docs:
    text = open(d).read()
    missing = [k for k in keys if f"| `{k}` |" not in text]
    if missing:
        print(f"FAIL {d}: values missing from its table: {', '.join(missing)}")
        bad = 1
sys.exit(bad)
PY
then
  failed=1
else
  echo "ok  values tables: every documented value of $CHART/values.yaml is in $CHART/README.md and docs/KUBERNETES.md"
fi

renders=()
titles=()
for variant in default single cluster; do
  values=()
  [ "$variant" = default ] || values=(-f "$CHART/values-$variant.yaml")
  echo "== helm lint ($variant)"
  if ! "$HELM" lint --strict --kube-version "$K8S_VERSION.0" "$CHART" "${values[@]}" >"$tmp/lint-$variant.txt" 2>&1; then
    sed 's/^/   /' "$tmp/lint-$variant.txt"
    echo "FAIL helm lint ($variant)"
    failed=1
  else
    grep -E '^\[(WARNING|ERROR|INFO)\]' "$tmp/lint-$variant.txt" | sed 's/^/   /' || true
    echo "ok  helm lint ($variant): $(tail -n 1 "$tmp/lint-$variant.txt")"
  fi
  out="$tmp/render-$variant.yaml"
  if ! "$HELM" template agentdb "$CHART" --namespace agentdb --kube-version "$K8S_VERSION.0" \
      --include-crds "${values[@]}" >"$out" 2>"$tmp/template-$variant.txt"; then
    sed 's/^/   /' "$tmp/template-$variant.txt"
    echo "FAIL helm template ($variant)"
    failed=1
    continue
  fi
  renders+=("$out")
  titles+=(--rendered "$out=helm template ($variant)")
done

# The checked-in examples too (deploy/examples/*.yaml), then the files given.
shopt -s nullglob
examples=(deploy/examples/*.yaml deploy/examples/*.yml)
shopt -u nullglob
"$PY" deploy/validate_manifests.py --kubernetes-version "$K8S_VERSION" --crds "$CRDS" \
  "${titles[@]}" "${renders[@]}" "${examples[@]}" "$@" || failed=1

if [ "$failed" != 0 ]; then
  echo "validate: FAILED"
  exit 1
fi
echo "validate: all passed"
