{{/* Labels on every object of this chart. */}}
{{- define "platform-observability.labels" -}}
app.kubernetes.io/name: platform-observability
app.kubernetes.io/part-of: demo-platform
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- /* Flux builds this chart from Git with the version `0.1.0+<commit>`
(reconcileStrategy: Revision); `+` is not allowed in a label value. */}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
platform.demo/environment: {{ .Values.environment | quote }}
{{- end }}

{{/* A file of this chart parsed as YAML; a file that does not parse fails the render. */}}
{{- define "platform-observability.yamlFile" -}}
{{- $parsed := .root.Files.Get .path | fromYaml }}
{{- if hasKey $parsed "Error" }}
{{- fail (printf "%s is not YAML: %s" .path $parsed.Error) }}
{{- end }}
{{- toYaml $parsed }}
{{- end }}
