#!/usr/bin/env python3
"""Side-by-side benchmark: the same playbook (bench/pi-base.yml) with ansible-playbook and
bramble against N OpenSSH servers, first run and re-run, in one go.

    python3 bench/fleet.py                 # loopback, N = 5, 20, 50
    python3 bench/fleet.py 5 10            # chosen sizes
    python3 bench/fleet.py --latency 5 20  # hosts in network namespaces, 20-50 ms away
    python3 bench/fleet.py --bramble-only 50  # bramble alone, for quick iterations

For each size and run it prints both tools' wall time, the ratio, each controller's peak
RSS, the remote commands per task (counted by the servers: sshd's "Starting session"
lines) and the 1-minute load average when each run started, since the machine it runs on
may be shared; each run first waits (up to 45 s) until the machine is quiet.
ansible-playbook runs with pipelining on and forks = N; bramble with -f N.

--latency puts every host in its own network namespace (made and removed by this script),
reached over a veth pair, host i at a round-trip time spread evenly over 20-50 ms. The delay
comes from netem when the kernel has it; otherwise from a relay in user space that holds
every segment for half the round trip in each direction (printed at the start). Each size
also runs on loopback, and the time the delay added gives the round trips per task:
(wall with delay - wall on loopback) / (tasks x the largest round-trip time), since the
linear strategy waits for the slowest host at every task.

Needs root (sshd, namespaces), openssh-server, iproute2, ansible-core 2.19 and a release
build of bramble (cargo build --release). Servers listen on 127.0.0.1 or inside the
script's own namespaces only; each host works in its own folder under a temp dir. The servers
see an empty ~/.bashrc (see Fleet.clean_login), as a Pi's non-interactive shell would.
"""

import asyncio
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

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BRAMBLE = os.path.join(REPO, "target", "release", "bramble")
PLAYBOOK = os.path.join(REPO, "bench", "pi-base.yml")
SESSION = re.compile(r"^Starting session: command", re.M)
RTT_RANGE_MS = (20.0, 50.0)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def keygen(path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path], check=True)


def wait_for(address, what):
    deadline = time.time() + 15
    while True:
        try:
            socket.create_connection(address, timeout=1).close()
            return
        except OSError:
            if time.time() > deadline:
                raise SystemExit(f"{what} on {address[0]}:{address[1]} did not start")
            time.sleep(0.05)


def round_trip_ms(index, count):
    low, high = RTT_RANGE_MS
    return low if count == 1 else low + (high - low) * index / (count - 1)


