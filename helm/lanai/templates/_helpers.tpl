{{/*
Chart name (app.kubernetes.io/name).
*/}}
{{- define "lanai.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: the prefix of every resource name. Truncated so that "<fullname>-<suffix>" names stay
valid DNS labels.
*/}}
{{- define "lanai.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
helm.sh/chart label value.
*/}}
{{- define "lanai.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels shared by every workload of the release.
*/}}
{{- define "lanai.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lanai.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels of every resource.
*/}}
{{- define "lanai.labels" -}}
helm.sh/chart: {{ include "lanai.chart" . }}
{{ include "lanai.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: lanai
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels of the router pods. Deployment selectors are immutable: keep these stable.
*/}}
{{- define "lanai.router.selectorLabels" -}}
{{ include "lanai.selectorLabels" . }}
app.kubernetes.io/component: router
{{- end }}

{{/*
Selector labels of every node pod, all groups (the headless Service selects these).
*/}}
{{- define "lanai.node.selectorLabels" -}}
{{ include "lanai.selectorLabels" . }}
app.kubernetes.io/component: node
{{- end }}

{{/*
Selector labels of one node group's pods. Call with (dict "ctx" $ "group" "<name>").
*/}}
{{- define "lanai.nodeGroup.selectorLabels" -}}
{{ include "lanai.node.selectorLabels" .ctx }}
lanai/node-group: {{ .group }}
{{- end }}

{{/*
Names.
*/}}
{{- define "lanai.router.fullname" -}}
{{- printf "%s-router" (include "lanai.fullname" .) }}
{{- end }}

{{- define "lanai.nodes.headlessName" -}}
{{- printf "%s-nodes" (include "lanai.fullname" .) }}
{{- end }}

{{/*
The name the router resolves: the headless Service's FQDN and the nodes' gRPC port.
*/}}
{{- define "lanai.nodes.dnsTarget" -}}
{{- printf "%s.%s.svc.%s:%d" (include "lanai.nodes.headlessName" .) .Release.Namespace (trimSuffix "." .Values.clusterDomain) (int .Values.ports.grpc) }}
{{- end }}

{{- define "lanai.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "lanai.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image reference. Call with (dict "ctx" $ "image" <override or nil>): empty override keys fall back
to the top-level image, and the tag to the chart's appVersion.
*/}}
{{- define "lanai.image" -}}
{{- $override := .image | default dict }}
{{- $repository := $override.repository | default .ctx.Values.image.repository }}
{{- $tag := $override.tag | default .ctx.Values.image.tag | default .ctx.Chart.AppVersion }}
{{- printf "%s:%s" $repository (toString $tag) }}
{{- end }}

{{- define "lanai.imagePullPolicy" -}}
{{- $override := .image | default dict }}
{{- $override.pullPolicy | default .ctx.Values.image.pullPolicy }}
{{- end }}

{{/*
terminationGracePeriodSeconds for a `--grace` value: the grace plus 15 s for the process to exit.
*/}}
{{- define "lanai.terminationGracePeriod" -}}
{{- add (ceil . | int) 15 }}
{{- end }}

{{/*
The three gRPC probes of a lanai container. Call with the root context.
*/}}
{{- define "lanai.probes" -}}
startupProbe:
  grpc:
    port: {{ .Values.ports.grpc }}
  {{- toYaml .Values.probes.startup | nindent 2 }}
readinessProbe:
  grpc:
    port: {{ .Values.ports.grpc }}
  {{- toYaml .Values.probes.readiness | nindent 2 }}
livenessProbe:
  grpc:
    port: {{ .Values.ports.grpc }}
  {{- toYaml .Values.probes.liveness | nindent 2 }}
{{- end }}

{{/*
Container ports of a lanai container.
*/}}
{{- define "lanai.containerPorts" -}}
ports:
  - name: grpc
    containerPort: {{ .Values.ports.grpc }}
    protocol: TCP
  - name: metrics
    containerPort: {{ .Values.ports.metrics }}
    protocol: TCP
{{- end }}

{{/*
Environment of every lanai container: LANAI_HOME, the pod name (the node id) and a writable HOME.
*/}}
{{- define "lanai.env" -}}
- name: LANAI_HOME
  value: {{ .Values.lanaiHome | quote }}
- name: HOME
  value: /tmp
- name: PYTHONUNBUFFERED
  value: "1"
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- end }}

{{/*
Flags every lanai process gets: listen on all pod addresses, metrics on, node id = pod name.
*/}}
{{- define "lanai.commonArgs" -}}
{{- /* Plaintext between pods for now: mesh certificates from a Secret are not wired into the chart yet. */}}
- --insecure
- --host
- 0.0.0.0
- --port
- {{ .Values.ports.grpc | quote }}
- --metrics-host
- 0.0.0.0
- --metrics-port
- {{ .Values.ports.metrics | quote }}
- --node-id
- $(POD_NAME)
{{- end }}
