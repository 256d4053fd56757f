from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar

from attrs import define as _attrs_define

if TYPE_CHECKING:
    from ..models.attempt_key import AttemptKey


T = TypeVar("T", bound="LogChunk")


@_attrs_define
class LogChunk:
    """A piece of an attempt's output.

    Attributes:
        data_b64 (str): The bytes, base64 (standard alphabet, padded, no stray bits in the last character).
        key (AttemptKey): Names one attempt of one task instance. (It travels in answers too, so it tolerates unknown
            fields; the request bodies around it do not.)
        offset (int): Byte offset of the chunk's first byte in its stream.
        stream (str): `stdout` or `stderr`.
    """

    data_b64: str
    key: AttemptKey
    offset: int
    stream: str

    def to_dict(self) -> dict[str, Any]:
        data_b64 = self.data_b64

        key = self.key.to_dict()

        offset = self.offset

        stream = self.stream

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "data_b64": data_b64,
                "key": key,
                "offset": offset,
                "stream": stream,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.attempt_key import AttemptKey

        d = dict(src_dict)
        data_b64 = d.pop("data_b64")

        key = AttemptKey.from_dict(d.pop("key"))

        offset = d.pop("offset")

        stream = d.pop("stream")

        log_chunk = cls(
            data_b64=data_b64,
            key=key,
            offset=offset,
            stream=stream,
        )

        return log_chunk
