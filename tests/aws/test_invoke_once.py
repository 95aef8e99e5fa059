"""A Lambda invoke is made exactly once (txpipe_cli/aws/client.py: AwsClient.invoke, invoke_client).

boto3's default client waits 60 s for an answer and then sends the request again, as it does after a
dropped connection or a 5xx: a sync or a migration that ran past a minute ran twice. Here a real HTTP
server on 127.0.0.1 stands in for Lambda's endpoint (AWS_ENDPOINT_URL_LAMBDA), the real botocore client
talks to it, and the server counts the Invoke requests that reach it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, ConnectionClosedError

from lambdas.functions import FUNCTIONS
from txpipe_cli.aws.client import INVOKE_MARGIN, AwsClient
from txpipe_cli.aws.target import AwsTarget
from txpipe_cli.errors import TxpipeError

Answer = Callable[[BaseHTTPRequestHandler], None]
STAGE = "dev"


class LambdaEndpoint(ThreadingHTTPServer):
    """Lambda's endpoint on loopback: records each request's path and answers it with `answer`."""

    daemon_threads = True

    def __init__(self, answer: Answer) -> None:
        self.answer, self.requests = answer, []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.server.requests.append(self.path)  # type: ignore[attr-defined]
                self.server.answer(self)  # type: ignore[attr-defined]

            def log_message(self, *_: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def handle_error(self, *_: Any) -> None:
        pass  # a late answer to a client that stopped waiting: a broken pipe, expected here

    @property
    def invokes(self) -> int:
        return sum(path.endswith("/invocations") for path in self.requests)


def drop(handler: BaseHTTPRequestHandler) -> None:
    """Reads the request and closes the connection without a word: a connection lost mid-invoke."""
    handler.close_connection = True


def service_error(handler: BaseHTTPRequestHandler) -> None:
    """Lambda's own 500 (ServiceException), which boto3 counts as transient."""
    body = json.dumps({"Type": "Service", "message": "internal failure"}).encode()
    handler.send_response(500)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("x-amzn-ErrorType", "ServiceException")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def answer_after(seconds: float, result: dict[str, Any]) -> Answer:
    """A function that runs `seconds`, then returns `result`."""
    def answer(handler: BaseHTTPRequestHandler) -> None:
        time.sleep(seconds)
        body = json.dumps(result).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("X-Amz-Executed-Version", "$LATEST")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return answer


@pytest.fixture
def lambda_at(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Callable[[Answer], LambdaEndpoint]]:
    """Starts a LambdaEndpoint and points boto3's Lambda endpoint at it; nothing else configured (no profile,
    no config file, no retry settings), so a default client is boto3's default."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    servers: list[LambdaEndpoint] = []

    def start(answer: Answer) -> LambdaEndpoint:
        servers.append(LambdaEndpoint(answer))
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", f"http://127.0.0.1:{servers[-1].server_port}")
        return servers[-1]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def session() -> boto3.session.Session:
    return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                 region_name="us-east-1")


def deployed(tmp_path: Path, aws: AwsClient) -> AwsTarget:
    """The AWS target with a deployment recorded (its functions are found by name)."""
    (tmp_path / f"aws-{STAGE}.json").write_text(json.dumps({"stack": f"txpipe-{STAGE}", "stage": STAGE}))
    return AwsTarget(tmp_path, STAGE, aws)


@pytest.mark.parametrize("answer", [drop, service_error], ids=["connection-dropped", "status-500"])
def test_a_failed_invoke_is_not_sent_again(lambda_at: Callable[[Answer], LambdaEndpoint], tmp_path: Path,
                                           answer: Answer) -> None:
    """The connection drops, or Lambda answers 500: boto3's default client sends the Invoke again (3 in
    all, its standard retry mode); the target sends it once and says the function may have run."""
    endpoint = lambda_at(answer)
    with pytest.raises((ConnectionClosedError, ClientError)):
        session().client("lambda").invoke(FunctionName=f"txpipe-{STAGE}-sync", Payload=b"{}")
    sent_by_default = endpoint.invokes
    assert sent_by_default > 1  # the setup this test relies on: the default would have invoked again

    endpoint.requests.clear()
    with pytest.raises(TxpipeError) as raised:
        deployed(tmp_path, AwsClient(session())).invoke("sync", {"source": "txpipe.sync-now"})
    assert endpoint.invokes == 1, f"sent {endpoint.invokes} times (boto3's default: {sent_by_default})"
    if answer is drop:
        assert raised.value.reason == (f"the connection closed before function txpipe-{STAGE}-sync answered; it may "
                                       "have run, and was not invoked again")
    else:
        assert raised.value.reason == "AWS lambda.invoke failed: ServiceException: internal failure"


def test_an_answer_after_the_function_timeout_is_awaited_once(
        lambda_at: Callable[[Answer], LambdaEndpoint]) -> None:
    """A function with a 0.5 s timeout that answers after 1.5 s (within 0.5 s + INVOKE_MARGIN): one
    request, and its result returned."""
    endpoint = lambda_at(answer_after(1.5, {"synced": 3}))
    aws = AwsClient(session())
    assert aws.invoke(f"txpipe-{STAGE}-sync", {}, function_timeout=0.5) == {"synced": 3}
    assert endpoint.invokes == 1
    assert aws.invoke_client(0.5 + INVOKE_MARGIN).meta.config.read_timeout == 30.5


def test_the_callers_wait_bounds_the_invoke(lambda_at: Callable[[Answer], LambdaEndpoint], tmp_path: Path) -> None:
    """AwsTarget.invoke(timeout=0.5) against a function that answers after 1.5 s: the wait runs out after
    one request, and the line says the function may still be running."""
    endpoint = lambda_at(answer_after(1.5, {"synced": 3}))
    with pytest.raises(TxpipeError) as raised:
        deployed(tmp_path, AwsClient(session())).invoke("sync", {}, timeout=0.5)
    assert raised.value.reason == (f"function txpipe-{STAGE}-sync did not answer within 0.5 s; it may still be "
                                   "running, and was not invoked again")
    assert endpoint.invokes == 1


def test_every_functions_invoke_outwaits_its_timeout_and_never_retries(
        lambda_at: Callable[[Answer], LambdaEndpoint], tmp_path: Path) -> None:
    """For each of the five functions, the client that made the Invoke (its meta.config, as botocore hands
    it to the call) waits longer than the function may run and makes one attempt; other calls keep
    boto3's normal retries."""
    lambda_at(answer_after(0, {}))
    used: dict[str, Any] = {}
    boto = session()
    boto.events.register("before-parameter-build.lambda.Invoke",
                         lambda params, context, **_: used.update({params["FunctionName"]: context["client_config"]}))
    aws = AwsClient(boto)
    target = deployed(tmp_path, aws)
    for name, function in FUNCTIONS.items():
        target.invoke(name, {})
        config = used[f"txpipe-{STAGE}-{name}"]
        assert config.read_timeout > function.timeout_seconds, name
        assert config.read_timeout == function.timeout_seconds + INVOKE_MARGIN, name
        assert config.retries["total_max_attempts"] == 1, name
    assert len(used) == len(FUNCTIONS) == 5
    other = aws.client("cloudformation").meta.config
    assert other.read_timeout == 60 and other.retries.get("total_max_attempts", 3) > 1
