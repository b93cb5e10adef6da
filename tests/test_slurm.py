"""The cluster path, proven: the SLURM profile (profiles/slurm-cpu) runs a slice of the smoke pipeline against a real
single-node SLURM, and its outputs equal a local run of the same jobs.

The test starts its own munged, slurmctld and slurmd as root, on a private munge key and socket and free ports. The
daemons and the client commands find the generated slurm.conf through SLURM_CONF; the job steps cannot (see the
fixture), so the same file is also written to /etc/slurm/slurm.conf for the test's duration - never over a slurm.conf
the test did not write (it skips instead). It needs the Debian packages slurmctld, slurmd, slurm-client and munge
(.ci/run installs them when it can) and is skipped with the reason otherwise. Every daemon it started is stopped by
PID in the fixture's teardown.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pytest
from test_pipeline import copy_pipeline

pytestmark = pytest.mark.slow

SLURM_BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "scancel")
RESULTS = "results/smoke"
SEEDS_DIR = f"{RESULTS}/seeds/cartpole_swingup/seed0"
RUN_DIR = f"{RESULTS}/runs/planet/cartpole_swingup/seed0"
EVAL_FILE = f"{RESULTS}/eval/planet/cartpole_swingup/seed0.json"
TARGETS = [SEEDS_DIR, f"{RUN_DIR}/summary.json", EVAL_FILE]
SLURM_RULES = {"collect_seed_episodes", "train", "evaluate"}  # init_tracking is a localrule: it runs here


def _which(name: str) -> str | None:
    """A SLURM/munge binary: on PATH, or in the sbin directories a non-login root shell may lack."""
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))


def _skip_reason() -> str | None:
    missing = [b for b in SLURM_BINARIES if _which(b) is None]
    if missing:
        return (f"SLURM is not installed ({', '.join(missing)} not on PATH; "
                "apt-get install slurmctld slurmd slurm-client munge)")
    if os.geteuid() != 0:
        return "starting slurmd/slurmctld/munged for the test needs root"
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return "snakemake-executor-plugin-slurm is not installed (pip install -e '.[cluster]')"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


ETC_CONF = Path("/etc/slurm/slurm.conf")
ETC_MARKER = "# A one-node SLURM for tests/test_slurm.py"
SLURM_CONF = ETC_MARKER + """ (written by the test; read through SLURM_CONF and /etc/slurm/slurm.conf).
ClusterName=planetci
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge.sock
SlurmUser=root
SlurmdUser=root
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
# Finished jobs stay visible to squeue this long: the plugin's status command (squeue) needs >= 120 s.
MinJobAge=300
# Take CPUs/RealMemory from this file, not the hardware (the node is the CI machine, whatever its size).
SlurmdParameters=config_overrides
NodeName={host} NodeAddr=127.0.0.1 CPUs=2 RealMemory=8000 State=UNKNOWN
PartitionName=ci Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def slurm_cluster():
    """munged + slurmctld + slurmd on this machine; yields the environment that points clients at them."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    # Short path: the munge socket path must fit a unix socket name (108 bytes).
    root = Path(tempfile.mkdtemp(prefix="planet-slurm-", dir="/tmp" if Path("/tmp").is_dir() else None))
    root.chmod(0o755)  # munged wants its socket directory reachable by everyone
    for sub in ("state", "spool"):
        (root / sub).mkdir()
    key = root / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    host = socket.gethostname().split(".")[0]
    conf = root / "slurm.conf"
    conf.write_text(SLURM_CONF.format(host=host, root=root, ctld_port=_free_port(), d_port=_free_port()))
    # The daemons, sbatch, squeue and sinfo find the config through SLURM_CONF, but the job step cannot: inside each
    # job the slurm-jobstep plugin starts `srun` with every SLURM_* variable but the job's identity removed
    # (SLURM_CONF included), and srun then only looks at /etc/slurm/slurm.conf (or DNS SRV records). So the same
    # file goes there too - unless a slurm.conf the test did not write is in the way - and is removed afterwards.
    if ETC_CONF.exists() and ETC_MARKER not in ETC_CONF.read_text(errors="replace"):
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"{ETC_CONF} exists (a real SLURM installation?); the test does not overwrite it")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["SLURM_CONF"] = str(conf)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # `planet` inside the jobs
    procs: list[subprocess.Popen] = []
    logs = []

    def start(name: str, *args: str) -> subprocess.Popen:
        logs.append(open(root / f"{name}.out", "w"))
        procs.append(subprocess.Popen([_which(name), *args], env=env, stdout=logs[-1],
                                      stderr=subprocess.STDOUT, cwd=root, start_new_session=True))
        return procs[-1]

    def daemon_logs() -> str:
        files = sorted(root.glob("*.out")) + [root / "slurmctld.log", root / "slurmd.log"]
        return "\n".join(f"--- {p.name}:\n{p.read_text(errors='replace')[-2000:]}" for p in files if p.exists())

    try:
        ETC_CONF.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(conf, ETC_CONF)
        munged = start("munged", "--foreground", "--force", f"--socket={root}/munge.sock", f"--key-file={key}",
                       f"--pid-file={root}/munged.pid", f"--seed-file={root}/munged.seed",
                       f"--log-file={root}/munged.log")
        deadline = time.monotonic() + 20
        # Daemons that cannot start say something about this machine (no permission to run them, a container
        # without the needed kernel features), not about the profile under test: skip with their logs, as where
        # SLURM cannot be installed. Everything after the node is idle is asserted.
        while not (root / "munge.sock").exists():
            if time.monotonic() > deadline or munged.poll() is not None:
                pytest.skip(f"munged does not start on this machine\n{daemon_logs()}")
            time.sleep(0.2)
        start("slurmctld", "-D")
        start("slurmd", "-D", "-N", host)
        deadline = time.monotonic() + 90
        while True:
            probe = subprocess.run([_which("sinfo"), "-h", "-N", "-o", "%T", "-n", host], env=env, capture_output=True,
                                   text=True, timeout=20)
            if probe.returncode == 0 and probe.stdout.strip() == "idle":
                break
            dead = [p.args[0] for p in procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                pytest.skip(f"the SLURM daemons do not come up on this machine (sinfo: {probe.stdout.strip()!r} "
                            f"{probe.stderr.strip()!r}; exited: {dead})\n{daemon_logs()}")
            time.sleep(1)
        yield {"env": env, "root": root, "logs": daemon_logs}
    finally:
        if len(procs) == 3 and procs[1].poll() is None:  # nothing of ours left running on the node
            subprocess.run([_which("scancel"), "--full", "--user", "root"], env=env, capture_output=True, timeout=20)
        for proc in reversed(procs):  # slurmd, slurmctld, munged: by PID
            _stop(proc)
        for log in logs:
            log.close()
        if ETC_CONF.exists() and ETC_MARKER in ETC_CONF.read_text(errors="replace"):
            ETC_CONF.unlink()
        shutil.rmtree(root, ignore_errors=True)


def _snakemake(cwd: Path, env: dict, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    cmd = ["timeout", "-k", "10", str(timeout), sys.executable, "-m", "snakemake", *args]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout + 60)
    assert proc.returncode == 0, f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n" \
                                 f"{proc.stderr[-6000:]}"
    return proc


def _metrics(run_dir: Path) -> list[dict]:
    """metrics.jsonl without what may differ between two runs of the same job (wall time, throughput)."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [{k: v for k, v in row.items() if k != "time" and not k.startswith("perf/")} for row in rows]


