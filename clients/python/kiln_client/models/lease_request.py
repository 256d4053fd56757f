from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="LeaseRequest")


@_attrs_define
class LeaseRequest:
    """`POST /v1/agent/lease`: the server answers when it has work or after `lease_wait_ms`.

    Attributes:
        max_ (int): At most this many attempts (the agent's free slots).
        node_id (str):
    """

    max_: int
    node_id: str

    def to_dict(self) -> dict[str, Any]:
        max_ = self.max_

        node_id = self.node_id

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "max": max_,
                "node_id": node_id,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        max_ = d.pop("max")

        node_id = d.pop("node_id")

        lease_request = cls(
            max_=max_,
            node_id=node_id,
        )

        return lease_request
