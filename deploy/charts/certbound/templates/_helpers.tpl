{{/*
Name prefix of every object: the release name when it already says
certbound (the default release name "certbound" gives the same names as
config/default's namePrefix), else "<release>-certbound".
*/}}
{{- define "certbound.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/*
Labels of an object: its own (extra) over commonLabels over the labels
every object carries. Call with (dict "ctx" $ "extra" (dict ...)).
*/}}
{{- define "certbound.labels" -}}
{{- $ctx := .ctx -}}
{{- $standard := dict
  "app.kubernetes.io/part-of" "certbound"
  "app.kubernetes.io/managed-by" $ctx.Release.Service
  "app.kubernetes.io/instance" $ctx.Release.Name
  "app.kubernetes.io/version" ($ctx.Chart.AppVersion | toString)
  "helm.sh/chart" (printf "%s-%s" $ctx.Chart.Name $ctx.Chart.Version | replace "+" "_")
-}}
{{- toYaml (merge (dict) (.extra | default (dict)) $ctx.Values.commonLabels $standard) -}}
{{- end -}}

{{/* Labels that select the manager pods (as config/manager). */}}
{{- define "certbound.managerSelectorLabels" -}}
app.kubernetes.io/name: certbound
app.kubernetes.io/component: manager
{{- end -}}

{{/* The manager image, by digest when one is given. */}}
{{- define "certbound.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | toString) -}}
{{- end -}}
{{- end -}}

{{- define "certbound.servingCertificateName" -}}
{{- include "certbound.fullname" . }}-serving-cert
{{- end -}}

{{- define "certbound.webhookServiceName" -}}
{{- include "certbound.fullname" . }}-webhook-service
{{- end -}}

{{- define "certbound.metricsServiceName" -}}
{{- include "certbound.fullname" . }}-manager-metrics
{{- end -}}
