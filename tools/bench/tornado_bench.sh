#!/usr/bin/env bash
# TornadoVM kernel benchmarks (docs/tornado.md): tools/bench/tornado_bench.sh [kernels|sampling|roofline|all]
#   [--seconds S] [--steps N] [--batch B] [--model DIR|dit-s2]
# Needs TORNADOVM_HOME = a TornadoVM SDK (the folder holding tornado-argfile); runs on its default device.
# Compiles the kernels-tornado module (tornado profile) and runs io.diffquant.kernels.tornado.TornadoBench.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
: "${TORNADOVM_HOME:?set TORNADOVM_HOME to a TornadoVM SDK (the folder holding tornado-argfile)}"
[ -f "$TORNADOVM_HOME/tornado-argfile" ] || { echo "tornado_bench: $TORNADOVM_HOME/tornado-argfile not found" >&2; exit 1; }
JAVA_HOME=$("$root/bin/find-jdk25") || exit 1
export JAVA_HOME
cp_file="$root/kernels-tornado/target/bench.classpath"
cd "$root"
MAVEN_OPTS=${MAVEN_OPTS:--Xmx1g} ./mvnw -q -B -pl kernels-tornado -am test-compile dependency:build-classpath \
  -Dmdep.outputFile="$cp_file" -Dmdep.includeScope=test >&2
exec "$JAVA_HOME/bin/java" --enable-native-access=ALL-UNNAMED --sun-misc-unsafe-memory-access=allow -Xss4m \
  "${BENCH_HEAP:--Xmx6g}" @"$TORNADOVM_HOME/tornado-argfile" \
  -cp "kernels-tornado/target/test-classes:kernels-tornado/target/classes:$(cat "$cp_file")" \
  io.diffquant.kernels.tornado.TornadoBench "$@"
