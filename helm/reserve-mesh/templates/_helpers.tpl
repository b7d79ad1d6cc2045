{{/* Common names and labels. */}}

{{- define "reserve-mesh.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Name of one component's objects: <fullname>-<component>. */}}
{{- define "reserve-mesh.componentName" -}}
{{- printf "%s-%s" (include "reserve-mesh.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "reserve-mesh.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/part-of: reserve-mesh
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

{{/* The Secret holding the notice webhook's url and signing secret; empty when none is set. */}}
{{- define "reserve-mesh.webhookSecret" -}}
{{- if .Values.notice.webhookExistingSecret -}}
{{- .Values.notice.webhookExistingSecret -}}
{{- else if .Values.notice.webhookUrl -}}
{{- printf "%s-notice-webhook" (include "reserve-mesh.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "reserve-mesh.databaseSecret" -}}
{{- default (printf "%s-databases" (include "reserve-mesh.fullname" .)) .Values.databases.existingSecret -}}
{{- end -}}

{{/* In-cluster gRPC URL of a component. */}}
{{- define "reserve-mesh.url" -}}
{{- printf "http://%s:%v" (include "reserve-mesh.componentName" (dict "root" .root "component" .component)) (index .root.Values.components .component).port -}}
{{- end -}}

{{/* In-cluster URL of product-svc's internal listener (the lock). */}}
{{- define "reserve-mesh.internalUrl" -}}
{{- printf "http://%s:%v" (include "reserve-mesh.componentName" (dict "root" . "component" "product")) .Values.components.product.internalPort -}}
{{- end -}}
