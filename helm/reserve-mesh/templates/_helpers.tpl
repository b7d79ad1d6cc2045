{{/* Common names and labels. */}}

{{/* <release>-<chart name> (nameOverride replaces the chart name, fullnameOverride the
whole), short enough that every <fullname>-<component> fits a DNS label. */}}
{{- define "reserve-mesh.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 45 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 45 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 45 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of one component's objects: <fullname>-<component>. */}}
{{- define "reserve-mesh.componentName" -}}
{{- printf "%s-%s" (include "reserve-mesh.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "reserve-mesh.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/part-of: {{ default .Chart.Name .Values.nameOverride }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{/* Selector labels of one component; root = the chart context. */}}
{{- define "reserve-mesh.selectorLabels" -}}
app.kubernetes.io/name: {{ .component }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{- define "reserve-mesh.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "reserve-mesh.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "reserve-mesh.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding what the chart generates (passwords, the page-token key, the bundled
issuer's signing key), kept across upgrades. */}}
{{- define "reserve-mesh.generatedSecret" -}}
{{- printf "%s-generated" (include "reserve-mesh.fullname" .) -}}
{{- end -}}

{{/* The Secret holding the notice webhook's url and signing secret; empty when none is set. */}}
{{- define "reserve-mesh.webhookSecret" -}}
{{- if .Values.notice.webhookExistingSecret -}}
{{- .Values.notice.webhookExistingSecret -}}
{{- else if .Values.notice.webhookUrl -}}
{{- printf "%s-notice-webhook" (include "reserve-mesh.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding each service's DATABASE_URL: the generated one with the bundled
PostgreSQL, else the operator's existing one or one made from databases.urls. */}}
{{- define "reserve-mesh.databaseSecret" -}}
{{- if .Values.postgresql.enabled -}}
{{- include "reserve-mesh.generatedSecret" . -}}
{{- else -}}
{{- default (printf "%s-databases" (include "reserve-mesh.fullname" .)) .Values.databases.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "reserve-mesh.pageTokenSecret" -}}
{{- default (include "reserve-mesh.generatedSecret" .) .Values.pageTokens.existingSecret -}}
{{- end -}}

{{/* NATS for the services: the bundled server's Service or nats.url. */}}
{{- define "reserve-mesh.natsUrl" -}}
{{- if .Values.nats.enabled -}}
{{- printf "nats://%s:4222" (include "reserve-mesh.componentName" (dict "root" . "component" "nats")) -}}
{{- else -}}
{{- required "nats.url is required with nats.enabled=false" .Values.nats.url -}}
{{- end -}}
{{- end -}}

{{/* Whether the chart's own issuer signs the tokens: jwt mode, nothing of the operator's. */}}
{{- define "reserve-mesh.bundledIssuer" -}}
{{- with .Values.auth -}}
{{- if and (eq .mode "jwt") .bundledIssuer.enabled (not .issuer) (not .jwksUrl) (not .jwksConfigMap) -}}
true
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The bundled issuer's name (the `iss` of its tokens). */}}
{{- define "reserve-mesh.bundledIssuerName" -}}
{{- printf "reserve-mesh/%s/%s" .Release.Namespace .Release.Name -}}
{{- end -}}

{{/* Replicas a component runs at most (HPA maximum when it autoscales). */}}
{{- define "reserve-mesh.maxReplicas" -}}
{{- if .autoscaling.enabled -}}{{ .autoscaling.maxReplicas }}{{- else -}}{{ .replicas }}{{- end -}}
{{- end -}}

{{/* Replicas a component runs at least. */}}
{{- define "reserve-mesh.minReplicas" -}}
{{- if .autoscaling.enabled -}}{{ .autoscaling.minReplicas }}{{- else -}}{{ .replicas }}{{- end -}}
{{- end -}}

{{/* A container's preStop pause: the native sleep action where the cluster has it on by
default (1.30+; alpha behind a gate in 1.29, absent before), else the image's sleep. */}}
{{- define "reserve-mesh.preStop" -}}
{{- if semverCompare ">=1.30.0-0" .root.Capabilities.KubeVersion.Version -}}
sleep:
  seconds: {{ .seconds }}
{{- else -}}
exec:
  command: ["/bin/sleep", "{{ .seconds }}"]
{{- end -}}
{{- end -}}

{{/* The headless Service of a component (every ready pod's address in DNS). */}}
{{- define "reserve-mesh.headlessName" -}}
{{- printf "%s-headless" (include "reserve-mesh.componentName" (dict "root" .root "component" .component) | trunc 54 | trimSuffix "-") -}}
{{- end -}}

{{/* In-cluster gRPC URL of a component: its headless Service, which the clients resolve to
every replica and balance their calls over. */}}
{{- define "reserve-mesh.url" -}}
{{- printf "http://%s:%v" (include "reserve-mesh.headlessName" (dict "root" .root "component" .component)) (index .root.Values.components .component).port -}}
{{- end -}}

{{/* In-cluster URL of product-svc's internal listener (the lock), over every replica. */}}
{{- define "reserve-mesh.internalUrl" -}}
{{- printf "http://%s:%v" (include "reserve-mesh.headlessName" (dict "root" . "component" "product")) .Values.components.product.internalPort -}}
{{- end -}}

{{/* Checksum of the named templates as rendered (root, files): a pod annotated with it
rolls when any of them changes. */}}
{{- define "reserve-mesh.checksum" -}}
{{- $root := .root -}}
{{- $all := "" -}}
{{- range $file := .files -}}
{{- $all = print $all (include (print $root.Template.BasePath "/" $file) $root) -}}
{{- end -}}
{{- $all | sha256sum -}}
{{- end -}}
