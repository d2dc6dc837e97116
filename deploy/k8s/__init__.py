"""Kustomize manifests for Kubernetes and their offline validator (python -m deploy.k8s.validate)."""
