{{/* The release's base name: the release name, cut to fit object names. */}}
{{- define "sekisho.fullname" -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{/* The controller's Deployment, Service, ServiceAccount and RBAC names. */}}
{{- define "sekisho.controllerName" -}}
{{- printf "%s-controller" (include "sekisho.fullname" .) -}}
{{- end -}}

{{- define "sekisho.selectorLabels" -}}
app.kubernetes.io/name: sekisho
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{- define "sekisho.labels" -}}
{{ include "sekisho.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: sekisho
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The address proxies dial for xDS: this release's controller Service. */}}
{{- define "sekisho.xdsAddress" -}}
{{- printf "%s.%s.svc:%d" (include "sekisho.controllerName" .) .Release.Namespace (int .Values.xds.port) -}}
{{- end -}}
