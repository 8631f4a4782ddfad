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
The port routers reach nodes at: the mesh port (mutual TLS), or the client port with mesh.insecure
(no mesh port then).
*/}}
{{- define "lanai.nodes.port" -}}
{{- if .Values.mesh.insecure }}{{ int .Values.ports.grpc }}{{ else }}{{ int .Values.ports.mesh }}{{ end }}
{{- end }}

{{/*
The name the router resolves: the headless Service's FQDN and the nodes' mesh port.
*/}}
{{- define "lanai.nodes.dnsTarget" -}}
{{- printf "%s.%s.svc.%s:%s" (include "lanai.nodes.headlessName" .) .Release.Namespace (trimSuffix "." .Values.clusterDomain) (include "lanai.nodes.port" .) }}
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
The grpc.health.v1 check of compose.yaml's healthcheck, over TLS: it trusts the mesh CA in
$LANAI_HOME/mesh and connects as localhost, a name every node certificate carries. Health needs no
API key. The address is its last argument.
*/}}
{{- define "lanai.healthScript" -}}
import os, sys, grpc; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; ca = open(os.path.join(os.environ["LANAI_HOME"], "mesh", "ca.crt"), "rb").read(); c = grpc.secure_channel(sys.argv[1], grpc.ssl_channel_credentials(ca), [("grpc.enable_http_proxy", 0)]); r = g.HealthStub(c).Check(h.HealthCheckRequest(), timeout=3); sys.exit(r.status != h.HealthCheckResponse.SERVING)
{{- end }}

{{/*
How each probe checks a lanai container: grpc.health.v1 on the client port. With mesh trust that
port speaks TLS, which Kubernetes' native gRPC probe cannot (it dials plaintext), so an exec probe
runs the health check over TLS inside the container. Not a tcpSocket probe: an open port says
nothing about NOT_SERVING, and a draining pod must fail readiness to leave the headless Service's
records. With mesh.insecure: the native gRPC probe.
*/}}
{{- define "lanai.probeAction" -}}
{{- if .Values.mesh.insecure -}}
grpc:
  port: {{ .Values.ports.grpc }}
{{- else -}}
exec:
  command:
    - python
    - -c
    - {{ include "lanai.healthScript" . | quote }}
    - {{ printf "localhost:%d" (int .Values.ports.grpc) | quote }}
{{- end }}
{{- end }}

{{/*
The three probes of a lanai container. Call with the root context.
*/}}
{{- define "lanai.probes" -}}
startupProbe:
  {{- include "lanai.probeAction" . | nindent 2 }}
  {{- toYaml .Values.probes.startup | nindent 2 }}
readinessProbe:
  {{- include "lanai.probeAction" . | nindent 2 }}
  {{- toYaml .Values.probes.readiness | nindent 2 }}
livenessProbe:
  {{- include "lanai.probeAction" . | nindent 2 }}
  {{- toYaml .Values.probes.liveness | nindent 2 }}
{{- end }}

{{/*
Container ports of a lanai container.
*/}}
{{- define "lanai.containerPorts" -}}
{{- $v := .ctx.Values -}}
ports:
  - name: grpc
    containerPort: {{ $v.ports.grpc }}
    protocol: TCP
  {{- if not $v.mesh.insecure }}
  - name: mesh
    containerPort: {{ $v.ports.mesh }}
    protocol: TCP
  {{- end }}
  - name: metrics
    containerPort: {{ $v.ports.metrics }}
    protocol: TCP
  {{- if and .doors $v.doors.http.enabled }}
  - name: http
    containerPort: {{ $v.ports.http }}
    protocol: TCP
  {{- end }}
  {{- if and .doors $v.doors.wyoming.enabled }}
  - name: wyoming
    containerPort: {{ $v.ports.wyoming }}
    protocol: TCP
  {{- end }}
{{- end }}

{{/*
The Secret holding the mesh CA (tls.crt, tls.key): required unless mesh.insecure.
*/}}
{{- define "lanai.mesh.caSecret" -}}
{{- if not .Values.mesh.caSecret }}
{{- fail "mesh.caSecret is required: the name of a Secret holding the mesh CA as tls.crt and tls.key (a cert-manager CA Certificate's secretName, or `kubectl create secret tls NAME --cert ca.crt --key ca.key` from `lanai mesh init`; see the chart's README), or set mesh.insecure=true to run a plaintext lab mesh without one" }}
{{- end }}
{{- .Values.mesh.caSecret }}
{{- end }}

{{/*
The init container of every lanai pod (mesh trust only): it copies the CA from the Secret into the
pod's mesh directory, where lanai issues the pod its own node certificate at start. The emptyDir's
root belongs to root, and lanai keeps its mesh directory 0700 (it chmods it), so the files go into a
subdirectory the pod's user creates, mounted by the lanai container at $LANAI_HOME/mesh (subPath).
Call with (dict "ctx" $ "image" <override or nil>).
*/}}
{{- define "lanai.mesh.initContainers" -}}
{{- $ctx := .ctx -}}
{{- if not $ctx.Values.mesh.insecure -}}
initContainers:
  - name: mesh-ca
    image: {{ include "lanai.image" . | quote }}
    imagePullPolicy: {{ include "lanai.imagePullPolicy" . }}
    {{- with $ctx.Values.securityContext }}
    securityContext:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    command:
      - sh
      - -c
      - >-
        set -eu;
        install -d -m 0700 /mesh/files;
        install -m 0600 /mesh-ca/tls.crt /mesh/files/ca.crt;
        install -m 0600 /mesh-ca/tls.key /mesh/files/ca.key
        {{- if $ctx.Values.mesh.policyConfigMap }};
        install -m 0600 /mesh-policy/policy.json /mesh/files/policy.json
        {{- end }}
    {{- with $ctx.Values.mesh.init.resources }}
    resources:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    volumeMounts:
      - name: mesh
        mountPath: /mesh
      - name: mesh-ca
        mountPath: /mesh-ca
        readOnly: true
      {{- if $ctx.Values.mesh.policyConfigMap }}
      - name: mesh-policy
        mountPath: /mesh-policy
        readOnly: true
      {{- end }}
{{- end }}
{{- end }}

