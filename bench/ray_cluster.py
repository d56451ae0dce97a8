"""A real local Ray cluster of several nodes on this machine, for tests and benchmarks.

Each node is its own `ray start --block` process (the head first, then the others joining
its address), so each has its own raylet, object store and worker processes, as separate
machines would. Everything lives in a fresh temporary directory and on free ports, so a
cluster never meets another one on the machine (or Ray's default /tmp/ray). Stopping
terminates each node and every process below it, by id, and waits until none is left.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

RAY = Path(sys.executable).with_name("ray")
HOST = "127.0.0.1"


@dataclass(frozen=True)
class LocalCluster:
    address: str  # host:port of the head's GCS, for `ray.init(address=...)` or `--ray`
    nodes: int
    temp_dir: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["RAY_USAGE_STATS_ENABLED"] = "0"  # no usage report sent from tests
    # A throwaway cluster on loopback needs no token; and a token that a local `ray.init()`
    # left in ~/.ray would otherwise stop these nodes' drivers from joining.
    env["RAY_AUTH_MODE"] = "disabled"
    env.pop("RAY_ADDRESS", None)
    return env


def _start_node(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(RAY), "start", "--block", "--disable-usage-stats", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_environment(),
            start_new_session=True,  # a terminal's Ctrl-C goes to the caller only
        )


def _node_ports() -> list[str]:
    # Ports Ray would otherwise take at fixed defaults, shared with any other cluster here.
    return [
        "--node-ip-address",
        HOST,
        "--dashboard-agent-listen-port",
        str(free_port()),
        "--object-store-memory",
        str(200 * 1024 * 1024),  # a small test corpus; keeps /dev/shm use modest
    ]


def _wait_for_port(port: int, node: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if node.poll() is not None:
            raise RuntimeError(f"ray head exited early:\n{log.read_text(errors='replace')}")
        with suppress(OSError), socket.create_connection((HOST, port), timeout=1):
            return
        time.sleep(0.5)
    raise TimeoutError(f"ray head not listening on {port} after {timeout:g} s")


def _wait_for_nodes(address: str, nodes: int, timeout: float) -> None:
    """Until the cluster reports `nodes` alive (asked from a short-lived driver process)."""
    script = (
        "import sys, time, ray\n"
        "ray.init(address=sys.argv[1], log_to_driver=False, logging_level='ERROR')\n"
        "deadline = time.monotonic() + float(sys.argv[3])\n"
        "while sum(n['Alive'] for n in ray.nodes()) < int(sys.argv[2]):\n"
        "    if time.monotonic() > deadline: sys.exit('nodes did not join')\n"
        "    time.sleep(0.5)\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, address, str(nodes), str(timeout)],
        check=True,
        env=_environment(),
        capture_output=True,
        timeout=timeout + 60,
    )


def _processes() -> dict[int, tuple[int, str, str]]:
    """Every process: pid -> (parent pid, state, start time), from /proc."""
    table: dict[int, tuple[int, str, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        # The command name is in parentheses and may hold spaces: split after it.
        fields = stat[stat.rindex(")") + 2 :].split()
        table[int(entry.name)] = (int(fields[1]), fields[0], fields[19])
    return table


def _descendants(roots: list[int]) -> set[tuple[int, str]]:
    """(pid, start time) of the roots and every process below them."""
    table = _processes()
    found = {pid for pid in roots if pid in table}
    grew = True
    while grew:
        below = {pid for pid, (parent, _, _) in table.items() if parent in found}
        grew = not below <= found
        found |= below
    return {(pid, table[pid][2]) for pid in found}


def _alive(processes: set[tuple[int, str]]) -> set[tuple[int, str]]:
    """Those still running (not exited, not a zombie, not a new process on a reused pid)."""
    table = _processes()
    return {
        (pid, start)
        for pid, start in processes
        if pid in table and table[pid][2] == start and table[pid][1] != "Z"
    }


def _signal(processes: set[tuple[int, str]], sig: signal.Signals) -> None:
    for pid, _ in processes:
        with suppress(ProcessLookupError):
            os.kill(pid, sig)


def _wait_gone(processes: set[tuple[int, str]], timeout: float) -> set[tuple[int, str]]:
    deadline = time.monotonic() + timeout
    left = _alive(processes)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = _alive(left)
    return left


def _stop(nodes: list[subprocess.Popen[bytes]]) -> None:
    """Stop the nodes and every process they started (workers run in their own sessions,
    so a process group does not hold them all: the process tree does)."""
    processes = _descendants([node.pid for node in nodes])
    for node in reversed(nodes):  # the head last: the others report to it
        node.terminate()  # `ray start --block` stops its node's processes on SIGTERM
        with suppress(subprocess.TimeoutExpired):
            node.wait(timeout=30)
    left = _wait_gone(processes, 10)
    _signal(left, signal.SIGTERM)
    left = _wait_gone(left, 10)
    _signal(left, signal.SIGKILL)
    for node in nodes:
        node.wait()
    left = _wait_gone(left, 10)
    if left:
        raise RuntimeError(f"ray processes still running after stop: {sorted(p for p, _ in left)}")


@contextmanager
def local_cluster(
    nodes: int = 2, cpus_per_node: int = 1, timeout: float = 180
) -> Iterator[LocalCluster]:
    """Start a head and `nodes - 1` more nodes with `cpus_per_node` logical CPUs each.

    Raises:
        TimeoutError, RuntimeError: The cluster did not come up within `timeout` seconds.
    """
    # Short: Ray puts unix sockets under it, whose paths are limited to about 100 bytes.
    temp_dir = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
    port = free_port()
    started: list[subprocess.Popen[bytes]] = []
    try:
        head_log = temp_dir / "head.log"
        started.append(
            _start_node(
                [
                    "--head",
                    "--port",
                    str(port),
                    "--num-cpus",
                    str(cpus_per_node),
                    "--temp-dir",
                    str(temp_dir),
                    "--include-dashboard",
                    "false",
                    "--dashboard-port",
                    str(free_port()),
                    *_node_ports(),
                ],
                head_log,
            )
        )
        _wait_for_port(port, started[0], head_log, timeout)
        address = f"{HOST}:{port}"
        for n in range(1, nodes):
            started.append(
                _start_node(
                    ["--address", address, "--num-cpus", str(cpus_per_node), *_node_ports()],
                    temp_dir / f"node{n}.log",
                )
            )
        _wait_for_nodes(address, nodes, timeout)
        yield LocalCluster(address, nodes, temp_dir)
    finally:
        _stop(started)
        shutil.rmtree(temp_dir, ignore_errors=True)
