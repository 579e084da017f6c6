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
# the object is authorized as create as well as patch. A child changed by someone else
# is read and replaced (get, update). Garbage collection deletes them.
- apiGroups: [""]
  resources: ["serviceaccounts", "configmaps", "services"]
  verbs: ["get", "list", "watch", "create", "patch", "update"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "update"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "list", "watch", "create", "patch", "update"]
# Plugin pods are watched for status (ImagePullBackOff, OOMKilled, ...), never written.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
# Events on Plugins (kube-runtime's Recorder uses events.k8s.io/v1; repeats are patched).
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}