{{/*
Volume mounts of a lanai container: /tmp, and the mesh directory.
*/}}
{{- define "lanai.volumeMounts" -}}
volumeMounts:
  - name: tmp
    mountPath: /tmp
  {{- if not .Values.mesh.insecure }}
  - name: mesh
    mountPath: {{ printf "%s/mesh" (trimSuffix "/" .Values.lanaiHome) }}
    subPath: files
  {{- end }}
{{- end }}

{{/*
Volumes of a lanai pod. The CA Secret is mounted by the init container only, readable through the
pod's fsGroup (podSecurityContext), never by the lanai container (which gets copies, 0600).
*/}}
{{- define "lanai.volumes" -}}
volumes:
  - name: tmp
    emptyDir: {}
  {{- if not .Values.mesh.insecure }}
  - name: mesh
    emptyDir: {}
  - name: mesh-ca
    secret:
      secretName: {{ include "lanai.mesh.caSecret" . }}
      defaultMode: 0440
      items:
        - key: tls.crt
          path: tls.crt
        - key: tls.key
          path: tls.key
  {{- with .Values.mesh.policyConfigMap }}
  - name: mesh-policy
    configMap:
      name: {{ . }}
      items:
        - key: policy.json
          path: policy.json
  {{- end }}
  {{- end }}
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
Flags every lanai process gets: listen on all pod addresses, the mesh port (or --insecure), metrics
on, node id = pod name.
*/}}
{{- define "lanai.commonArgs" -}}
{{- if .Values.mesh.insecure -}}
- --insecure
{{ end -}}
- --host
- 0.0.0.0
- --port
- {{ .Values.ports.grpc | quote }}
{{- if not .Values.mesh.insecure }}
- --mesh-port
- {{ .Values.ports.mesh | quote }}
{{- end }}
- --metrics-host
- 0.0.0.0
- --metrics-port
- {{ .Values.ports.metrics | quote }}
- --node-id
- $(POD_NAME)
{{- end }}

{{/*
The KubeRay RayCluster's name, and the Ray Client address of its head Service (KubeRay names it
<cluster>-head-svc), which `lanai ray up` and the router's ray discovery dial.
*/}}
{{- define "lanai.ray.fullname" -}}
{{- printf "%s-ray" (include "lanai.fullname" .) | trunc 54 | trimSuffix "-" }}
{{- end }}

{{- define "lanai.ray.address" -}}
{{- printf "ray://%s-head-svc.%s.svc.%s:10001" (include "lanai.ray.fullname" .) .Release.Namespace (trimSuffix "." .Values.clusterDomain) }}
{{- end }}

{{/*
The pod template of a Ray head or worker: the lanai image with Ray, the mesh CA copied in as in
every lanai pod (actors on a machine holding it issue themselves certificates), writable homes for
the actors under $LANAI_HOME/ray, /dev/shm for Ray's object store, and Ray's usage statistics off.
Call with (dict "ctx" $ "name" "ray-head"|"ray-worker" "resources" ... "nodeSelector" ... "tolerations" ...).
*/}}
{{- define "lanai.ray.podTemplate" -}}
{{- $ctx := .ctx -}}
metadata:
  labels:
    {{- include "lanai.labels" $ctx | nindent 4 }}
    app.kubernetes.io/component: ray
spec:
  serviceAccountName: {{ include "lanai.serviceAccountName" $ctx }}
  automountServiceAccountToken: {{ $ctx.Values.serviceAccount.automount }}
  {{- with $ctx.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $ctx.Values.podSecurityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with include "lanai.mesh.initContainers" (dict "ctx" $ctx "image" $ctx.Values.kuberay.image) }}
  {{- . | nindent 2 }}
  {{- end }}
  containers:
    - name: {{ .name }}
      image: {{ include "lanai.image" (dict "ctx" $ctx "image" $ctx.Values.kuberay.image) | quote }}
      imagePullPolicy: {{ include "lanai.imagePullPolicy" (dict "ctx" $ctx "image" $ctx.Values.kuberay.image) }}
      {{- with $ctx.Values.securityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      env:
        {{- include "lanai.env" $ctx | nindent 8 }}
        - name: RAY_USAGE_STATS_ENABLED
          value: "0"
      {{- with .resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        - name: ray-homes
          mountPath: {{ printf "%s/ray" (trimSuffix "/" $ctx.Values.lanaiHome) }}
        - name: dshm
          mountPath: /dev/shm
        {{- if not $ctx.Values.mesh.insecure }}
        - name: mesh
          mountPath: {{ printf "%s/mesh" (trimSuffix "/" $ctx.Values.lanaiHome) }}
          subPath: files
        {{- end }}
  {{- include "lanai.volumes" $ctx | nindent 2 }}
    - name: ray-homes
      emptyDir: {}
    - name: dshm
      emptyDir:
        medium: Memory
  {{- with .nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
