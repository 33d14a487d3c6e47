{{/*
Names, labels, images and the checks every render runs. Helpers that work on
one component take a dict: (dict "root" $ "component" "frontend").
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "demo-app.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The prefix of every resource name: fullnameOverride, else "<release>-<name>",
else the release name alone when it already contains the chart name.
Kept to 50 characters so "<fullname>-frontend-data" and "<fullname>-db-app"
still fit 63.
*/}}
{{- define "demo-app.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "demo-app.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "<chart>-<version>" for the helm.sh/chart label. */}}
{{- define "demo-app.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The components, in rendering order. */}}
{{- define "demo-app.components" -}}
frontend backend
{{- end -}}

{{/* "<fullname>-<component>": Deployment, Service, ServiceAccount, HPA, PDB. */}}
{{- define "demo-app.componentFullname" -}}
{{- printf "%s-%s" (include "demo-app.fullname" .root) .component -}}
{{- end -}}

{{/* The version label: the image tag (or appVersion), made label-safe. */}}
{{- define "demo-app.version" -}}
{{- default .Chart.AppVersion .Values.image.tag | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Selector labels of the release. They never change across upgrades: no
version, no chart label.
*/}}
{{- define "demo-app.selectorLabels" -}}
app.kubernetes.io/name: {{ include "demo-app.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Selector labels of one component. */}}
{{- define "demo-app.componentSelectorLabels" -}}
{{ include "demo-app.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Labels of every object of the release. */}}
{{- define "demo-app.labels" -}}
helm.sh/chart: {{ include "demo-app.chart" . }}
{{ include "demo-app.selectorLabels" . }}
app.kubernetes.io/version: {{ include "demo-app.version" . | quote }}
app.kubernetes.io/part-of: {{ .Values.partOf }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels of the objects of one component. */}}
{{- define "demo-app.componentLabels" -}}
{{ include "demo-app.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/*
Labels of one component's pods: its labels but helm.sh/chart. A chart built
from Git has a new version at every commit (Flux's reconcileStrategy
Revision: 0.1.0+<commit>); in the pod template it restarted every pod, and
under Argo Rollouts started a canary, for a commit that changed nothing the
pods run (found by `make reconcile`).
*/}}
{{- define "demo-app.podLabels" -}}
{{- omit (include "demo-app.componentLabels" . | fromYaml) "helm.sh/chart" | toYaml -}}
{{- end -}}

{{/* An image reference: repository@digest when a digest is set, else repository:tag. */}}
{{- define "demo-app.imageRef" -}}
{{- $tag := default .defaultTag .image.tag -}}
{{- if regexMatch "^(?i)latest$" (toString $tag) -}}
{{- fail (printf "image %s: the tag \"latest\" is not allowed; pin a version" .image.repository) -}}
{{- end -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The app image. */}}
{{- define "demo-app.image" -}}
{{- include "demo-app.imageRef" (dict "image" .Values.image "defaultTag" .Chart.AppVersion) -}}
{{- end -}}

{{/* The ServiceAccount of a component. */}}
{{- define "demo-app.serviceAccountName" -}}
{{- if .root.Values.serviceAccount.create -}}
{{- include "demo-app.componentFullname" . -}}
{{- else -}}
{{- default "default" .root.Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The backend Service of this release. */}}
{{- define "demo-app.backendUrl" -}}
{{- if .Values.frontend.backendUrl -}}
{{- .Values.frontend.backendUrl -}}
{{- else -}}
{{- printf "http://%s.%s.svc:%d" (include "demo-app.componentFullname" (dict "root" . "component" "backend")) .Release.Namespace (int .Values.ports.http) -}}
{{- end -}}
{{- end -}}

{{/* The CloudNativePG Cluster name. */}}
{{- define "demo-app.databaseClusterName" -}}
{{- printf "%s-db" (include "demo-app.fullname" .) -}}
{{- end -}}

{{/* The Secret holding the PostgreSQL URL: existingSecret, else CNPG's "<cluster>-app". */}}
{{- define "demo-app.databaseSecretName" -}}
{{- if .Values.postgresql.existingSecret -}}
{{- .Values.postgresql.existingSecret -}}
{{- else -}}
{{- printf "%s-app" (include "demo-app.databaseClusterName" .) -}}
{{- end -}}
{{- end -}}

{{/* Replicas of a component when autoscaling is off. */}}
{{- define "demo-app.replicas" -}}
{{- $values := index .root.Values .component -}}
{{- if hasKey $values "replicaCount" -}}
{{- int $values.replicaCount -}}
{{- else -}}
{{- int .root.Values.replicaCount -}}
{{- end -}}
{{- end -}}

{{/* The fewest pods a component runs: its replicas, or the HPA's minimum. */}}
{{- define "demo-app.minPods" -}}
{{- if .root.Values.autoscaling.enabled -}}
{{- int .root.Values.autoscaling.minReplicas -}}
{{- else -}}
{{- include "demo-app.replicas" . -}}
{{- end -}}
{{- end -}}

{{/* The most pods a component runs. */}}
{{- define "demo-app.maxPods" -}}
{{- if .root.Values.autoscaling.enabled -}}
{{- int .root.Values.autoscaling.maxReplicas -}}
{{- else -}}
{{- include "demo-app.replicas" . -}}
{{- end -}}
{{- end -}}

{{/*
A duration as the binary's flags accept it ("500ms", "5s", "2m", "1h"),
in milliseconds.
*/}}
{{- define "demo-app.durationMs" -}}
{{- $d := toString . -}}
{{- if not (regexMatch "^[0-9]+(ms|s|m|h)$" $d) -}}
{{- fail (printf "invalid duration %q: use a number followed by ms, s, m or h (e.g. 5s)" $d) -}}
{{- end -}}
{{- $n := regexFind "^[0-9]+" $d | atoi -}}
{{- $unit := regexFind "(ms|s|m|h)$" $d -}}
{{- $factor := get (dict "ms" 1 "s" 1000 "m" 60000 "h" 3600000) $unit -}}
{{- mul $n $factor -}}
{{- end -}}

{{/*
terminationGracePeriodSeconds: the kubelet must wait longer than the drain
delay plus the shutdown timeout, or it kills requests the app is finishing.
0 computes ceil(drain + shutdown) + 5 s; any other value is checked.
*/}}
{{- define "demo-app.terminationGracePeriodSeconds" -}}
{{- $drainMs := include "demo-app.durationMs" .Values.config.drainDelay | atoi -}}
{{- $shutdownMs := include "demo-app.durationMs" .Values.config.serverShutdownTimeout | atoi -}}
{{- $neededMs := add $drainMs $shutdownMs -}}
{{- $seconds := int .Values.terminationGracePeriodSeconds -}}
{{- if eq $seconds 0 -}}
{{- $seconds = add (div (add $neededMs 999) 1000) 5 -}}
{{- else if le (mul $seconds 1000) $neededMs -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be greater than config.drainDelay (%s) + config.serverShutdownTimeout (%s); raise it or set 0 to compute it" $seconds .Values.config.drainDelay .Values.config.serverShutdownTimeout) -}}
{{- end -}}
{{- $seconds -}}
{{- end -}}

{{/*
Checks the schema cannot express; each one fails the render with the fix.
Rendered (to nothing) by the Deployment template.
*/}}
{{- define "demo-app.validate" -}}
{{- $v := .Values -}}
{{- $_ := include "demo-app.terminationGracePeriodSeconds" . -}}
{{- if and (not $v.jwt.existingSecret) (ne $v.config.level "debug") (not $v.config.insecureDev) -}}
{{- fail "jwt.existingSecret is required: the binary refuses its built-in JWT secret unless config.level is debug or config.insecureDev is true" -}}
{{- end -}}
{{- if eq $v.environment "production" -}}
{{- if $v.config.controlEndpoints -}}
{{- fail "config.controlEndpoints must be false when environment is production" -}}
{{- end -}}
{{- if or $v.config.insecureDev (not $v.jwt.existingSecret) -}}
{{- fail "environment production needs jwt.existingSecret and config.insecureDev false" -}}
{{- end -}}
{{- end -}}
{{- if gt (int $v.config.faults.randomDelayMin) (int $v.config.faults.randomDelayMax) -}}
{{- fail "config.faults.randomDelayMin must not exceed config.faults.randomDelayMax" -}}
{{- end -}}
{{- $backend := dict "root" . "component" "backend" -}}
{{- if and (not $v.postgresql.enabled) (gt (include "demo-app.maxPods" $backend | int) 1) -}}
{{- fail "SQLite is one database per pod: run a single backend replica (and no autoscaling), or set postgresql.enabled" -}}
{{- end -}}
{{- if and $v.postgresql.enabled (not $v.postgresql.cluster.create) (not $v.postgresql.existingSecret) -}}
{{- fail "postgresql.existingSecret is required when postgresql.cluster.create is false (an external database)" -}}
{{- end -}}
{{- if and $v.postgresql.enabled $v.volumes.backendPersistence.enabled -}}
{{- fail "volumes.backendPersistence is for SQLite; the backend keeps nothing else worth a volume when postgresql.enabled" -}}
{{- end -}}
{{- if $v.autoscaling.enabled -}}
{{- if gt (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas) -}}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" -}}
{{- end -}}
{{- if and (eq (int $v.autoscaling.targetCPUUtilizationPercentage) 0) (eq (int $v.autoscaling.targetMemoryUtilizationPercentage) 0) -}}
{{- fail "autoscaling needs targetCPUUtilizationPercentage or targetMemoryUtilizationPercentage above 0" -}}
{{- end -}}
{{- end -}}
{{- if $v.podDisruptionBudget.enabled -}}
{{- $pdb := $v.podDisruptionBudget -}}
{{- $min := $pdb.minAvailable -}}
{{- $max := $pdb.maxUnavailable -}}
{{- if and (kindIs "invalid" $min) (kindIs "invalid" $max) -}}
{{- fail "podDisruptionBudget needs minAvailable or maxUnavailable" -}}
{{- end -}}
{{- if and (not (kindIs "invalid" $min)) (not (kindIs "invalid" $max)) -}}
{{- fail "podDisruptionBudget: set minAvailable or maxUnavailable, not both (set the other to null)" -}}
{{- end -}}
{{- range $component := splitList " " (include "demo-app.components" $) -}}
{{- $pods := include "demo-app.minPods" (dict "root" $ "component" $component) | int -}}
{{- if and (not (kindIs "invalid" $min)) (not (kindIs "string" $min)) (ge (int $min) $pods) -}}
{{- fail (printf "podDisruptionBudget.minAvailable (%d) must be lower than the %s's fewest pods (%d), or no pod could ever be evicted" (int $min) $component $pods) -}}
{{- end -}}
{{- if and (not (kindIs "invalid" $max)) (not (kindIs "string" $max)) (eq (int $max) 0) -}}
{{- fail "podDisruptionBudget.maxUnavailable 0 would block every eviction" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if $v.mesh.enabled -}}
{{- if not $v.serviceAccount.create -}}
{{- fail "mesh.enabled needs serviceAccount.create: the AuthorizationPolicies tell the frontend from the backend by their ServiceAccounts" -}}
{{- end -}}
{{- if and $v.mesh.gateway.create (not $v.mesh.gateway.hosts) -}}
{{- fail "mesh.gateway.create needs at least one host in mesh.gateway.hosts" -}}
{{- end -}}
{{- end -}}
{{- if $v.rollouts.enabled -}}
{{- if not $v.mesh.enabled -}}
{{- fail "rollouts.enabled needs mesh.enabled: the canary's traffic is split by the Istio VirtualService" -}}
{{- end -}}
{{- if ne (int (last $v.rollouts.steps)) 100 -}}
{{- fail "rollouts.steps must end with 100 (the canary takes all the traffic before it is promoted)" -}}
{{- end -}}
{{- $previous := 0 -}}
{{- range $v.rollouts.steps -}}
{{- if le (int .) $previous -}}
{{- fail "rollouts.steps must increase strictly" -}}
{{- end -}}
{{- $previous = int . -}}
{{- end -}}
{{- end -}}
{{- if and $v.prometheusRule.enabled (not $v.prometheusRule.groups) -}}
{{- fail "prometheusRule.enabled needs at least one group in prometheusRule.groups" -}}
{{- end -}}
{{- end -}}

{{/* Pod securityContext of every pod of the chart (Pod Security "restricted"). */}}
{{- define "demo-app.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Container securityContext of every container of the chart. */}}
{{- define "demo-app.containerSecurityContext" -}}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
runAsNonRoot: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* A namespaceSelector + podSelector peer of a NetworkPolicy rule. */}}
{{- define "demo-app.networkPeer" -}}
- namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {{ .namespace }}
  podSelector:
    {{- if .podLabels }}
    matchLabels:
      {{- toYaml .podLabels | nindent 6 }}
    {{- else }}
    {}
    {{- end }}
{{- end -}}

{{/* The egress rule to the OpenTelemetry Collector, when telemetry is on. */}}
{{- define "demo-app.otelEgress" -}}
{{- if .Values.telemetry.enabled -}}
- to:
    {{- include "demo-app.networkPeer" .Values.networkPolicy.otelCollector | nindent 4 }}
  ports:
    {{- range .Values.networkPolicy.otelCollector.ports }}
    - port: {{ int . }}
      protocol: TCP
    {{- end }}
{{- end -}}
{{- end -}}

{{/* The cluster-local host name of a component's Service. */}}
{{- define "demo-app.serviceHost" -}}
{{- printf "%s.%s.svc.cluster.local" (include "demo-app.componentFullname" .) .root.Release.Namespace -}}
{{- end -}}

{{/* A mesh principal: "<trustDomain>/ns/<namespace>/sa/<serviceAccount>" (dict root namespace serviceAccount). */}}
{{- define "demo-app.principal" -}}
{{- printf "%s/ns/%s/sa/%s" .root.Values.mesh.trustDomain .namespace .serviceAccount -}}
{{- end -}}

{{/* The ServiceAccount of the helm test pods and the canary smoke Job. */}}
{{- define "demo-app.testServiceAccountName" -}}
{{- printf "%s-test" (include "demo-app.fullname" .) -}}
{{- end -}}

{{/* The Istio Gateway the frontend's VirtualService binds to ("<namespace>/<name>"). */}}
{{- define "demo-app.gatewayRef" -}}
{{- $g := .Values.mesh.gateway -}}
{{- $name := default (include "demo-app.fullname" .) $g.name -}}
{{- if $g.create -}}
{{- printf "%s/%s" .Release.Namespace $name -}}
{{- else -}}
{{- printf "%s/%s" $g.namespace $name -}}
{{- end -}}
{{- end -}}

{{/*
Names of a component's VirtualService HTTP routes whose weights Argo Rollouts
sets, in order (the Rollout lists the same names).
*/}}
{{- define "demo-app.weightedRoutes" -}}
{{- if eq .component "backend" -}}
orders-create-with-idempotency-key no-retry-writes primary
{{- else -}}
no-retry-writes primary
{{- end -}}
{{- end -}}
