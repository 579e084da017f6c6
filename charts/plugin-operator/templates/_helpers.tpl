{{/* Names, labels and derived settings shared by the templates. */}}

{{- define "plugin-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "plugin-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "plugin-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "plugin-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The chart's helm test pod: not the operator's selector labels, so no ReplicaSet adopts it. */}}
{{- define "plugin-operator.testLabels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: helm-test
{{- end -}}

{{- define "plugin-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "plugin-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: plugin-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "plugin-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "plugin-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "plugin-operator.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/* "true" when the operator must hold a Lease: asked for, or more than one replica. */}}
{{- define "plugin-operator.leaderElect" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicas) 1) -}}true{{- end -}}
{{- end -}}

{{/* monitoring.selector (key=value,...) as YAML matchLabels; empty when it is empty. */}}
{{- define "plugin-operator.monitoringLabels" -}}
{{- range $term := splitList "," .Values.monitoring.selector }}
{{- $pair := splitn "=" 2 (trim $term) }}
{{- if $pair._0 }}
{{ $pair._0 }}: {{ $pair._1 | quote }}
{{- end }}
{{- end }}
{{- end -}}
