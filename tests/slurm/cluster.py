"""A throwaway single-node SLURM cluster for tests (and for trying the SLURM profile by hand).

It writes a minimal ``slurm.conf`` (one node on 127.0.0.1 named after ``hostname -s``, a
default partition ``debug`` and a ``gpu`` partition on the same GPU-less node,
``select/cons_tres``, no cgroups, no accounting) into a folder of its own,
starts ``munged``, ``slurmctld`` and ``slurmd`` in the foreground as child processes of
this one (no systemd, nothing written under /etc or /var), waits until ``sinfo`` reports
the node idle, and stops the daemons by their process ids afterwards.

The packages come from Debian (``.ci/install-slurm.sh``). Daemons run as root, as CI does;
:func:`unavailable_reason` says why a cluster cannot be started here (then tests skip).

By hand::

    python tests/slurm/cluster.py start /tmp/slurm   # prints the `export SLURM_CONF=...` line
    python tests/slurm/cluster.py stop  /tmp/slurm
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

PARTITION = "debug"
GPU_PARTITION = "gpu"
DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sinfo", "sbatch", "squeue", "scancel", "srun", "scontrol")


def unavailable_reason() -> str | None:
    """None when a cluster can be started here, else one sentence saying why not."""
    if os.name != "posix" or not hasattr(os, "geteuid"):
        return "SLURM test cluster needs a POSIX system"
    if os.geteuid() != 0:
        return "SLURM test cluster needs root (daemons run as root; CI runs as root)"
    missing = [t for t in DAEMONS + CLIENTS if shutil.which(t, path=_path()) is None]
    if missing:
        return ("SLURM packages are not installed (missing " + ", ".join(missing)
                + "); run .ci/install-slurm.sh")
    return None


def _path() -> str:
    # the daemons live in /usr/sbin, which a non-login PATH may lack
    return os.environ.get("PATH", "") + ":/usr/sbin:/sbin"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _machine() -> tuple[int, int]:
    """(CPUs, memory in MB) that the test node declares."""
    cpus = os.cpu_count() or 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        pass
    mem_mb = 1024
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    mem_mb = int(line.split()[1]) // 1024
                    break
    except OSError:  # pragma: no cover
        pass
    # Memory is not a consumable here (SelectTypeParameters=CR_Core): it only bounds what
    # one job may ask for. The profile's default (4000 MB per job) must fit even on a
    # small CI machine, so the node declares at least 16 GB (SlurmdParameters=
    # config_overrides keeps slurmd from draining a node that has less).
    # Likewise the node offers at least 4 CPUs, so that the few one-CPU jobs of a test
    # workflow (mostly waiting on imports and I/O) run side by side on a 2-core machine.
    return max(cpus, 4), max(16000, int(mem_mb * 0.8))


class SlurmCluster:
    """One controller + one compute node, all state under ``root``."""

    def __init__(self, root: str | os.PathLike, partition: str = PARTITION):
        self.root = Path(root).resolve()
        self.partition = partition
        self.node = socket.gethostname().split(".")[0]
        self.conf = self.root / "etc" / "slurm.conf"
        self.procs: dict[str, subprocess.Popen] = {}

    # -- environment for clients (sbatch, squeue, snakemake's SLURM executor) -----------
    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["SLURM_CONF"] = str(self.conf)
        env["PATH"] = f"{self.root / 'bin'}:{_path()}"
        return env

    def run(self, *args: str, check: bool = True, timeout: float = 30) -> str:
        """Run a SLURM client command against this cluster; returns stdout."""
        res = subprocess.run(list(args), env=self.env, capture_output=True, text=True,
                             timeout=timeout)
        if check and res.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({res.returncode}): {res.stderr.strip()}")
        return res.stdout

    # -- configuration ---------------------------------------------------------------
    def write_config(self) -> None:
        cpus, mem_mb = _machine()
        for sub in ("etc", "munge", "state", "spool", "log", "run", "bin"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.root / "munge", 0o700)
        key = self.root / "munge" / "munge.key"
        if not key.exists():
            key.write_bytes(os.urandom(128))
        os.chmod(key, 0o400)
        r = self.root
        self.ctld_port, self.slurmd_port = _free_port(), _free_port()
        lines = [
            "# written by tests/slurm/cluster.py: a one-node test cluster",
            "ClusterName=scziva-test",
            f"SlurmctldHost={self.node}(127.0.0.1)",
            f"SlurmctldPort={self.ctld_port}",
            f"SlurmdPort={self.slurmd_port}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={r}/munge/munge.socket",
            f"StateSaveLocation={r}/state",
            f"SlurmdSpoolDir={r}/spool",
            f"SlurmctldPidFile={r}/run/slurmctld.pid",
            f"SlurmdPidFile={r}/run/slurmd.pid",
            f"SlurmctldLogFile={r}/log/slurmctld.log",
            f"SlurmdLogFile={r}/log/slurmd.log",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "SchedulerType=sched/backfill",
            "MpiDefault=none",
            "ReturnToService=2",
            # finished jobs stay visible to squeue for 5 min: the executor plugin polls
            # squeue (there is no sacct without accounting) and must see the final state
            "MinJobAge=300",
            "SlurmdParameters=config_overrides",
            "SlurmctldTimeout=30",
            "SlurmdTimeout=60",
            "InactiveLimit=0",
            "KillWait=5",
            "Waittime=0",
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem_mb} State=UNKNOWN",
            f"PartitionName={self.partition} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP",
            # same node, for checking that GPU jobs are routed to the GPU partition (the
            # node has no GPU: a job that asks for one is refused at submission)
            f"PartitionName={GPU_PARTITION} Nodes={self.node} Default=NO MaxTime=INFINITE State=UP",
        ]
        self.conf.write_text("\n".join(lines) + "\n")
        # Inside a job, snakemake's slurm-jobstep executor starts the rule with `srun`
        # after removing every SLURM_* variable (SLURM_CONF included), so srun would look
        # for /etc/slurm/slurm.conf, which a real cluster has and this one does not.
        # A shim first on PATH puts SLURM_CONF back for srun only.
        srun = shutil.which("srun", path=_path())
        if srun:
            shim = self.root / "bin" / "srun"
            shim.write_text(f'#!/bin/sh\nSLURM_CONF="${{SLURM_CONF:-{self.conf}}}" '
                            f'exec {srun} "$@"\n')
            shim.chmod(0o755)
        # slurmd reads cgroup.conf beside slurm.conf when present; none of the cgroup
        # plugins is used here (proctrack/linuxproc, task/none).

    # -- start / stop ------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.out", "ab")
        self.procs[name] = subprocess.Popen(argv, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL,
                                            start_new_session=True)
        log.close()

    def start(self, timeout: float = 60.0) -> "SlurmCluster":
        reason = unavailable_reason()
        if reason:
            raise RuntimeError(reason)
        self.write_config()
        r = self.root
        sock = r / "munge" / "munge.socket"
        self._spawn("munged", [shutil.which("munged", path=_path()), "--foreground", "--force",
                               f"--socket={sock}", f"--key-file={r}/munge/munge.key",
                               f"--pid-file={r}/run/munged.pid",
                               f"--log-file={r}/log/munged.log",
                               f"--seed-file={r}/munge/munged.seed"])
        self._wait(lambda: sock.exists(), timeout, "munged did not create its socket")
        self._spawn("slurmctld", [shutil.which("slurmctld", path=_path()), "-D", "-i",
                                  "-f", str(self.conf)])
        self._wait(lambda: self._ok("scontrol", "ping"), timeout, "slurmctld does not answer")
        self._spawn("slurmd", [shutil.which("slurmd", path=_path()), "-D",
                               "-f", str(self.conf), "-N", self.node])
        self._wait(self._node_idle, timeout, "the node did not become idle")
        (r / "run" / "pids.json").write_text(
            json.dumps({k: p.pid for k, p in self.procs.items()}))
        return self

    def _ok(self, *args: str) -> bool:
        try:
            return subprocess.run(list(args), env=self.env, capture_output=True,
                                  timeout=10).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def _node_idle(self) -> bool:
        try:
            out = self.run("sinfo", "-h", "-N", "-o", "%t", check=False, timeout=10)
        except subprocess.TimeoutExpired:
            return False
        return out.strip().startswith("idle")

    def _wait(self, cond, timeout: float, what: str) -> None:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            for name, p in self.procs.items():
                if p.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"{name} exited with {p.returncode} while starting; "
                                       f"see {self.root / 'log'}:\n{self.logs_tail()}")
            if cond():
                return
            time.sleep(0.5)
        tail = self.logs_tail()
        self.stop()
        raise RuntimeError(f"{what} within {timeout:.0f} s; logs in {self.root / 'log'}:\n{tail}")

    def logs_tail(self, n: int = 15) -> str:
        out = []
        for f in sorted((self.root / "log").glob("*")):
            try:
                lines = f.read_text(errors="replace").splitlines()[-n:]
            except OSError:
                continue
            out.append(f"== {f.name}\n" + "\n".join(lines))
        return "\n".join(out)

    def stop(self) -> None:
        """Cancel remaining jobs, then end the daemons this object started (by pid)."""
        if self.procs.get("slurmctld") and self.procs["slurmctld"].poll() is None:
            self._ok("scancel", "--full", "--user", getpass.getuser())
        pids = {k: p.pid for k, p in self.procs.items()}
        if not pids:  # started by another process: read the pid file
            f = self.root / "run" / "pids.json"
            if f.exists():
                pids = json.loads(f.read_text())
        for name in ("slurmd", "slurmctld", "munged"):
            pid = pids.get(name)
            if pid is None:
                continue
            _terminate(pid, self.procs.get(name))
        self.procs.clear()


def _terminate(pid: int, proc: subprocess.Popen | None, grace: float = 10.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    t0 = time.monotonic()
    while time.monotonic() - t0 < grace:
        if proc is not None:
            if proc.poll() is not None:
                return
        else:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
        time.sleep(0.2)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    if proc is not None:
        proc.wait(timeout=5)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print("usage: python tests/slurm/cluster.py start|stop DIR", file=sys.stderr)
        return 2
    cluster = SlurmCluster(argv[1])
    if argv[0] == "start":
        try:
            cluster.start()
        except RuntimeError as exc:
            print(f"slurm_cluster: {exc}", file=sys.stderr)
            return 1
        # the daemons outlive this process (own sessions); `stop DIR` ends them by pid
        cluster.procs.clear()
        print(f"export SLURM_CONF={cluster.conf}")
    else:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
