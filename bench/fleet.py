#!/usr/bin/env python3
"""Side-by-side benchmark: the same playbook with ansible-playbook and bramble against N
OpenSSH servers on loopback, first run and re-run; prints wall time, ratio, controller
peak RSS and remote commands per task.

    python3 bench/fleet.py            # N = 5, 20, 50
    python3 bench/fleet.py 5 10       # chosen sizes

Needs root (sshd), openssh-server, ansible-core 2.19 and a release build of bramble
(cargo build --release). Every server listens on 127.0.0.1 only; each host works in its
own directory under the benchmark's temp dir.
"""

import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BRAMBLE = os.path.join(REPO, "target", "release", "bramble")
PLAYBOOK = os.path.join(REPO, "bench", "pi-base.yml")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def keygen(path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path], check=True)


def start_servers(work, count):
    keygen(os.path.join(work, "host_key"))
    keygen(os.path.join(work, "client_key"))
    shutil.copy(os.path.join(work, "client_key.pub"), os.path.join(work, "authorized_keys"))
    os.makedirs("/run/sshd", exist_ok=True)
    host_key = open(os.path.join(work, "host_key.pub")).read().split()[:2]
    servers, known = [], []
    for index in range(count):
        port = free_port()
        config = os.path.join(work, f"sshd_{index}.conf")
        with open(config, "w") as out:
            out.write(
                f"Port {port}\nListenAddress 127.0.0.1\nHostKey {work}/host_key\n"
                f"AuthorizedKeysFile {work}/authorized_keys\nPidFile {work}/sshd_{index}.pid\n"
                "StrictModes no\nPermitRootLogin yes\nPasswordAuthentication no\nUsePAM no\n"
                "MaxSessions 100\nMaxStartups 100\n"
            )
        servers.append(subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", config],
                                        stderr=subprocess.DEVNULL))
        known.append(f"[127.0.0.1]:{port} {' '.join(host_key)}")
        servers[-1].port = port
    with open(os.path.join(work, "known_hosts"), "w") as out:
        out.write("\n".join(known) + "\n")
    for server in servers:
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise SystemExit(f"sshd on port {server.port} did not start")
                time.sleep(0.05)
    return servers


def write_inventory(work, servers):
    path = os.path.join(work, "hosts")
    with open(path, "w") as out:
        out.write("[pis]\n")
        for index, server in enumerate(servers):
            out.write(f"pi{index:02d} ansible_host=127.0.0.1 ansible_port={server.port}\n")
        out.write(
            "[all:vars]\nansible_user=root\n"
            f"ansible_ssh_private_key_file={work}/client_key\n"
            f"ansible_ssh_common_args='-o UserKnownHostsFile={work}/known_hosts'\n"
            "ansible_python_interpreter=/usr/bin/python3\n"
            f"bench_root={work}/targets\n"
        )
    return path


def timed(command, env):
    """Runs a command; returns (seconds, peak RSS in MiB of its largest process, stdout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.monotonic()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-3000:] + result.stderr[-3000:])
        raise SystemExit(f"{command[0]} failed with exit code {result.returncode}")
    # ru_maxrss of children only grows; a smaller run after a bigger one reads as the bigger.
    return elapsed, max(peak, before) / 1024, result.stdout + result.stderr


def count_tasks(output):
    return len(re.findall(r"^TASK \[", output, re.M))


def run_size(count):
    work = tempfile.mkdtemp(prefix="bramble-bench-")
    servers = start_servers(work, count)
    try:
        inventory = write_inventory(work, servers)
        env = dict(os.environ, ANSIBLE_PIPELINING="1", ANSIBLE_NOCOLOR="1",
                   ANSIBLE_HOST_KEY_CHECKING="True", ANSIBLE_RETRY_FILES_ENABLED="0")
        rows = []
        for label in ("first run", "re-run"):
            ours = timed([BRAMBLE, "run", PLAYBOOK, "-i", inventory, "-f", str(count)],
                         dict(env, RUST_LOG="bramble::connection=debug"))
            rows.append((label, ours))
        commands = [len(re.findall(r"bramble::connection: exec command=", r[1][2])) for r in rows]
        # ansible-playbook on a fresh target tree, so its first run is a first run too.
        shutil.rmtree(os.path.join(work, "targets"), ignore_errors=True)
        theirs = []
        for label in ("first run", "re-run"):
            theirs.append(timed(["ansible-playbook", PLAYBOOK, "-i", inventory, "-f", str(count)], env))
        tasks = count_tasks(rows[0][1][2])
        for index, (label, ours) in enumerate(rows):
            their = theirs[index]
            per_task = commands[index] / max(tasks * count, 1)
            print(f"{count:>3} hosts  {label:<9}  ansible-playbook {their[0]:7.2f} s {their[1]:6.1f} MiB"
                  f"   bramble {ours[0]:6.2f} s {ours[1]:5.1f} MiB   ratio {their[0] / ours[0]:5.1f}x"
                  f"   remote commands/task {per_task:4.1f}")
            sys.stdout.flush()
    finally:
        for server in servers:
            server.kill()
        shutil.rmtree(work, ignore_errors=True)


def main():
    sizes = [int(arg) for arg in sys.argv[1:]] or [5, 20, 50]
    if not os.path.exists(BRAMBLE):
        raise SystemExit("build bramble first: cargo build --release")
    print("peak RSS is the largest single controller process (ansible forks one per host)")
    for count in sizes:
        run_size(count)


if __name__ == "__main__":
    main()