class Fleet:
    """N sshd servers, on loopback or one per network namespace; undone by close()."""

    def __init__(self, work, count, latency):
        self.work, self.count, self.latency = work, count, latency
        self.servers, self.namespaces, self.links = [], [], []
        self.relay, self.delay_by = None, None
        self.hosts = []  # (address, port) the controller connects to
        self.rtts = [round_trip_ms(i, count) if latency else 0.0 for i in range(count)]
        keygen(os.path.join(work, "host_key"))
        keygen(os.path.join(work, "client_key"))
        shutil.copy(os.path.join(work, "client_key.pub"), os.path.join(work, "authorized_keys"))
        os.makedirs("/run/sshd", exist_ok=True)

    def sshd_config(self, index, address, port):
        path = os.path.join(self.work, f"sshd_{index}.conf")
        with open(path, "w") as out:
            out.write(
                f"Port {port}\nListenAddress {address}\nHostKey {self.work}/host_key\n"
                f"AuthorizedKeysFile {self.work}/authorized_keys\n"
                f"PidFile {self.work}/sshd_{index}.pid\nStrictModes no\nPermitRootLogin yes\n"
                "PasswordAuthentication no\nUsePAM no\nMaxSessions 100\nMaxStartups 100\n"
                # VERBOSE logs one "Starting session" line per remote command.
                "LogLevel VERBOSE\n"
            )
        return path

    def start(self):
        if self.latency:
            self.start_namespaced()
        else:
            for index in range(self.count):
                port = free_port()
                self.spawn(index, [], "127.0.0.1", port)
                self.hosts.append(("127.0.0.1", port))
        for address in self.hosts:
            wait_for(address, "sshd")
        self.write_known_hosts()

    def spawn(self, index, prefix, address, port):
        config = self.sshd_config(index, address, port)
        log = open(os.path.join(self.work, f"sshd_{index}.log"), "w")
        command = prefix + self.clean_login() + ["/usr/sbin/sshd", "-D", "-e", "-f", config]
        self.servers.append(subprocess.Popen(command, stderr=log))

    def clean_login(self):
        """A prefix that gives sshd its own mount namespace with an empty ~/.bashrc.

        bash sources ~/.bashrc for every command sshd starts, even non-interactive ones; a
        Pi's returns at once, but the controller's may not (a pyenv init here costs 300 ms
        a command), and that would be timed as the tools' own work."""
        bashrc = os.path.join(os.path.expanduser("~root"), ".bashrc")
        if not os.path.exists(bashrc):
            return []
        empty = os.path.join(self.work, "empty_bashrc")
        open(empty, "w").close()
        return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
                'mount --bind "$1" "$2" && shift 2 && exec "$@"', "sh", empty, bashrc]

    def start_namespaced(self):
        tag = os.getpid() % 100000
        subnet = 100 + os.getpid() % 100
        for index in range(self.count):
            namespace, link = f"bramble-bench-{tag}-{index}", f"bbv{tag}x{index}"
            outside, inside = f"10.{subnet}.{index}.1", f"10.{subnet}.{index}.2"
            ip("netns", "add", namespace)
            self.namespaces.append(namespace)
            ip("link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", namespace)
            self.links.append(link)
            ip("addr", "add", f"{outside}/30", "dev", link)
            ip("link", "set", link, "up")
            ip("-n", namespace, "addr", "add", f"{inside}/30", "dev", "eth0")
            ip("-n", namespace, "link", "set", "eth0", "up")
            ip("-n", namespace, "link", "set", "lo", "up")
            self.spawn(index, ["ip", "netns", "exec", namespace], inside, 22)
            self.hosts.append((inside, 22))
        for address in self.hosts:
            wait_for(address, "sshd")
        if self.add_netem():
            self.delay_by = "netem"
        else:
            self.delay_by = "a user-space relay (this kernel has no netem qdisc)"
            self.start_relay()

    def add_netem(self):
        for link, rtt in zip(self.links, self.rtts):
            added = subprocess.run(
                ["tc", "qdisc", "add", "dev", link, "root", "netem", "delay", f"{rtt:.1f}ms"],
                capture_output=True,
            )
            if added.returncode != 0:
                return False
        return True

    def start_relay(self):
        routes = []
        for (address, port), rtt in zip(self.hosts, self.rtts):
            routes.append([free_port(), address, port, rtt / 2000.0])
        log = open(os.path.join(self.work, "relay.log"), "w")
        self.relay = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--relay", json.dumps(routes)], stderr=log
        )
        self.hosts = [("127.0.0.1", route[0]) for route in routes]

    def write_known_hosts(self):
        key = " ".join(open(os.path.join(self.work, "host_key.pub")).read().split()[:2])
        with open(os.path.join(self.work, "known_hosts"), "w") as out:
            for address, port in self.hosts:
                name = address if port == 22 else f"[{address}]:{port}"
                out.write(f"{name} {key}\n")

    def inventory(self):
        path = os.path.join(self.work, "hosts")
        with open(path, "w") as out:
            out.write("[pis]\n")
            for index, (address, port) in enumerate(self.hosts):
                out.write(f"pi{index:02d} ansible_host={address} ansible_port={port}\n")
            out.write(
                "[all:vars]\nansible_user=root\n"
                f"ansible_ssh_private_key_file={self.work}/client_key\n"
                f"ansible_ssh_common_args='-o UserKnownHostsFile={self.work}/known_hosts'\n"
                "ansible_python_interpreter=/usr/bin/python3\n"
                f"bench_root={self.work}/targets\n"
            )
        return path

    def sessions(self):
        """Remote commands the servers have started so far."""
        total = 0
        for index in range(self.count):
            with open(os.path.join(self.work, f"sshd_{index}.log")) as log:
                total += len(SESSION.findall(log.read()))
        return total

    def close(self):
        for process in self.servers + ([self.relay] if self.relay else []):
            process.kill()
            process.wait()
        for link in self.links:
            subprocess.run(["ip", "link", "del", link], capture_output=True)
        for namespace in self.namespaces:
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)


