#!/usr/bin/env bash
# Idle cost of N pods on one agent: CPU seconds used by containerd and the agent over 30 s.
set -euo pipefail
BIN=$1; N=${2:-30}; D=${SKIFF_MEASURE_DIR:-/tmp/skiff-idle-measure}
$BIN local down --dir $D >/dev/null 2>&1 || true
$BIN local up --dir $D --servers 3 --agents 1 >/dev/null
export KUBECONFIG=$D/kubeconfig
kubectl create deployment sleepers --image=busybox --replicas=$N -- sleep 3600 >/dev/null
for i in $(seq 1 120); do
  r=$(kubectl get pods --no-headers 2>/dev/null | grep -c Running || true)
  [ "$r" -ge "$N" ] && break; sleep 1
done
sleep 15
cpid=$(cat $D/agent-1/containerd/containerd.pid)
apid=$(python3 -c "import json;print(json.load(open('$D/cluster.json'))['agents'][0]['pid'])")
ticks() { awk '{print $14+$15}' /proc/$1/stat; }
c0=$(ticks $cpid); a0=$(ticks $apid); sleep 30; c1=$(ticks $cpid); a1=$(ticks $apid)
hz=$(getconf CLK_TCK)
echo "pods=$r containerd_cpu_s=$(echo "scale=2; ($c1-$c0)/$hz" | bc) agent_cpu_s=$(echo "scale=2; ($a1-$a0)/$hz" | bc) over 30 s"
$BIN local down --dir $D >/dev/null
