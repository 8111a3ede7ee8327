#!/usr/bin/env bash
# Fetch Apache Cassandra (org.apache.cassandra:cassandra-all) and its runtime dependencies from Maven
# Central into a cache keyed by version, for the lab's Cassandra ring (tests/lab/cassandra.py).
#   tests/lab/build_cassandra.sh            fetch unless cached; prints the lib directory
# Needs: a JDK 17 (Cassandra 5.0 runs on 11 and 17) and Maven (`mvn`).
# Cache: ${WIRECHECK_LAB_CACHE:-/var/cache/wirecheck-lab}/cassandra-<version>/lib, plus build-seconds.
set -euo pipefail
version="${WIRECHECK_CASSANDRA_VERSION:-5.0.4}"
cache="${WIRECHECK_LAB_CACHE:-/var/cache/wirecheck-lab}/cassandra-${version}"
if [ -f "$cache/.complete" ]; then
  echo "$cache/lib"
  exit 0
fi
command -v mvn >/dev/null || { echo "build_cassandra: mvn is missing (apt-get install maven)" >&2; exit 1; }
start=$(date +%s)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>wirecheck.lab</groupId>
  <artifactId>cassandra-lab</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.cassandra</groupId>
      <artifactId>cassandra-all</artifactId>
      <version>${version}</version>
    </dependency>
  </dependencies>
</project>
POM
rm -rf "$cache"
mkdir -p "$cache"
(cd "$work" && mvn -q -B -Dmaven.repo.local="$work/m2" dependency:copy-dependencies \
   -DincludeScope=runtime -DoutputDirectory="$cache/lib" >&2)
echo $(( $(date +%s) - start )) > "$cache/build-seconds"
touch "$cache/.complete"
echo "$cache/lib"
