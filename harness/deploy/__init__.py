"""Deployment files (docker-compose.yml, ops/k8s/) checked against crackq's CLI and settings."""
