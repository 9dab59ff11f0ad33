"""The launcher never reports a server that is not its own: busy ports, a foreign server, a bad work folder."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from serving.launcher import (
    EXPORT_ID_KEY,
    LocalTritonServer,
    PortBusyError,
    ServerConfig,
    ServerStartError,
    check_ports_free,
    export_ids,
    free_port,
    identity_problem,
)


def write_repository(root: Path, export_id: str) -> Path:
    model = root / "video_alchemist"
    model.mkdir(parents=True)
    (model / "config.pbtxt").write_text(
        'name: "video_alchemist"\nparameters [\n'
        f'  {{ key: "{EXPORT_ID_KEY}" value: {{ string_value: "{export_id}" }} }}\n]\n'
    )
    return root


@pytest.fixture
def foreign_server():
    """Another Triton-like server on a port: it answers readiness and serves a model with another export id."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server API
            body = json.dumps({"parameters": {EXPORT_ID_KEY: {"string_value": "someone-else"}}}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_busy_port_is_refused_with_its_number_and_option(foreign_server):
    with pytest.raises(PortBusyError, match=rf"port {foreign_server} \(HTTP\).*--http-port 0"):
        check_ports_free("127.0.0.1", {"HTTP": foreign_server})
    check_ports_free("127.0.0.1", {"HTTP": free_port()})  # a free one passes


def test_start_stops_before_launching_when_a_port_is_taken(tmp_path, foreign_server):
    repository = write_repository(tmp_path / "repo", "ours")
    config = ServerConfig(repository, http_port=foreign_server, grpc_port=None, metrics_port=None)
    server = LocalTritonServer(config)
    with pytest.raises(PortBusyError, match=str(foreign_server)):
        server.start()
    assert not server.is_running()


def test_a_foreign_server_on_the_port_is_not_taken_for_ours(tmp_path, foreign_server):
    repository = write_repository(tmp_path / "repo", "ours")
    assert export_ids(repository) == {"video_alchemist": "ours"}
    problem = identity_problem(f"127.0.0.1:{foreign_server}", repository)
    assert problem is not None and "is not ours" in problem and "someone-else" in problem


def test_our_own_export_id_is_recognised(tmp_path, foreign_server):
    repository = write_repository(tmp_path / "repo", "someone-else")
    assert identity_problem(f"127.0.0.1:{foreign_server}", repository) is None


def test_nothing_listening_is_a_problem_too(tmp_path):
    repository = write_repository(tmp_path / "repo", "ours")
    port = free_port()
    assert "does not serve" in identity_problem(f"127.0.0.1:{port}", repository, timeout_s=1)


def test_work_folder_inside_the_repository_is_refused(tmp_path):
    repository = write_repository(tmp_path / "repo", "ours")
    config = ServerConfig(repository, http_port=None, grpc_port=None, metrics_port=None, work_dir=repository)
    with pytest.raises(ServerStartError, match="inside the model repository"):
        LocalTritonServer(config).start()
    assert sorted(p.name for p in repository.iterdir()) == ["video_alchemist"]


def test_listening_socket_counts_as_busy():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(PortBusyError, match="--grpc-port"):
            check_ports_free("127.0.0.1", {"gRPC": port})


def test_serve_command_names_the_busy_port_in_one_line(tmp_path, foreign_server):
    from typer.testing import CliRunner

    from pipelines.cli import app

    repository = write_repository(tmp_path / "repo", "ours")
    args = ["serve", "--repository", str(repository), "--work", str(tmp_path / "server")]
    result = CliRunner().invoke(
        app, [*args, "--http-port", str(foreign_server), "--grpc-port", "0", "--metrics-port", "0"]
    )
    assert result.exit_code == 1
    assert f"port {foreign_server} (HTTP)" in result.output and "Traceback" not in result.output
