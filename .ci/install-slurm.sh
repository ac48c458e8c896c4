#!/usr/bin/env bash
# Install a single-node SLURM (controller, node daemon, client tools) and munge from
# Debian's packages, so that tests/test_slurm.py can start a real cluster on this
# machine. Idempotent and quiet: does nothing when the tools are already there.
# Needs root (CI runs as root); without root it says so and exits 0, and the SLURM
# tests then skip with that reason.
set -euo pipefail

need=()
for tool in slurmctld slurmd sinfo sbatch squeue munged; do
    command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done
if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-slurm: not root, cannot install ${need[*]}; SLURM tests will be skipped" >&2
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-slurm: no apt-get on this machine; SLURM tests will be skipped" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# --no-install-recommends: the recommends pull in mail servers and documentation.
apt-get install -y -qq --no-install-recommends \
    slurmctld slurmd slurm-client munge slurm-wlm-basic-plugins >/dev/null
# The packages try to start their services through systemd/init scripts; the tests
# start their own daemons with their own configuration, so stop any that did start.
for svc in slurmctld slurmd munge; do
    if command -v service >/dev/null 2>&1; then
        service "$svc" stop >/dev/null 2>&1 || true
    fi
done
echo "install-slurm: installed slurm $(dpkg-query -W -f='${Version}' slurmctld 2>/dev/null)"
