"""Helpers for the moto-backed SQS tests: a call-recording client wrapper and a queue drain."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.validate import validate_parameters

REGION = "us-east-1"

# A hook gets (real_client, kwargs, call_number starting at 1) and returns the response.
SendHook = Callable[[Any, dict[str, Any], int], dict[str, Any]]


@dataclass
class RecordingClient:
    """Wraps a real (moto-backed) boto3 SQS client: records calls, lets a test rewrite send_message_batch."""

    real: Any
    send_hook: SendHook | None = None
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    responses: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def calls_to(self, name: str) -> list[dict[str, Any]]:
        return [kwargs for called, kwargs in self.calls if called == name]

    def responses_of(self, name: str) -> list[dict[str, Any]]:
        return [response for called, response in self.responses if called == name]

    def send_message_batch(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("send_message_batch", kwargs))
        number = len(self.calls_to("send_message_batch"))
        if self.send_hook is None:
            response = self.real.send_message_batch(**kwargs)
        else:
            # What the hook answers in SQS's place is held to SQS's model, as the request it answers is: a
            # stand-in may not fail (or succeed) in a way the service could not.
            operation = self.real.meta.service_model.operation_model("SendMessageBatch")
            validate_parameters(kwargs, operation.input_shape)
            response = self.send_hook(self.real, kwargs, number)
            validate_parameters({k: v for k, v in response.items() if k != "ResponseMetadata"},
                                operation.output_shape)
        self.responses.append(("send_message_batch", response))
        return response

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.real, name)
        if not callable(method):
            return method

        def recorded(**kwargs: Any) -> Any:
            self.calls.append((name, kwargs))
            response = method(**kwargs)
            self.responses.append((name, response))
            return response

        return recorded


def fail_entries(ids: set[str], *, sender_fault: bool, code: str = "InternalError",
                 on_calls: set[int] | None = None) -> SendHook:
    """A hook that withholds the entries with these Ids (on the given call numbers, default all)
    and reports them Failed; every other entry really reaches the queue."""

    def hook(real: Any, kwargs: dict[str, Any], number: int) -> dict[str, Any]:
        if on_calls is not None and number not in on_calls:
            return real.send_message_batch(**kwargs)
        kept = [e for e in kwargs["Entries"] if e["Id"] not in ids]
        withheld = [e for e in kwargs["Entries"] if e["Id"] in ids]
        response: dict[str, Any] = {"Successful": [], "Failed": []}
        if kept:
            response = dict(real.send_message_batch(**{**kwargs, "Entries": kept}))
            response.setdefault("Successful", [])
            response["Failed"] = list(response.get("Failed", []))
        for entry in withheld:
            response["Failed"].append(
                {"Id": entry["Id"], "SenderFault": sender_fault, "Code": code, "Message": f"injected {code}"}
            )
        return response

    return hook


def fail_all(*, sender_fault: bool, code: str = "InternalError") -> SendHook:
    """A hook that sends nothing and reports every entry Failed."""

    def hook(real: Any, kwargs: dict[str, Any], number: int) -> dict[str, Any]:
        return {
            "Successful": [],
            "Failed": [
                {"Id": e["Id"], "SenderFault": sender_fault, "Code": code, "Message": f"injected {code}"}
                for e in kwargs["Entries"]
            ],
        }

    return hook


def drain(client: Any, url: str) -> list[dict[str, Any]]:
    """Every message currently visible on the queue (each left in flight), via the raw client."""
    messages: list[dict[str, Any]] = []
    while True:
        batch = client.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30, AttributeNames=["All"]
        ).get("Messages", [])
        if not batch:
            return messages
        messages.extend(batch)


def bodies_on(client: Any, url: str) -> list[str]:
    return sorted(m["Body"] for m in drain(client, url))


def depth(client: Any, url: str) -> tuple[int, int]:
    attrs = client.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])