def ip(*arguments):
    subprocess.run(["ip", *arguments], check=True, capture_output=True)


def busy_seconds():
    """CPU seconds the whole machine has spent busy (not idle or waiting) since boot."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def settle(limit=45.0, quiet=0.25):
    """Waits (up to `limit` seconds) until the machine is quiet: less than `quiet` of one core
    busy over a second. The load average lags by minutes, so the previous run's load (50 of
    ansible-playbook's target processes at 50 hosts) would still count against the next run.
    Returns the busy fraction seen last."""
    deadline = time.monotonic() + limit
    while True:
        before = busy_seconds()
        time.sleep(1.0)
        busy = busy_seconds() - before
        if busy < quiet or time.monotonic() > deadline:
            return busy


def timed(command, env, work):
    """Runs a command; returns (seconds, peak RSS in MiB of its largest process, output,
    load average when it started, controller CPU seconds, machine CPU seconds)."""
    settle()
    load = os.getloadavg()[0]
    busy = busy_seconds()
    output_path = os.path.join(work, "output.txt")
    with open(output_path, "w") as output:
        started = time.monotonic()
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
        # wait4 gives this child's own peak, whatever ran before it.
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    text = open(output_path).read()
    if process.returncode != 0:
        sys.stderr.write(text[-4000:])
        raise SystemExit(f"{command[0]} failed with exit code {process.returncode}")
    cpu = usage.ru_utime + usage.ru_stime
    return elapsed, usage.ru_maxrss / 1024, text, load, cpu, busy_seconds() - busy


def count_tasks(output):
    return len(re.findall(r"^(TASK|RUNNING HANDLER) \[", output, re.M))


def run_tool(fleet, label, command, env):
    """First run and re-run of one tool on a fresh target tree."""
    shutil.rmtree(os.path.join(fleet.work, "targets"), ignore_errors=True)
    results = []
    for run in ("first run", "re-run"):
        before = fleet.sessions()
        seconds, rss, output, load, cpu, machine = timed(command, env, fleet.work)
        commands = fleet.sessions() - before
        results.append({"run": run, "seconds": seconds, "rss": rss, "load": load,
                        "cpu": cpu, "machine": machine,
                        "tasks": count_tasks(output), "commands": commands, "tool": label})
    return results


def measure(count, latency, bramble_only=False):
    """Both tools against one fleet; a list of (bramble, ansible) result pairs (ansible's is
    None with bramble_only)."""
    work = tempfile.mkdtemp(prefix="bramble-bench-")
    fleet = Fleet(work, count, latency)
    try:
        fleet.start()
        if latency:
            print(f"  {count} hosts in namespaces, round trips {fleet.rtts[0]:.0f}-"
                  f"{fleet.rtts[-1]:.0f} ms, delay by {fleet.delay_by}")
        inventory = fleet.inventory()
        env = dict(os.environ, ANSIBLE_PIPELINING="1", ANSIBLE_NOCOLOR="1",
                   ANSIBLE_HOST_KEY_CHECKING="True", ANSIBLE_RETRY_FILES_ENABLED="0",
                   ANSIBLE_FORKS=str(count))
        ours = run_tool(fleet, "bramble",
                        [BRAMBLE, "run", PLAYBOOK, "-i", inventory, "-f", str(count)], env)
        if bramble_only:
            return [(run, None) for run in ours], max(fleet.rtts)
        theirs = run_tool(fleet, "ansible-playbook",
                          ["ansible-playbook", PLAYBOOK, "-i", inventory, "-f", str(count)], env)
        return list(zip(ours, theirs)), max(fleet.rtts)
    finally:
        fleet.close()
        shutil.rmtree(work, ignore_errors=True)


def per_task(result, count):
    return result["commands"] / max(result["tasks"] * count, 1)


def print_row(count, ours, theirs):
    if theirs is None:
        print(f"{count:>3} hosts  {ours['run']:<9}  bramble {ours['seconds']:6.2f} s "
              f"{ours['rss']:5.1f} MiB {per_task(ours, count):4.1f} cmd/task "
              f"(load {ours['load']:4.1f})  CPU: controller {ours['cpu']:5.2f} s, "
              f"whole machine {ours['machine']:5.2f} s")
        sys.stdout.flush()
        return
    print(f"{count:>3} hosts  {ours['run']:<9}  "
          f"ansible-playbook {theirs['seconds']:7.2f} s {theirs['rss']:6.1f} MiB "
          f"{per_task(theirs, count):4.1f} cmd/task (load {theirs['load']:4.1f})   "
          f"bramble {ours['seconds']:6.2f} s {ours['rss']:5.1f} MiB "
          f"{per_task(ours, count):4.1f} cmd/task (load {ours['load']:4.1f})   "
          f"ratio {theirs['seconds'] / ours['seconds']:5.1f}x")
    sys.stdout.flush()


def print_round_trips(count, loopback, delayed, rtt_ms):
    for (ours_lo, theirs_lo), (ours, theirs) in zip(loopback, delayed):
        parts = []
        for name, fast, slow in (("ansible-playbook", theirs_lo, theirs), ("bramble", ours_lo, ours)):
            trips = (slow["seconds"] - fast["seconds"]) / (max(slow["tasks"], 1) * rtt_ms / 1000)
            parts.append(f"{name} {slow['seconds']:7.2f} s, ~{trips:4.1f} round trips/task")
        print(f"{count:>3} hosts  {ours['run']:<9}  with delay: " + "   ".join(parts)
              + f"   ratio {theirs['seconds'] / ours['seconds']:5.1f}x")
    sys.stdout.flush()


def relay(routes):
    """Forwards each 127.0.0.1 port to its host, holding data `delay` seconds each way."""

    async def pump(reader, writer, delay):
        loop = asyncio.get_running_loop()
        queue = asyncio.Queue()

        async def send():
            while True:
                due, data = await queue.get()
                await asyncio.sleep(max(0.0, due - loop.time()))
                if not data:
                    break
                writer.write(data)
                await writer.drain()
            writer.close()

        sender = asyncio.create_task(send())
        try:
            while True:
                data = await reader.read(1 << 16)
                queue.put_nowait((loop.time() + delay, data))
                if not data:
                    break
        except OSError:
            queue.put_nowait((loop.time(), b""))
        try:
            await sender
        except OSError:
            pass

    def handler(address, port, delay):
        async def connected(client_reader, client_writer):
            try:
                host_reader, host_writer = await asyncio.open_connection(address, port)
            except OSError:
                client_writer.close()
                return
            await asyncio.gather(pump(client_reader, host_writer, delay),
                                 pump(host_reader, client_writer, delay))
        return connected

    async def serve():
        servers = [await asyncio.start_server(handler(address, port, delay), "127.0.0.1", listen)
                   for listen, address, port, delay in routes]
        await asyncio.gather(*(server.serve_forever() for server in servers))

    asyncio.run(serve())


def main():
    arguments = sys.argv[1:]
    if arguments[:1] == ["--relay"]:
        relay(json.loads(arguments[1]))
        return
    # SIGTERM too unwinds through the finally blocks that stop the servers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    latency = "--latency" in arguments
    bramble_only = "--bramble-only" in arguments
    if latency and bramble_only:
        raise SystemExit("--latency compares with ansible-playbook: drop --bramble-only")
    sizes = [int(arg) for arg in arguments if not arg.startswith("--")] or ([5, 20] if latency else [5, 20, 50])
    if os.geteuid() != 0:
        raise SystemExit("run it as root: it starts sshd servers (and, with --latency, namespaces)")
    if not os.path.exists(BRAMBLE):
        raise SystemExit("build bramble first: cargo build --release")
    version = subprocess.run(["ansible-playbook", "--version"], capture_output=True, text=True)
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
          f"{version.stdout.splitlines()[0] if version.stdout else 'ansible-playbook ?'}")
    print("peak RSS is the largest single controller process (ansible forks one per host); "
          "cmd/task counts sshd sessions per task per host; load is the 1-minute average")
    for count in sizes:
        loopback, _ = measure(count, False, bramble_only)
        for ours, theirs in loopback:
            print_row(count, ours, theirs)
        if latency:
            delayed, rtt_ms = measure(count, True)
            print_round_trips(count, loopback, delayed, rtt_ms)


if __name__ == "__main__":
    main()
