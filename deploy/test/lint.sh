#!/usr/bin/env bash
# Checks deploy/ without a cluster or a network: yamllint on the Kubernetes manifests,
# kubernetes-validate (PyPI; ships the Kubernetes JSON schemas, so it runs offline) against
# a fixed Kubernetes version in strict mode (unknown fields fail), and `haproxy -c` on the
# load balancer's config. The Dockerfile is not built (no Docker on these machines).
set -euo pipefail
cd "$(dirname "$0")/.."
K8S_VERSION=1.31.0
yamllint -s -c .yamllint.yaml k8s/
python3 -m kubernetes_validate --strict --kubernetes-version "$K8S_VERSION" k8s/*.yaml
CAIRN_LB_BIND=127.0.0.1:8080 CAIRN_REPLICA_1=127.0.0.1:8081 CAIRN_REPLICA_2=127.0.0.1:8082 CAIRN_REPLICA_3=127.0.0.1:8083 \
  CAIRN_ERRORS="$PWD/haproxy/errors" haproxy -c -q -f haproxy/haproxy.cfg
echo "deploy/: manifests lint and validate (Kubernetes $K8S_VERSION, strict), haproxy.cfg is valid"
