from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar

from attrs import define as _attrs_define

if TYPE_CHECKING:
    from ..models.log_chunk import LogChunk


T = TypeVar("T", bound="LogAppendRequest")


@_attrs_define
class LogAppendRequest:
    """`POST /v1/agent/logs`.

    Attributes:
        chunks (list[LogChunk]):
        node_id (str):
    """

    chunks: list[LogChunk]
    node_id: str

    def to_dict(self) -> dict[str, Any]:
        chunks = []
        for chunks_item_data in self.chunks:
            chunks_item = chunks_item_data.to_dict()
            chunks.append(chunks_item)

        node_id = self.node_id

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "chunks": chunks,
                "node_id": node_id,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.log_chunk import LogChunk

        d = dict(src_dict)
        chunks = []
        _chunks = d.pop("chunks")
        for chunks_item_data in _chunks:
            chunks_item = LogChunk.from_dict(chunks_item_data)

            chunks.append(chunks_item)

        node_id = d.pop("node_id")

        log_append_request = cls(
            chunks=chunks,
            node_id=node_id,
        )

        return log_append_request
