#!/usr/bin/env bash
# magnum-cluster.sh: magnum-cluster's benchmarks, each with a baseline
# measured in the same run, printed as figures and ratios.
#   spec parsing        LoadSpec (strict, positions, validation) vs plain yaml.v3 decoding
#   no-op ensure        a converged rerun vs authenticate + one list (time and Magnum requests)
#   kubeconfig          key + CSR + signing + CA + atomic write vs RSA 2048 key generation alone
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
case ${1:-} in -h|--help) usage ;; esac
cd "$SLIPWAY_ROOT"
out=$(go test -run '^$' -bench 'LoadSpec|EnsureNoop|AuthListBaseline|Kubeconfig|RSAKeyBaseline' -benchtime "${BENCHTIME:-2s}" -count 1 ./internal/magnum/)
echo "$out" | grep -E '^Benchmark'
echo "$out" | awk '
  /^Benchmark/ { name=$1; sub(/-[0-9]+$/, "", name); ns[name]=$3; for (i=4;i<=NF;i++) if ($(i+1)=="requests/op") req[name]=$i }
  END {
    printf "\n%-28s %12s %12s %8s\n", "case", "ns/op", "baseline", "ratio"
    row("spec parsing", "BenchmarkLoadSpec", "BenchmarkLoadSpecBaseline")
    row("no-op ensure", "BenchmarkEnsureNoop", "BenchmarkAuthListBaseline")
    row("kubeconfig", "BenchmarkKubeconfig", "BenchmarkRSAKeyBaseline")
    printf "no-op ensure: %s Magnum requests per run (baseline %s)\n", req["BenchmarkEnsureNoop"], req["BenchmarkAuthListBaseline"]
  }
  function row(label, a, b) { printf "%-28s %12d %12d %7.2fx\n", label, ns[a], ns[b], ns[a]/ns[b] }'
