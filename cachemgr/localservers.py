"""Real Redis servers on free ports, in temporary directories: a 3-primary Redis Cluster,
or a primary + replica watched by one Sentinel.

The tests start these (session fixtures), `manage.py cache local-cluster` starts one for
the demo, and `bench/cache_cluster.py` measures against one. Each server runs with no
persistence; `stop()` ends the processes and removes the directory.
"""

import random
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

START_TIMEOUT_S = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too; both below 65536."""
    for _ in range(200):
        port = random.randint(20000, 45000)
        if _bindable(port) and _bindable(port + 10000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


def _wait(predicate, what: str, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except (redis.ConnectionError, redis.ResponseError, redis.TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen within {timeout:g} s")
        time.sleep(0.05)


class TLSFiles:
    """A throwaway CA and a server certificate for 127.0.0.1 it signed (openssl)."""

    def __init__(self, directory: Path):
        self.ca = directory / "ca.crt"
        self.cert, self.key = directory / "server.crt", directory / "server.key"
        ca_key, request = directory / "ca.key", directory / "server.csr"
        extensions = directory / "san.ext"
        extensions.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        for command in (
            f"req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=oc-test-ca "
            f"-keyout {ca_key} -out {self.ca}",
            f"req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout {self.key} -out {request}",
            f"x509 -req -in {request} -CA {self.ca} -CAkey {ca_key} -CAcreateserial -days 2 "
            f"-extfile {extensions} -out {self.cert}",
        ):
            subprocess.run(["openssl", *command.split()], check=True, capture_output=True)

    def server_args(self, port: int) -> list[str]:
        return [
            "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(self.cert),
            "--tls-key-file", str(self.key), "--tls-ca-cert-file", str(self.ca),
            "--tls-auth-clients", "no",
        ]  # fmt: skip

    @property
    def url_options(self) -> str:
        return f"ssl_ca_certs={self.ca}"


class Server:
    """One redis-server (or sentinel) process of ours; with `tls`, it listens with TLS only."""

    def __init__(
        self,
        directory: Path,
        *args: str,
        sentinel_config: str | None = None,
        port: int = 0,
        tls: TLSFiles | None = None,
    ):
        self.port = port or free_port()
        self.directory = directory / str(self.port)
        self.directory.mkdir(parents=True)
        command = ["redis-server"]
        if sentinel_config is not None:
            config = self.directory / "sentinel.conf"
            config.write_text(f"port {self.port}\ndir {self.directory}\n{sentinel_config}")
            command += [str(config), "--sentinel"]
        else:
            listen = tls.server_args(self.port) if tls else ["--port", str(self.port)]
            command += [*listen, "--dir", str(self.directory)]
            command += ["--save", "", "--appendonly", "no", *args]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        secure = {"ssl": True, "ssl_ca_certs": str(tls.ca)} if tls else {}
        self.client = redis.Redis(port=self.port, socket_timeout=5, **secure)
        _wait(self.client.ping, f"redis on port {self.port} answering")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Kill the process (as a crash would: no shutdown handshake)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.client.close()


class LocalCluster:
    """`primaries` redis-server --cluster-enabled yes, joined by redis-cli --cluster create,
    each with `replicas` replicas (`nodes` lists the primaries first)."""

    def __init__(
        self, primaries: int = 3, *, replicas: int = 0, maxmemory: str = "", tls: bool = False
    ):
        self.directory = Path(tempfile.mkdtemp(prefix="oc-cluster-"))
        self.tls = TLSFiles(self.directory) if tls else None
        extra = ["--maxmemory", maxmemory] if maxmemory else []
        if self.tls:
            extra += ["--tls-cluster", "yes"]
        self.nodes = [
            Server(
                self.directory,
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "2000",
                *extra,
                port=free_cluster_port(),
                tls=self.tls,
            )
            for _ in range(primaries * (1 + replicas))
        ]
        secure = ["--tls", "--cacert", str(self.tls.ca)] if self.tls else []
        subprocess.run(
            ["redis-cli", *secure, "--cluster", "create", *[n.address for n in self.nodes]]
            + ["--cluster-replicas", str(replicas), "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        for node in self.nodes:
            _wait(
                lambda n=node: n.client.cluster("info")["cluster_state"] == "ok",
                f"cluster state ok on {node.address}",
            )

    @property
    def url(self) -> str:
        query = [f"seed={n.address}" for n in self.nodes[1:]]
        query += [self.tls.url_options] if self.tls else []
        scheme = "rediss-cluster" if self.tls else "redis-cluster"
        return f"{scheme}://{self.nodes[0].address}" + (f"?{'&'.join(query)}" if query else "")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


class LocalSentinel:
    """A primary, one replica, and one Sentinel watching them as `service` (quorum 1,
    down after 1 s, so a failover takes a few seconds)."""

    def __init__(self, service: str = "cache"):
        self.service = service
        self.directory = Path(tempfile.mkdtemp(prefix="oc-sentinel-"))
        # The replica syncs at once (diskless, no 5 s wait for more replicas to join).
        self.primary = Server(self.directory, "--repl-diskless-sync-delay", "0")
        self.replica = Server(
            self.directory,
            "--replicaof",
            "127.0.0.1",
            str(self.primary.port),
            "--repl-diskless-sync-delay",
            "0",
        )
        _wait(self._replica_streaming, "the replica in sync")
        self.primary.client.delete("__replication_check__")
        self.sentinel = Server(
            self.directory,
            sentinel_config=(
                f"sentinel monitor {service} 127.0.0.1 {self.primary.port} 1\n"
                f"sentinel down-after-milliseconds {service} 1000\n"
                f"sentinel failover-timeout {service} 5000\n"
            ),
        )
        _wait(self._replica_known, f"sentinel seeing the replica of {service}")

    def _replica_streaming(self) -> bool:
        """True once a write reaches the replica (after a diskless sync the primary holds
        the stream back until the replica's first ACK, up to a second later)."""
        return self.primary.client.set("__replication_check__", 1) and bool(
            self.primary.client.wait(1, 200)
        )

    def _replica_known(self) -> bool:
        replicas = self.sentinel.client.sentinel_slaves(self.service)
        return any(int(r["port"]) == self.replica.port for r in replicas)

    def url(self, db: int = 0) -> str:
        return f"redis-sentinel://{self.sentinel.address}/{self.service}/{db}"

    def current_primary_port(self) -> int:
        host, port = self.sentinel.client.sentinel_get_master_addr_by_name(self.service)
        return int(port)

    def stop(self) -> None:
        for server in (self.sentinel, self.replica, self.primary):
            server.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
