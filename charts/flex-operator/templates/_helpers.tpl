{{/* The release's base name for every object. */}}
{{- define "flex-operator.fullname" -}}
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

{{- define "flex-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "flex-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "flex-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ include "flex-operator.imageTag" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: flex-operator
{{- end -}}

{{/* Labels that select the operator's Pods. */}}
{{- define "flex-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "flex-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "flex-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "flex-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "flex-operator.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag -}}
{{- end -}}

{{/* The operator's rules, generated from the code's kubebuilder markers (config/rbac/role.yaml,
copied here by `make manifests`). */}}
{{- define "flex-operator.managerRules" -}}
{{- (.Files.Get "files/manager-role.yaml" | fromYaml).rules | toYaml -}}
{{- end -}}

{{/* Refuses values that would install an operator Twilio cannot reach or whose signatures all
fail; included by the Deployment, so helm install, upgrade, template and lint all check them. */}}
{{- define "flex-operator.validate" -}}
{{- $url := .Values.webhook.publicURL -}}
{{- if not $url }}
{{- fail "webhook.publicURL is required: the URL at which Twilio reaches the webhook server, e.g. https://flex-operator.example.com" }}
{{- end }}
{{- $u := urlParse $url -}}
{{- if and (eq $u.scheme "http") (not .Values.webhook.allowInsecurePublicURL) }}
{{- fail (printf "webhook.publicURL %s is http: Flex pages are https, so browsers block the plugin's calls to it (mixed content), and Twilio's callbacks would cross the internet unencrypted. Use https, or set webhook.allowInsecurePublicURL=true for local development only" $url) }}
{{- end }}
{{- if .Values.ingress.enabled }}
{{- if not .Values.ingress.host }}
{{- fail "ingress.host is required with ingress.enabled (the host of webhook.publicURL)" }}
{{- end }}
{{- if ne (lower .Values.ingress.host) (lower $u.hostname) }}
{{- fail (printf "ingress.host %s is not the host of webhook.publicURL %s: Twilio signs the URL it calls, so every signature would fail" .Values.ingress.host $url) }}
{{- end }}
{{- if and (eq $u.scheme "https") (not (or .Values.ingress.tls.secretName .Values.ingress.tls.clusterIssuer)) }}
{{- fail (printf "webhook.publicURL %s is https but the Ingress has no TLS: set ingress.tls.clusterIssuer (cert-manager) or ingress.tls.secretName" $url) }}
{{- end }}
{{- end }}
{{- if and .Values.podDisruptionBudget.enabled (gt (int .Values.replicaCount) 1) }}
{{- with .Values.podDisruptionBudget.minAvailable }}
{{- if and (not (kindIs "string" .)) (ge (int .) (int $.Values.replicaCount)) }}
{{- fail (printf "podDisruptionBudget.minAvailable %v leaves no replica to evict out of %v: every node drain would block" . $.Values.replicaCount) }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The metrics endpoint's certificate from cert-manager (metrics.certManager): its Secret, the
directory the manager reads it from, and the name the certificate is for. */}}
{{- define "flex-operator.metricsCertSecret" -}}
{{- include "flex-operator.fullname" . }}-metrics-cert
{{- end -}}
{{- define "flex-operator.metricsCertDir" -}}
/tmp/k8s-metrics-server/metrics-certs
{{- end -}}
{{- define "flex-operator.metricsServerName" -}}
{{- include "flex-operator.fullname" . }}-metrics.{{ .Release.Namespace }}.svc
{{- end -}}
