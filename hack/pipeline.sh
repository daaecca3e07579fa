#!/usr/bin/env bash
# pipeline.sh is the main job: the whole slipway pipeline on this machine,
# through the same Zuul jobs (zuul.d/) and Ansible playbooks Zuul runs,
# against real local servers.
#
#   hack/pipeline.sh [-e KEY=VALUE...]
#                             run the post pipeline of branch platform/demo
#   hack/pipeline.sh rerun JOB [-e KEY=VALUE...]
#                             rerun one job with the results of the last run
#                             (e.g. rerun slipway-push-registry -e 'slipway_push_regions=[b]')
#   hack/pipeline.sh failover [--dry-run] [-e KEY=VALUE...]
#                             fail platform/demo over to the DR site (the
#                             slipway-failover job; --dry-run: preflight
#                             and plan only; -e slipway_failover_from=b
#                             -e slipway_failover_to=a is the failback)
#   hack/pipeline.sh unfreeze bring the primary back after a failover
#                             (the slipway-unfreeze job)
#   hack/pipeline.sh stop     stop the servers
#
# It installs what is missing (hack/install-deps.sh), builds the test tools
# (hack/tools.sh) and bin/, starts every server (hack/testenv.sh: two
# registries with Swift storage, the OpenStack emulator, a Kubernetes API
# with kwok, MariaDB and MongoDB-wire primary/DR pairs, S3) into a fixed state
# directory, seeds the primary databases, writes Zuul-like variables for a
# post pipeline on platform/demo and runs the jobs with test/zuulconfig's
# local runner: build the sample images, push them to both regions, converge
# the Magnum cluster, deploy the sample platform into namespace demo, back up
# the primary databases and restore them at the DR site. Then it prints a
# summary. Rerunning changes nothing that is already right.
#
# Environment: SLIPWAY_PIPELINE_DIR (state, default $SLIPWAY_CACHE/pipeline),
# SLIPWAY_PIPELINE_BRANCH (default platform/demo), SLIPWAY_PIPELINE_REV (the
# commit built: zuul.newrev, default HEAD),
# SLIPWAY_PIPELINE_NAMESPACE_PREFIX (e.g. ci-123- for a throw-away namespace),
# SLIPWAY_PIPELINE_SERVERS=env (use the servers whose SLIPWAY_TEST_* variables
# are set, e.g. the test runner's, instead of starting its own).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$SLIPWAY_ROOT"

state=${SLIPWAY_PIPELINE_DIR:-$SLIPWAY_CACHE/pipeline}
mkdir -p "$state"
state=$(cd "$state" && pwd)
servers="$state/servers"
branch=${SLIPWAY_PIPELINE_BRANCH:-platform/demo}

