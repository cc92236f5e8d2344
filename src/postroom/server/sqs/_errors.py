"""SQS errors as AWS answers them in the JSON protocol.

An error is a JSON body ``{"__type": "com.amazonaws.sqs#<Shape>", "message": ...}``
with the HTTP status AWS uses, plus the ``x-amzn-query-error: <code>;<fault>``
header of query-compatible services: the SDKs pick the exception class from the
shape (``QueueDoesNotExist``) and show the query code
(``AWS.SimpleQueueService.NonExistentQueue``), as they do against AWS.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SqsError", "error"]


@dataclass(frozen=True, slots=True)
class _Kind:
    shape: str
    code: str
    status: int = 400
    namespace: str = "com.amazonaws.sqs"
    fault: str = "Sender"


_Q = "AWS.SimpleQueueService."
_CORAL = "com.amazon.coral.service"

KINDS: dict[str, _Kind] = {
    k.shape: k
    for k in (
        _Kind("QueueDoesNotExist", _Q + "NonExistentQueue"),
        _Kind("QueueNameExists", "QueueAlreadyExists"),
        _Kind("ReceiptHandleIsInvalid", "ReceiptHandleIsInvalid"),
        _Kind("MessageNotInflight", _Q + "MessageNotInflight"),
        _Kind("BatchEntryIdsNotDistinct", _Q + "BatchEntryIdsNotDistinct"),
        _Kind("EmptyBatchRequest", _Q + "EmptyBatchRequest"),
        _Kind("InvalidBatchEntryId", _Q + "InvalidBatchEntryId"),
        _Kind("TooManyEntriesInBatchRequest", _Q + "TooManyEntriesInBatchRequest"),
        _Kind("BatchRequestTooLong", _Q + "BatchRequestTooLong"),
        _Kind("UnsupportedOperation", _Q + "UnsupportedOperation"),
        _Kind("InvalidAttributeName", "InvalidAttributeName"),
        _Kind("InvalidAttributeValue", "InvalidAttributeValue"),
        _Kind("InvalidMessageContents", "InvalidMessageContents"),
        _Kind("ResourceNotFoundException", "ResourceNotFoundException", 404),
        _Kind("OverLimit", "OverLimit", 403),
        _Kind("InvalidParameterValue", "InvalidParameterValue"),
        _Kind("MissingParameter", "MissingParameter"),
        _Kind("InvalidAction", "InvalidAction"),
        _Kind("AccessDenied", "AccessDenied", 403, _CORAL),
        _Kind("InvalidClientTokenId", "InvalidClientTokenId", 403, _CORAL),
        _Kind("SignatureDoesNotMatch", "SignatureDoesNotMatch", 403, _CORAL),
        _Kind("IncompleteSignature", "IncompleteSignature", 400, _CORAL),
        _Kind("MissingAuthenticationToken", "MissingAuthenticationToken", 403, _CORAL),
        _Kind("RequestExpired", "RequestExpired", 400, _CORAL),
        _Kind("SerializationException", "SerializationException", 400, _CORAL),
        _Kind("ServiceUnavailable", "ServiceUnavailable", 503, _CORAL, "Receiver"),
        _Kind("InternalFailure", "InternalFailure", 500, _CORAL, "Receiver"),
    )
}


class SqsError(Exception):
    """An error answered in SQS's terms; ``shape`` is a key of ``KINDS``."""

    def __init__(self, shape: str, message: str) -> None:
        super().__init__(message)
        self.kind = KINDS[shape]
        self.message = message

    @property
    def status(self) -> int:
        """The HTTP status AWS answers with."""
        return self.kind.status

    def body(self) -> dict[str, str]:
        """The JSON error document."""
        return {
            "__type": f"{self.kind.namespace}#{self.kind.shape}",
            "message": self.message,
        }

    def headers(self) -> dict[str, str]:
        """The query-compatibility header the SDKs read."""
        return {"x-amzn-query-error": f"{self.kind.code};{self.kind.fault}"}


def error(shape: str, message: str) -> SqsError:
    """Build an :class:`SqsError` (for ``raise error(...)``)."""
    return SqsError(shape, message)
