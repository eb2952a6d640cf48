{{/* The chart name, or nameOverride. */}}
{{- define "agentdb.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every object's name: fullnameOverride, else the release name (with the
chart name appended unless the release name already contains it).
*/}}
{{- define "agentdb.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "agentdb.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The mode, checked. */}}
{{- define "agentdb.mode" -}}
{{- $m := .Values.mode | default "operator" }}
{{- if not (has $m (list "operator" "single")) }}
{{- fail (printf "mode must be \"operator\" or \"single\", not %q" $m) }}
{{- end }}
{{- $m }}
{{- end }}

{{/* Labels every object carries. */}}
{{- define "agentdb.labels" -}}
helm.sh/chart: {{ include "agentdb.chart" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: agentdb
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* ---- operator mode ---- */}}

{{- define "agentdb.operator.fullname" -}}
{{- printf "%s-operator" (include "agentdb.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "agentdb.operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "agentdb.name" . }}-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "agentdb.operator.labels" -}}
{{ include "agentdb.labels" . }}
{{ include "agentdb.operator.selectorLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "agentdb.operator.serviceAccountName" -}}
{{- default (include "agentdb.operator.fullname" .) .Values.operator.serviceAccount.name }}
{{- end }}

{{- define "agentdb.operator.image" -}}
{{- printf "%s:%s" .Values.operator.image.repository (.Values.operator.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* ---- single mode ---- */}}

{{- define "agentdb.single.selectorLabels" -}}
app.kubernetes.io/name: {{ include "agentdb.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: single
{{- end }}

{{- define "agentdb.single.labels" -}}
{{ include "agentdb.labels" . }}
{{ include "agentdb.single.selectorLabels" . }}
{{- end }}

{{- define "agentdb.single.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "agentdb.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "agentdb.single.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* The Secret holding the bootstrap admin API key (key `key`). */}}
{{- define "agentdb.single.adminSecret" -}}
{{- .Values.auth.existingSecret | default (printf "%s-admin-key" (include "agentdb.fullname" .)) }}
{{- end }}

{{/* The Secret holding the encryption master key (key `key`, 64 hex characters). */}}
{{- define "agentdb.single.encryptionSecret" -}}
{{- .Values.encryption.existingSecret | default (printf "%s-encryption" (include "agentdb.fullname" .)) }}
{{- end }}

{{/*
A server setting as its environment variable: `storage.flush_rows` ->
`AGENTDB_STORAGE__FLUSH_ROWS` (upper-case, dots to double underscores).
*/}}
{{- define "agentdb.envName" -}}
{{- printf "AGENTDB_%s" (. | trim | upper | replace "." "__") }}
{{- end }}