def _returns(obj):
    """Every value under a key naming a return, anywhere in the evaluation JSON."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if "return" in k.lower():
                out[k] = v
            else:
                sub = _returns(v)
                if sub not in ({}, []):
                    out[k] = sub
        return out
    if isinstance(obj, list):
        return [_returns(v) for v in obj]
    return {}


@pytest.mark.timeout(1500)  # ~3 min on 2 busy cores; the bound is the two Snakemake runs' own timeouts
def test_slurm_profile_runs_smoke_slice(tmp_path, slurm_cluster):
    env = slurm_cluster["env"]
    cluster = copy_pipeline(tmp_path / "cluster")
    local = copy_pipeline(tmp_path / "local")

    started = time.monotonic()
    # The command docs/cluster.md gives, on the CPU profile. Test-only flags: --verbose (the plugin then logs each
    # sbatch call), keep the SLURM logs of successful jobs (to check them) and poll SLURM 10 s after a submission
    # instead of 40 s (MinJobAge=300 >= 3 x 10 s, so the plugin keeps squeue as its status command).
    proc = _snakemake(cluster, env, "--workflow-profile", "profiles/slurm-cpu", "--config", "preset=smoke",
                      "--jobs", "2", "--verbose", "--slurm-keep-successful-logs",
                      "--slurm-init-seconds-before-status-checks", "10", *TARGETS)
    slurm_seconds = time.monotonic() - started
    out = proc.stdout + proc.stderr

    # Every non-local job went through sbatch and SLURM ran it.
    submitted = re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)\.", out)
    assert len(submitted) == len(SLURM_RULES), f"expected {len(SLURM_RULES)} sbatch submissions:\n{out[-4000:]}"
    slurm_ids = {int(jid) for _, jid, _ in submitted}
    slurm_logs = cluster / ".snakemake" / "slurm_logs"  # the plugin's: slurm_logs/rule_RULE/WILDCARDS/JOBID.log
    for _, jid, log in submitted:
        log = Path(log)
        assert log.is_file() and log.is_relative_to(slurm_logs) and log.name == f"{jid}.log", log
    assert {Path(log).relative_to(slurm_logs).parts[0] for _, _, log in submitted} == {
        f"rule_{r}" for r in SLURM_RULES}
    queue = subprocess.run([_which("squeue"), "--states=all", "-h", "-o", "%i|%T"], env=env, capture_output=True,
                           text=True, timeout=20).stdout
    states = {int(i): s for i, s in (line.split("|") for line in queue.split())}
    assert {states.get(i) for i in slurm_ids} == {"COMPLETED"}, (states, slurm_ids)
    # What was asked of SLURM: the profile's memory and runtime, one CPU (smoke threads), and no GPU in any form.
    calls = {re.search(r"--comment '?rule_(\w+?)_wildcards", c).group(1): c
             for c in re.findall(r"sbatch call: (.*)", out)}
    assert set(calls) == SLURM_RULES, calls
    assert " --mem 4000" in calls["train"] and " -t 2880" in calls["train"], calls["train"]
    assert " --mem 2000" in calls["evaluate"] and " --mem 2000" in calls["collect_seed_episodes"]
    for call in calls.values():
        assert "--cpus-per-task=1" in call and "--gpus" not in call and "--gres" not in call, call

    # The same jobs, locally.
    _snakemake(local, env | {"SLURM_CONF": "/nonexistent"}, "--config", "preset=smoke", "--cores", "2", *TARGETS,
               timeout=400)

    # Seed episodes: bit-identical.
    names = sorted(p.relative_to(local / SEEDS_DIR) for p in (local / SEEDS_DIR).rglob("*.npz"))
    assert names, "no seed episodes written"
    assert names == sorted(p.relative_to(cluster / SEEDS_DIR) for p in (cluster / SEEDS_DIR).rglob("*.npz"))
    for name in names:
        assert (local / SEEDS_DIR / name).read_bytes() == (cluster / SEEDS_DIR / name).read_bytes(), name
    # Training: the same metrics, line by line (wall time and throughput aside).
    assert _metrics(cluster / RUN_DIR) == _metrics(local / RUN_DIR)
    assert len(_metrics(local / RUN_DIR)) > 0
    # Evaluation: the same returns.
    evals = [json.loads((root / EVAL_FILE).read_text()) for root in (cluster, local)]
    assert _returns(evals[0]) not in ({}, []), evals[0]
    assert _returns(evals[0]) == _returns(evals[1])

    # The report rule needs the whole grid; the partial report of the same preset is made from the slice here.
    planet = shutil.which("planet", path=env["PATH"])
    report = subprocess.run([planet, "report", "--pipeline-preset", "smoke", "--results", RESULTS,
                             "--out", "reports/slurm-slice"], cwd=cluster, env=env, capture_output=True, text=True,
                            timeout=300)  # ./params of the copy (planet.config.params_dir)
    assert report.returncode == 0, report.stdout[-2000:] + report.stderr[-3000:]
    assert json.loads(report.stdout.strip().splitlines()[-1])["runs"] == 1, report.stdout
    table1 = (cluster / "reports/slurm-slice/table1.md").read_text()
    table = [[c.strip() for c in row.split("|")] for row in table1.splitlines()]
    planet_row = next(r for r in table if r[1:2] == ["PlaNet (RSSM)"])
    assert planet_row[table[0].index("cartpole_swingup")] not in ("", "—"), planet_row  # the slice's score

    print(f"SLURM slice: {slurm_seconds:.0f} s; jobs {sorted(slurm_ids)}")
    # The record of what SLURM did, shown in pytest's warnings summary (so CI's log holds the submissions).
    record = [line.strip() for line in out.splitlines()
              if re.search(r"has been submitted with SLURM jobid|^Finished jobid|steps \(100%\) done", line.strip())]
    warnings.warn(SlurmRecord(f"SLURM slice in {slurm_seconds:.0f} s:\n" + "\n".join(record)), stacklevel=1)


class SlurmRecord(UserWarning):
    """Not a problem: the sbatch submissions and completions of the passing SLURM test, for CI's log."""
