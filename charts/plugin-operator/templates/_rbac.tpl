{{/*
The rules the operator needs to reconcile Plugins, and nothing more. They are the same
for the ClusterRole (every namespace) and for each Role (watchNamespaces). docs/helm.md
explains each rule.
*/}}
{{- define "plugin-operator.reconcileRules" -}}
# Plugins are watched (list + watch); the operator never writes their spec.
- apiGroups: ["plugins.chat.dev"]
  resources: ["plugins"]
  verbs: ["list", "watch"]
# Status is written with server-side apply (a patch on the status subresource).
- apiGroups: ["plugins.chat.dev"]
  resources: ["plugins/status"]
  verbs: ["patch"]
# Children carry a controller owner reference with blockOwnerDeletion; clusters that
# enable OwnerReferencesPermissionEnforcement require update on the owner's finalizers.
- apiGroups: ["plugins.chat.dev"]
  resources: ["plugins/finalizers"]
  verbs: ["update"]
# Children: watched by label, written with server-side apply. An apply that creates
# the object is authorized as create as well as patch. Garbage collection deletes them.
- apiGroups: [""]
  resources: ["serviceaccounts", "configmaps", "services"]
  verbs: ["list", "watch", "create", "patch"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["list", "watch", "create", "patch"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["list", "watch", "create", "patch"]
# A PluginPolicy may allow ConfigMaps by label: the operator reads the labels (metadata
# only) of those a Plugin's env names. Secrets are allowed by name only: no Secret access.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get"]
# Plugin pods are watched for status (ImagePullBackOff, OOMKilled, ...), never written.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
# Events on Plugins (kube-runtime's Recorder uses events.k8s.io/v1; repeats are patched).
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}
