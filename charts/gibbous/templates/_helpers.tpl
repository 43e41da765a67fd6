{{/*
Names: `<release>` when the release name already says gibbous (`helm install gibbous`
gives gibbous-webhook, gibbous-autoscaler, ...: the names of manifests/base), else
`<release>-gibbous` (`elotl-luna` gives elotl-luna-gibbous-webhook), so two releases
in one cluster never share a cluster-scoped name.
*/}}
{{- define "gibbous.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains "gibbous" .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-gibbous" .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "gibbous.labels" -}}
app.kubernetes.io/part-of: gibbous
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{/* Selector labels of one component: (list $ "webhook"). */}}
{{- define "gibbous.selector" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "gibbous.fullname" $root }}-{{ index . 1 }}
{{- end -}}

{{- define "gibbous.image" -}}
{{- if not .Values.image.repository -}}
{{- fail "image.repository is not set: Gibbous publishes no image. Build it with scripts/build-image, push it to a registry your cluster can pull from, and set image.repository (and image.tag) to it: docs/install/image.md" -}}
{{- end -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ $tag }}
{{- end -}}
{{- end -}}

{{/* The webhook configurations' name: webhookConfigPrefix sorts them after VPA's. */}}
{{- define "gibbous.webhookConfigName" -}}
{{- printf "%s%s" .Values.webhookConfigPrefix (include "gibbous.fullname" .) -}}
{{- end -}}

{{/* `labels` (Luna's "key=value" or "key1=value1,key2=value2", any one of which marks a
pod) as a JSON map of each key to its values: {"elotl-luna": ["true"]}. */}}
{{- define "gibbous.managedLabels" -}}
{{- $byKey := dict -}}
{{- range $item := splitList "," (toString .Values.labels) -}}
{{- $item = trim $item -}}
{{- if $item -}}
{{- $parts := splitn "=" 2 $item -}}
{{- $key := trim (toString $parts._0) -}}
{{- $value := trim (toString $parts._1) -}}
{{- if not (and $key $value) -}}
{{- fail (printf "labels: expected key=value or key1=value1,key2=value2, got %q" (toString $.Values.labels)) -}}
{{- end -}}
{{- $values := get $byKey $key | default list -}}
{{- if not (has $value $values) -}}
{{- $_ := set $byKey $key (append $values $value) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if not $byKey -}}
{{- fail (printf "labels: expected key=value, got %q" (toString .Values.labels)) -}}
{{- end -}}
{{- toJson $byKey -}}
{{- end -}}

{{/* The object selector of one label key and its values: (list $key $values). One value
is matchLabels, as kubectl and manifests/base write it; several are `In`. */}}
{{- define "gibbous.labelObjectSelector" -}}
{{- $key := index . 0 -}}
{{- $values := index . 1 -}}
objectSelector:
{{- if eq (len $values) 1 }}
  matchLabels:
    {{ $key }}: {{ first $values | quote }}
{{- else }}
  matchExpressions:
    - {key: {{ $key }}, operator: In, values: [{{ range $i, $v := $values }}{{ if $i }}, {{ end }}{{ $v | quote }}{{ end }}]}
{{- end }}
{{- end -}}

{{/* The cluster's version without a vendor suffix: v1.32.3-eks-4b2b3a1 -> 1.32.3. */}}
{{- define "gibbous.kubeVersion" -}}
{{- regexFind "^[0-9]+\\.[0-9]+\\.[0-9]+" (trimPrefix "v" .Capabilities.KubeVersion.Version) -}}
{{- end -}}

{{/* kube-scheduler's configuration API: v1 from 1.25, v1beta3 in 1.23-1.24, v1beta2
in 1.22, v1beta1 in 1.20-1.21 (each the newest the release serves). */}}
{{- define "gibbous.schedulerConfigVersion" -}}
{{- $v := include "gibbous.kubeVersion" . -}}
{{- if semverCompare ">=1.25.0-0" $v -}}v1
{{- else if semverCompare ">=1.23.0-0" $v -}}v1beta3
{{- else if semverCompare ">=1.22.0-0" $v -}}v1beta2
{{- else -}}v1beta1
{{- end -}}
{{- end -}}

{{- define "gibbous.pdbApiVersion" -}}
{{- if semverCompare ">=1.21.0-0" (include "gibbous.kubeVersion" .) -}}policy/v1{{- else -}}policy/v1beta1{{- end -}}
{{- end -}}

{{- define "gibbous.provider" -}}
{{- .Values.autoscaler.provider | default .Values.cloudProvider -}}
{{- end -}}

{{/* Pod-level settings every Gibbous pod shares. */}}
{{- define "gibbous.podCommon" -}}
{{- $root := index . 0 -}}
{{- $component := index . 1 -}}
{{- with $root.Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- $secrets := $root.Values.imagePullSecrets -}}
{{- if or $root.Values.imagePullSecretName $secrets }}
imagePullSecrets:
{{- with $root.Values.imagePullSecretName }}
  - name: {{ . }}
{{- end }}
{{- range $secrets }}
  - {{ toYaml . | nindent 4 | trim }}
{{- end }}
{{- end }}
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  # Secret volumes are mode 0440 (owner and group): the group lets the non-root user read them.
  fsGroup: 65532
  seccompProfile:
    type: RuntimeDefault
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- include "gibbous.selector" (list $root $component) | nindent 14 }}
{{- with $root.Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "gibbous.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: ["ALL"]
{{- end -}}

{{- define "gibbous.pdb" -}}
{{- $root := index . 0 -}}
{{- $component := index . 1 -}}
apiVersion: {{ include "gibbous.pdbApiVersion" $root }}
kind: PodDisruptionBudget
metadata:
  name: {{ include "gibbous.fullname" $root }}-{{ $component }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "gibbous.labels" $root | nindent 4 }}
spec:
  minAvailable: 1
  selector:
    matchLabels:
      {{- include "gibbous.selector" (list $root $component) | nindent 6 }}
{{- end -}}

{{/* Egress of the pods that talk only to the API server: the API server (its address is
the control plane's, which the chart cannot know, so by port) and DNS. */}}
{{- define "gibbous.apiServerAndDNSEgress" -}}
- ports:
    {{- range .Values.networkPolicy.apiServerPorts }}
    - {port: {{ . }}, protocol: TCP}
    {{- end }}
- ports:
    - {port: 53, protocol: UDP}
    - {port: 53, protocol: TCP}
{{- end -}}
