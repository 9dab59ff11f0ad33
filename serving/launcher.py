"""Start the real `tritonserver` binary shipped in the nvidia-pytriton wheel on a model repository.

The wheel ships the server, the Python backend library and one backend stub per Python version, but
not a ready-to-use backend directory. `LocalTritonServer` assembles one in a work folder (symlinks,
site-packages stays untouched), sets the environment the stub needs and waits until the server and
its models report ready.

Which Python runs `model.py`: the stub embeds the libpython it is linked against and, like any
embedded interpreter, finds its prefix by looking up `python3` on `PATH`. With the interpreter's own
bin folder first on `PATH` (a venv's `bin/` holds `python3` next to `pyvenv.cfg`) the stub runs with
the same site-packages as the process that started the server, so torch & co import as usual.
`LD_LIBRARY_PATH` must point at that interpreter's libpython, otherwise the loader picks the
system's copy of the same soname and the stub fails to start.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

# Errors tritonserver logs on every host without a GPU; they do not explain a failed start.
_CPU_HOST_NOISE = ("CudaDriverHelper has not been initialized", "Failed to initialize NVML")


class ServerStartError(RuntimeError):
    """The server exited or did not become ready in time; the message carries the log tail."""


class PortBusyError(ServerStartError):
    """A port the server needs is taken; the message names it and the option that changes it."""


# The config.pbtxt parameter the export writes: it tells our server apart from another one on the same port.
EXPORT_ID_KEY = "export_id"
PORT_OPTIONS = {"HTTP": "--http-port", "gRPC": "--grpc-port", "metrics": "--metrics-port"}


def pytriton_dist_dir() -> Path:
    """Folder of the Triton distribution inside the installed nvidia-pytriton wheel."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise ServerStartError("nvidia-pytriton is not installed: it ships the tritonserver binary")
    dist = Path(next(iter(spec.submodule_search_locations))) / "tritonserver"
    if not (dist / "bin" / "tritonserver").is_file():
        raise ServerStartError(f"no tritonserver binary under {dist}/bin")
    return dist


def assemble_backend_dir(target: Path) -> Path:
    """Build `<target>/python/` = the Python backend library + the stub for this interpreter's version."""
    dist = pytriton_dist_dir()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = dist / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise ServerStartError(f"nvidia-pytriton has no Python backend stub for Python {version} ({stub})")
    python_dir = target / "python"
    python_dir.mkdir(parents=True, exist_ok=True)
    for source in [*(dist / "backends" / "python").iterdir(), stub]:
        link = python_dir / source.name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(source)
    return target


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on host:port (a socket in TIME_WAIT does not count, as for tritonserver)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def check_ports_free(host: str, ports: dict[str, int]) -> None:
    """Refuse busy ports before starting: tritonserver would exit, and whatever holds the port would answer."""
    for label, port in ports.items():
        if not port_is_free(host, port):
            option = PORT_OPTIONS.get(label, "the port option")
            raise PortBusyError(
                f"port {port} ({label}) on {host} is already in use; pass {option} 0 to pick a free port "
                f"or {option} N for another one"
            )


def export_ids(repository: Path) -> dict[str, str]:
    """model name -> the export id in its config.pbtxt (models exported without one are left out)."""
    ids = {}
    for config in sorted(Path(repository).glob("*/config.pbtxt")):
        for line in config.read_text().splitlines():
            if f'"{EXPORT_ID_KEY}"' in line and "string_value:" in line:
                ids[config.parent.name] = line.split("string_value:")[1].split('"')[1]
    return ids


def identity_problem(http_url: str, repository: Path, timeout_s: float = 5.0) -> str | None:
    """None when the server on `http_url` serves this repository's exports; else what differs.

    Readiness probes accept any Triton on the port; the export id in each model's config is ours alone.
    """
    import json

    for name, expected in export_ids(repository).items():
        url = f"http://{http_url}/v2/models/{name}/config"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                served = json.loads(response.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError) as err:
            return f"the server on {http_url} does not serve model {name!r} of {repository} ({err})"
        got = served.get("parameters", {}).get(EXPORT_ID_KEY, {}).get("string_value")
        if got != expected:
            return (
                f"the server on {http_url} is not ours: model {name!r} has export id {got!r}, "
                f"{repository} has {expected!r}"
            )
    return None


def stub_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for tritonserver so its Python stub runs this interpreter's environment."""
    env = dict(os.environ if base is None else base)
    libdir = sysconfig.get_config_var("LIBDIR")
    wheel_libs = pytriton_dist_dir().parents[1] / "nvidia_pytriton.libs"
    ld_paths = [p for p in (libdir, str(wheel_libs), env.get("LD_LIBRARY_PATH")) if p]
    env["LD_LIBRARY_PATH"] = os.pathsep.join(ld_paths)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


@dataclass
class ServerConfig:
    """How to start tritonserver; a port of None means pick a free one."""

    repository: Path
    http_port: int | None = 8000
    grpc_port: int | None = 8001
    metrics_port: int | None = 8002
    host: str = "127.0.0.1"
    work_dir: Path | None = None  # backend dir + log; a temp dir when None
    startup_timeout_s: float = 180.0
    exit_timeout_s: int = 15
    log_verbose: int = 0
    extra_args: list[str] = field(default_factory=list)


