"""SFTP upload speed: Ferry's SftpServer block against OpenSSH's `sftp put` of the same file, on loopback.

The target (issue 4): Ferry reaches at least 70% of `sftp put`'s throughput
for a 1 GB file. Both clients upload to the same server, alternating, several
rounds; the medians are compared. The server is the asyncssh server the tests
use (pip only); ``--server openssh`` uses OpenSSH's sshd instead (installed
from Debian when missing; it needs root).

Usage:  .venv/bin/python bench/sftp_bench.py [--size-mb 1024] [--rounds 3] [--server asyncssh|openssh] [--check]

Ferry's side is the production path: connect, verify the pinned host key,
key login, hash (SHA-256) while uploading to a temporary name, rename.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
CPU: dict[str, list[float]] = {"sftp put": [], "ferry": []}


def ensure_debian_package(package: str, binary: str) -> str:
    """The binary's path, installing its Debian package first when it is missing (never assumed)."""
    found = shutil.which(binary) or (f"/usr/sbin/{binary}" if Path(f"/usr/sbin/{binary}").exists() else None)
    if found:
        return found
    print(f"{binary} is missing: installing {package} from Debian", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    policy = Path("/usr/sbin/policy-rc.d")
    created = not policy.exists()
    if created:  # do not let the package start a system sshd on port 22
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        subprocess.run(["apt-get", "install", "-y", "-qq", package], check=True, env=env, stdout=subprocess.DEVNULL)
    finally:
        if created:
            policy.unlink()
    found = shutil.which(binary) or (f"/usr/sbin/{binary}" if Path(f"/usr/sbin/{binary}").exists() else None)
    if not found:
        raise SystemExit(f"{package} installed but {binary} is still missing")
    return found


def make_file(path: Path, size: int) -> None:
    """Incompressible data (SSH compression is off anyway), written once."""
    chunk = os.urandom(1 << 20)
    with open(path, "wb") as out:
        for i in range(size >> 20):
            out.write(chunk[i % 7 :] + chunk[: i % 7])


class Target:
    """Where both clients upload: host, port, user, key, known_hosts line, and the folder on local disk."""

    def __init__(
        self, host: str, port: int, user: str, key_pem: str, known_hosts_line: str, remote_folder: str, local_folder: Path, stop
    ) -> None:
        self.host, self.port, self.user, self.key_pem = host, port, user, key_pem
        self.known_hosts_line, self.remote_folder, self.local_folder, self.stop = known_hosts_line, remote_folder, local_folder, stop


def asyncssh_target(work: Path) -> Target:
    from servers.sftp import start_sftp

    server = start_sftp(work / "asyncssh")
    return Target(
        "127.0.0.1", server.port, server.username, server.client_key_pem, server.host_key_line, "/", server.root, server.process.stop
    )


def openssh_target(work: Path) -> Target:
    import asyncssh
    from servers import free_port
    from servers._process import ServerProcess

    sshd = ensure_debian_package("openssh-server", "sshd")
    base = work / "openssh"
    base.mkdir(parents=True)
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    host_key.write_private_key(str(base / "host_key"))
    (base / "host_key").chmod(0o600)
    client = asyncssh.generate_private_key("ssh-ed25519")
    (base / "authorized_keys").write_bytes(client.export_public_key())
    (base / "authorized_keys").chmod(0o600)
    uploads = base / "uploads"
    uploads.mkdir()
    port = free_port()
    (base / "sshd_config").write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {base / "host_key"}
AuthorizedKeysFile {base / "authorized_keys"}
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
PidFile none
Subsystem sftp internal-sftp
""")
    Path("/run/sshd").mkdir(exist_ok=True)
    log = base / "sshd.log"
    process = subprocess.Popen([sshd, "-D", "-e", "-f", str(base / "sshd_config")], stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    server = ServerProcess("sshd", process, log)
    deadline = time.monotonic() + 20
    import socket

    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                if sock.recv(4).startswith(b"SSH-"):
                    break
        except OSError:
            time.sleep(0.1)
    else:
        server.stop()
        raise SystemExit(f"sshd did not start:\n{server.log_text()}")
    line = f"[127.0.0.1]:{port} {host_key.export_public_key().decode().strip()}"
    user = os.environ.get("USER") or "root"
    return Target("127.0.0.1", port, user, client.export_private_key("openssh").decode(), line, str(uploads), uploads, server.stop)


def sftp_put(sftp: str, target: Target, work: Path, source: Path, name: str) -> float:
    key = work / "client_key"
    key.write_text(target.key_pem)
    key.chmod(0o600)
    (work / "known_hosts").write_text(target.known_hosts_line + "\n")
    batch = work / "batch"
    batch.write_text(f"put {source} {target.remote_folder.rstrip('/')}/{name}\n")
    command = [
        sftp,
        "-q",
        "-b",
        str(batch),
        "-i",
        str(key),
        "-o",
        f"UserKnownHostsFile={work / 'known_hosts'}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-P",
        str(target.port),
        f"{target.user}@{target.host}",
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU["sftp put"].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return elapsed


def ferry_put(target: Target, source: Path, name: str) -> float:
    from blocks.sftp import SftpServer

    block = SftpServer(
        host=target.host,
        port=target.port,
        username=target.user,
        private_key=target.key_pem,
        host_key=target.known_hosts_line,
        folder=target.remote_folder,
    )
    cpu = time.process_time()
    started = time.perf_counter()
    with open(source, "rb") as stream:
        delivery = block.deliver(stream, name)
    elapsed = time.perf_counter() - started
    CPU["ferry"].append(time.process_time() - cpu)
    assert delivery.bytes == source.stat().st_size
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--server", choices=["asyncssh", "openssh"], default="asyncssh")
    parser.add_argument("--check", action="store_true", help="exit 1 when Ferry is below 70%% of sftp put")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the server and remove the files on kill, too

    sftp = ensure_debian_package("openssh-client", "sftp")
    import blocks.sftp  # noqa: F401 - imported before timing: Prefect's import is not upload time

    work = Path(tempfile.mkdtemp(prefix="ferry-sftp-bench-"))
    target = None
    try:
        source = work / "big.bin"
        size = args.size_mb << 20
        make_file(source, size)
        target = asyncssh_target(work) if args.server == "asyncssh" else openssh_target(work)
        times: dict[str, list[float]] = {"sftp put": [], "ferry": []}
        for round_ in range(args.rounds):
            for client in ("sftp put", "ferry") if round_ % 2 == 0 else ("ferry", "sftp put"):
                name = f"upload-{client.replace(' ', '-')}-{round_}.bin"
                seconds = sftp_put(sftp, target, work, source, name) if client == "sftp put" else ferry_put(target, source, name)
                (target.local_folder / name).unlink()
                times[client].append(seconds)
                print(f"round {round_ + 1} {client:8s} {seconds:7.2f} s  {size / seconds / 1e6:7.1f} MB/s", flush=True)
        medians = {client: statistics.median(values) for client, values in times.items()}
        best = {client: min(values) for client, values in times.items()}
        ratio, best_ratio = medians["sftp put"] / medians["ferry"], best["sftp put"] / best["ferry"]
        load = os.getloadavg()[0]
        print(
            f"\n{args.size_mb} MiB over loopback to the {args.server} server, {args.rounds} rounds "
            f"(load average {load:.1f} on {os.cpu_count()} cores):"
        )
        for client in times:
            print(
                f"  {client:8s} median {size / medians[client] / 1e6:7.1f} MB/s   best {size / best[client] / 1e6:7.1f} MB/s   "
                f"client CPU {statistics.median(CPU[client]) / (size / 1e9):5.2f} s per GB"
            )
        print(f"  ferry reaches {ratio:.0%} of sftp put by median, {best_ratio:.0%} best against best (target: at least 70%)")
        return 1 if args.check and ratio < 0.7 else 0
    finally:
        if target is not None:
            target.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
