"""Deployment artefacts of the platform: container images and Kubernetes manifests."""