class LocalTritonServer:
    """Context manager around one tritonserver process.

    >>> with LocalTritonServer(ServerConfig(Path("work/repository"), http_port=None)) as server:
    ...     print(server.http_url)
    """

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.http_port = config.http_port or free_port()
        self.grpc_port = config.grpc_port or free_port()
        self.metrics_port = config.metrics_port or free_port()
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._process: subprocess.Popen | None = None
        self._log_file = None
        self.work_dir: Path | None = None

    # addresses -------------------------------------------------------------------------------
    @property
    def http_url(self) -> str:
        return f"{self.config.host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.config.host}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.config.host}:{self.metrics_port}/metrics"

    @property
    def log_path(self) -> Path:
        assert self.work_dir is not None, "server not started"
        return self.work_dir / "tritonserver.log"

    # lifecycle -------------------------------------------------------------------------------
    def command(self, backend_dir: Path) -> list[str]:
        cfg = self.config
        return [
            str(pytriton_dist_dir() / "bin" / "tritonserver"),
            f"--model-repository={Path(cfg.repository).resolve()}",
            f"--backend-directory={backend_dir}",
            f"--http-address={cfg.host}",
            f"--http-port={self.http_port}",
            f"--grpc-address={cfg.host}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-address={cfg.host}",
            f"--metrics-port={self.metrics_port}",
            "--allow-metrics=true",
            f"--exit-timeout-secs={cfg.exit_timeout_s}",
            f"--log-verbose={cfg.log_verbose}",
            # The CPU default host has no GPU; do not fail start-up on a missing CUDA driver.
            "--min-supported-compute-capability=0",
            "--strict-readiness=true",
            *cfg.extra_args,
        ]

    def start(self) -> LocalTritonServer:
        repository = Path(self.config.repository)
        if not repository.is_dir():
            raise ServerStartError(f"model repository {repository} does not exist")
        work = self.config.work_dir
        if work is not None and Path(work).resolve().is_relative_to(repository.resolve()):
            raise ServerStartError(
                f"work folder {work} is inside the model repository {repository}: Triton would poll "
                "its files as models; pass --work outside it"
            )
        check_ports_free(
            self.config.host, {"HTTP": self.http_port, "gRPC": self.grpc_port, "metrics": self.metrics_port}
        )
        if work is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="alchemist-triton-")
            self.work_dir = Path(self._tmp.name)
        else:
            self.work_dir = Path(work)
            self.work_dir.mkdir(parents=True, exist_ok=True)
        backend_dir = assemble_backend_dir(self.work_dir / "backends")
        self._log_file = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self._process = subprocess.Popen(
            self.command(backend_dir),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=stub_environment(),
            start_new_session=True,  # Ctrl-C in a terminal reaches us; we stop the server in order
        )
        try:
            self.wait_ready(self.config.startup_timeout_s)
            self.check_ours()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout_s: float) -> None:
        """Poll /v2/health/ready until it answers 200; fail early if the process dies."""
        deadline = time.monotonic() + timeout_s
        url = f"http://{self.http_url}/v2/health/ready"
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise ServerStartError(
                    f"tritonserver exited with code {self._process.returncode} during start-up:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.25)
        raise ServerStartError(f"tritonserver not ready after {timeout_s:.0f} s:\n{self.log_tail()}")

    def check_ours(self) -> None:
        """After "ready": our process still runs and the answering server serves our repository's exports."""
        if not self.is_running():
            raise ServerStartError(f"tritonserver exited right after start-up:\n{self.log_tail()}")
        problem = identity_problem(self.http_url, Path(self.config.repository))
        if problem:
            raise ServerStartError(problem)

    def log_tail(self, lines: int = 20) -> str:
        """Error lines of the log when there are any (the tail is mostly a settings table), else the tail."""
        if self.work_dir is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace").splitlines()
        errors = [
            line
            for line in text
            if (line.startswith("E") or line.lower().startswith("error"))
            and not any(noise in line for noise in _CPU_HOST_NOISE)
        ]
        return "\n".join((errors or text)[-lines:])

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def wait(self) -> int:
        """Block until the server exits on its own; return its exit code."""
        assert self._process is not None, "server not started"
        return self._process.wait()

    def stop(self) -> int | None:
        """SIGINT lets Triton finish in-flight requests and unload models; SIGKILL if it hangs."""
        code = None
        if self._process is not None:
            if self._process.poll() is None:
                self._process.send_signal(signal.SIGINT)
                try:
                    self._process.wait(timeout=self.config.exit_timeout_s + 10)
                except subprocess.TimeoutExpired:
                    os.killpg(self._process.pid, signal.SIGKILL)
                    self._process.wait()
            code = self._process.returncode
            self._process = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp.name, ignore_errors=True)
            self._tmp = None
        return code

    def __enter__(self) -> LocalTritonServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