servers_alive() {
  [ -f "$servers/env" ] || return 1
  local f
  for f in "$servers"/pids/*.pid; do
    [ -f "$f" ] || return 1
    kill -0 "$(cat "$f")" 2>/dev/null || return 1
  done
}

cmd=${1:-run}; [ $# -gt 0 ] && shift
only=() pipeline=post
case "$cmd" in
  stop)
    hack/testenv.sh down "$servers"
    log "servers stopped (state kept in $state)"
    exit 0 ;;
  run) ;;
  failover|unfreeze) pipeline=$cmd ;;
  rerun)
    [ $# -ge 1 ] || usage
    only=(--only "$1"); shift ;;
  -h|--help|help) usage ;;
  *) usage ;;
esac
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    -e) [ $# -ge 2 ] || usage; extra+=(-e "$2"); shift 2 ;;
    --dry-run) [ "$cmd" = failover ] || usage; extra+=(-e slipway_failover_dry_run=true); shift ;;
    *) usage ;;
  esac
done

log "state directory: $state"
if [ "${SLIPWAY_PIPELINE_SERVERS:-}" = env ]; then
  # The servers of the calling environment (the test runner's, for the
  # end-to-end test): SLIPWAY_TEST_* are already set, tools are on PATH.
  [ -n "${SLIPWAY_TEST_REGISTRY_A:-}" ] || die "SLIPWAY_PIPELINE_SERVERS=env but SLIPWAY_TEST_REGISTRY_A is not set: source a hack/testenv.sh env file first"
  setup_tools on-path
else
  setup_tools install
fi
log "building the local Zuul runner"
go build -trimpath -o "$state/zuul-local" ./test/zuulconfig/cmd/zuul-local

if [ "${SLIPWAY_PIPELINE_SERVERS:-}" != env ]; then
  if servers_alive; then
    log "servers already running ($servers)"
  else
    hack/testenv.sh down "$servers" >/dev/null 2>&1 || true
    log "starting the servers in $servers"
    hack/testenv.sh up "$servers"
  fi
  # shellcheck source=/dev/null # written by hack/testenv.sh up
  . "$servers/env"
fi

# --- the primary site's data (idempotent) -------------------------------------
mysql_primary=(mariadb --no-defaults -uroot -S "$SLIPWAY_TEST_MARIADB_PRIMARY_SOCKET")
"${mysql_primary[@]}" <<'SQL'
CREATE DATABASE IF NOT EXISTS openedx CHARACTER SET utf8mb4;
USE openedx;
CREATE TABLE IF NOT EXISTS courses (
  id INT PRIMARY KEY, title VARCHAR(200) NOT NULL, org VARCHAR(50) NOT NULL,
  syllabus BLOB, created DATETIME NOT NULL);
INSERT IGNORE INTO courses VALUES
  (1, 'Demo course: Zuul pipelines', 'slipway', x'00ff10', '2026-01-01 10:00:00'),
  (2, 'Über Kubernetes — namespaces', 'slipway', NULL, '2026-01-02 11:30:00'),
  (3, 'Backups that restore', 'acme', x'cafe', '2026-01-03 09:15:00');
CREATE TABLE IF NOT EXISTS enrollments (
  course_id INT NOT NULL, learner VARCHAR(100) NOT NULL, PRIMARY KEY (course_id, learner));
INSERT IGNORE INTO enrollments VALUES (1, 'ada'), (1, 'grace'), (2, 'linus'), (3, 'ada');
SQL

# --- Zuul variables, site variables, local secret values ----------------------
newrev=$(git rev-parse "${SLIPWAY_PIPELINE_REV:-HEAD}")
oldrev=$(git rev-parse "$newrev~1" 2>/dev/null || echo "$newrev")
umask 077
cat >"$state/zuul.yaml" <<YAML
zuul:
  tenant: local
  pipeline: $pipeline
  branch: $branch
  ref: refs/heads/$branch
  newrev: $newrev
  oldrev: $oldrev
  commit_id: $newrev
  buildset: $(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  change_url: https://review.example.org/plugins/gitiles/slipwayci/slipway/+/$newrev
  project:
    name: slipwayci/slipway
    short_name: slipway
    canonical_hostname: review.example.org
    canonical_name: review.example.org/slipwayci/slipway
    src_dir: src/review.example.org/slipwayci/slipway
YAML
# The SLIPWAY_TEST_* variables come from the servers' env file.
# shellcheck disable=SC2153
cat >"$state/site-vars.yaml" <<YAML
# Where the local servers are; site variables win over job variables.
slipway_src_dir: $SLIPWAY_ROOT
slipway_bin_dir: $SLIPWAY_ROOT/bin
slipway_build_binaries: false
slipway_work_dir: "$state/work/{{ zuul.job }}"
# Each region as Magnum runs it: push-registry starts its own distribution
# 2.8 on the region's Swift container (behind the emulator's Keystone) and
# the nodes pull localhost:5000 (node-a0's containerd maps it to its node
# registry on region A's container).
slipway_install_registry: false
slipway_regions:
  - name: a
    nodeRegistry: "$SLIPWAY_TEST_NODE_REGISTRY_NAME"
    swift:
      authurl: "$SLIPWAY_TEST_SWIFT_KEYSTONE_AUTH_URL"
      region: "$SLIPWAY_TEST_SWIFT_KEYSTONE_REGION_A"
      container: "$SLIPWAY_TEST_SWIFT_KEYSTONE_CONTAINER_A"
      domain: "$SLIPWAY_TEST_SWIFT_KEYSTONE_DOMAIN"
      tenant: "$SLIPWAY_TEST_SWIFT_KEYSTONE_PROJECT"
      tenantdomain: "$SLIPWAY_TEST_SWIFT_KEYSTONE_DOMAIN"
  - name: b
    nodeRegistry: "$SLIPWAY_TEST_NODE_REGISTRY_NAME"
    swift:
      authurl: "$SLIPWAY_TEST_SWIFT_KEYSTONE_AUTH_URL"
      region: "$SLIPWAY_TEST_SWIFT_KEYSTONE_REGION_B"
      container: "$SLIPWAY_TEST_SWIFT_KEYSTONE_CONTAINER_B"
      domain: "$SLIPWAY_TEST_SWIFT_KEYSTONE_DOMAIN"
      tenant: "$SLIPWAY_TEST_SWIFT_KEYSTONE_PROJECT"
      tenantdomain: "$SLIPWAY_TEST_SWIFT_KEYSTONE_DOMAIN"
# The test Swift (one Python proxy behind the emulator's Keystone) can stall
# for tens of seconds on a loaded machine; a real region answers in 30 s.
slipway_push_request_timeout: 2m
slipway_buildset_registry: "$SLIPWAY_TEST_REGISTRY_BUILDSET"
slipway_buildset_insecure: true
slipway_insecure_registries: ["$SLIPWAY_TEST_REGISTRY_BUILDSET"]
slipway_build_args:
  BASE_IMAGE: "$SLIPWAY_TEST_BASE_IMAGE"
slipway_mongo_tools_dir: "$(dirname "$SLIPWAY_TEST_MONGODUMP")"
slipway_cluster_spec: examples/cluster/local-sites.yaml
slipway_cluster_poll_interval: 1s
slipway_manifests: examples/local
slipway_deploy_jobs: [static-check]
slipway_deploy_timeout: 5m
slipway_namespace_prefix: "${SLIPWAY_PIPELINE_NAMESPACE_PREFIX:-}"
slipway_backup_mongo_no_index_restore: true
# The backup CronJobs' pods run in real containers on the real nodes
# (node-a0, node-b0) and reach the test servers on the host's 127.0.0.1
# (docs/testenv-node.md).
slipway_backup_pod:
  hostNetwork: true
  dnsPolicy: Default
  nodeSelector: {type: real}
  tolerations:
    - {key: slipway.test/real-node, operator: Exists, effect: NoSchedule}
slipway_backup_primary:
  mysql_host: "${SLIPWAY_TEST_MARIADB_PRIMARY_ADDR%:*}"
  mysql_port: ${SLIPWAY_TEST_MARIADB_PRIMARY_ADDR##*:}
slipway_backup_dr:
  mysql_host: "${SLIPWAY_TEST_MARIADB_DR_ADDR%:*}"
  mysql_port: ${SLIPWAY_TEST_MARIADB_DR_ADDR##*:}
YAML
cat >"$state/secrets.yaml" <<YAML
# Local values of zuul.d/secrets.yaml's secrets (Zuul decrypts the real ones).
slipway-registry-region-a: &keystone
  username: "$SLIPWAY_TEST_SWIFT_KEYSTONE_USER"
  password: "$SLIPWAY_TEST_SWIFT_KEYSTONE_PASSWORD"
slipway-registry-region-b: *keystone
slipway-openstack-region-a:
  auth_url: "$SLIPWAY_TEST_OS_AUTH_URL"
  region_name: RegionOne
  application_credential_id: "$SLIPWAY_TEST_OS_APPLICATION_CREDENTIAL_ID"
  application_credential_secret: "$SLIPWAY_TEST_OS_APPLICATION_CREDENTIAL_SECRET"
slipway-openstack-region-b:
  auth_url: "$SLIPWAY_TEST_OS_AUTH_URL"
  region_name: RegionTwo
  application_credential_id: "$SLIPWAY_TEST_OS_APPLICATION_CREDENTIAL_ID"
  application_credential_secret: "$SLIPWAY_TEST_OS_APPLICATION_CREDENTIAL_SECRET"
slipway-s3-region-a: &s3
  endpoint: "$SLIPWAY_TEST_S3_ENDPOINT"
  region: "$SLIPWAY_TEST_S3_REGION"
  bucket: "$SLIPWAY_TEST_S3_BUCKET"
  access_key: "$SLIPWAY_TEST_S3_ACCESS_KEY"
  secret_key: "$SLIPWAY_TEST_S3_SECRET_KEY"
slipway-s3-region-b: *s3
slipway-databases-primary:
  mysql_user: "$SLIPWAY_TEST_MARIADB_PRIMARY_USER"
  mysql_password: "$SLIPWAY_TEST_MARIADB_PRIMARY_PASSWORD"
  mysql_admin_user: root
  mysql_admin_password: ""
  mongodb_uri: "$SLIPWAY_TEST_MONGO_PRIMARY_URI"
slipway-databases-dr:
  mysql_user: "$SLIPWAY_TEST_MARIADB_DR_USER"
  mysql_password: "$SLIPWAY_TEST_MARIADB_DR_PASSWORD"
  mysql_admin_user: root
  mysql_admin_password: ""
  mongodb_uri: "$SLIPWAY_TEST_MONGO_DR_URI"
YAML
umask 022

# mongodump/mongorestore come from the test tools.
PATH="$(dirname "$SLIPWAY_TEST_MONGODUMP"):$PATH"

log "running pipeline $pipeline for $branch (job logs under $state/jobs)"
rc=0
"$state/zuul-local" --root "$SLIPWAY_ROOT" --state "$state" --pipeline "$pipeline" --branch "$branch" \
  --zuul "$state/zuul.yaml" --site-vars "$state/site-vars.yaml" --secrets "$state/secrets.yaml" \
  ${only[@]+"${only[@]}"} ${extra[@]+"${extra[@]}"} || rc=$?
echo
if [ $rc -eq 0 ]; then
  echo "pipeline $pipeline for $branch: SUCCESS (state and logs: $state)"
else
  echo "pipeline $pipeline for $branch: FAILED, see the job logs above (state and logs: $state)"
fi
echo "servers are still running; stop them with: hack/pipeline.sh stop"
exit $rc
