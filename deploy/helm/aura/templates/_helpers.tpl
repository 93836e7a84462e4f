{{/* Names and labels, after `helm create`. */}}
{{- define "aura.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "aura.fullname" -}}
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

{{/* A component's object name: <fullname>-<component>. */}}
{{- define "aura.componentName" -}}
{{- printf "%s-%s" (include "aura.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "aura.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "aura.labels" -}}
helm.sh/chart: {{ include "aura.chart" . }}
app.kubernetes.io/name: {{ include "aura.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: aura
{{- end }}

{{/* Labels of one component: pass (dict "root" $ "component" "llm"). */}}
{{- define "aura.componentLabels" -}}
{{ include "aura.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "aura.selectorLabels" -}}
app.kubernetes.io/name: {{ include "aura.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "aura.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "aura.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "aura.image" -}}
{{- printf "%s-%s:%s" .root.Values.image.repository .component (default .root.Chart.AppVersion .root.Values.image.tag) }}
{{- end }}

{{- define "aura.secretName" -}}
{{- default (include "aura.fullname" .) .Values.existingSecret }}
{{- end }}

{{/* The URL Twilio calls: set explicitly, or derived from the ingress host. */}}
{{- define "aura.publicBaseUrl" -}}
{{- if .Values.twilio.publicBaseUrl }}
{{- .Values.twilio.publicBaseUrl | trimSuffix "/" }}
{{- else if and .Values.ingress.enabled .Values.ingress.host }}
{{- printf "%s://%s" (ternary "https" "http" .Values.ingress.tls.enabled) .Values.ingress.host }}
{{- end }}
{{- end }}

{{/* An environment variable from the Secret; optional so that unused keys may be absent. */}}
{{- define "aura.secretEnv" -}}
- name: {{ .key }}
  valueFrom:
    secretKeyRef:
      name: {{ include "aura.secretName" .root }}
      key: {{ .key }}
      optional: true
{{- end }}

{{/* Environment every service shares: logging and OpenTelemetry. */}}
{{- define "aura.commonEnv" -}}
- name: LOG_LEVEL
  value: {{ .root.Values.logLevel | quote }}
- name: LOG_FORMAT
  value: {{ .root.Values.logFormat | quote }}
- name: OTEL_SERVICE_NAME
  value: {{ printf "aura-%s" .component | quote }}
{{- with .root.Values.otel }}
{{- if .endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .endpoint | quote }}
- name: OTEL_TRACES_SAMPLER
  value: {{ .sampler | quote }}
{{- if .samplerArg }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ .samplerArg | quote }}
{{- end }}
{{- if .resourceAttributes }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ .resourceAttributes | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* Pod-level settings shared by the three deployments. */}}
{{- define "aura.podSpec" -}}
serviceAccountName: {{ include "aura.serviceAccountName" .root }}
automountServiceAccountToken: false
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* checkov findings the deployments knowingly differ from, each with its reason. */}}
{{- define "aura.checkovSkips" -}}
checkov.io/skip1: CKV_K8S_43=Images are tagged with an immutable git revision; digests are not known when the chart is written.
checkov.io/skip2: CKV_K8S_15=IfNotPresent with immutable tags; Always would make every start depend on the registry.
checkov.io/skip3: CKV_K8S_35=The services read their settings from the environment, as twelve-factor services do; the values come from a Secret, not the manifest.
{{- end }}

{{/* Every port, defined once. The containers listen where these say: each is passed to
the service as its setting (PORT, LLM_PORT, ...), and Services, probes and policies use
the same numbers. */}}
{{- define "aura.ports" -}}
telephony: {http: 8000, metrics: 9466}
llm: {grpc: 50051, metrics: 9464}
memory: {grpc: 50052, metrics: 9465}
{{- end }}

{{/* One port: (dict "component" "llm" "name" "grpc"). */}}
{{- define "aura.port" -}}
{{- index (include "aura.ports" . | fromYaml) .component .name -}}
{{- end }}

{{/* A gRPC probe: kubelet's own, or aura-probe over TLS when the hops use TLS (kubelet's
gRPC probes cannot). (dict "root" $ "component" "llm" "service" "aura.llm.v1.LlmService") */}}
{{- define "aura.grpcProbe" -}}
{{- $port := include "aura.port" (dict "component" .component "name" "grpc") }}
{{- if .root.Values.grpc.tls.enabled }}
exec:
  command:
    - /opt/aura/bin/aura-probe
    - --grpc
    - {{ printf "localhost:%s%s" $port (ternary (printf "/%s" .service) "" (ne .service "")) }}
    - --ca
    - /etc/aura/grpc-tls/ca.crt
{{- else }}
grpc: {port: {{ $port }}{{ with .service }}, service: {{ . }}{{ end }}}
{{- end }}
{{- end }}

{{/* The gRPC hops' guards, for every component: the shared token, reflection, and with
TLS the certificate files (servers) or the CA (telephony). */}}
{{- define "aura.grpcEnv" -}}
{{ include "aura.secretEnv" (dict "root" .root "key" "GRPC_AUTH_TOKEN") }}
- name: GRPC_REFLECTION
  value: {{ .root.Values.grpc.reflection | quote }}
{{- if .root.Values.grpc.tls.enabled }}
- name: GRPC_TLS_CA_FILE
  value: /etc/aura/grpc-tls/ca.crt
{{- if ne .component "telephony" }}
- name: GRPC_TLS_CERT_FILE
  value: /etc/aura/grpc-tls/tls.crt
- name: GRPC_TLS_KEY_FILE
  value: /etc/aura/grpc-tls/tls.key
{{- end }}
{{- end }}
{{- end }}

{{- define "aura.grpcTlsMount" -}}
{{- if .Values.grpc.tls.enabled }}
- name: grpc-tls
  mountPath: /etc/aura/grpc-tls
  readOnly: true
{{- end }}
{{- end }}

{{- define "aura.grpcTlsVolume" -}}
{{- if .Values.grpc.tls.enabled }}
- name: grpc-tls
  secret:
    secretName: {{ required "grpc.tls.secretName is required with grpc.tls.enabled" .Values.grpc.tls.secretName }}
{{- end }}
{{- end }}
