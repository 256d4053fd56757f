from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="RegisterResponse")


@_attrs_define
class RegisterResponse:
    """
    Attributes:
        heartbeat_interval_ms (int):
        lease_wait_ms (int):
        node_id (str):
        credential (None | str | Unset): This node's own credential (`kiln-node:NAME:SECRET`), the bearer token of every
            other
            agent call, when it registered with the join token. Only its digest is kept by the
            server: it is answered once, here; a later registration of the name with the join token
            replaces it. Absent when the node registered again with its credential (it stays valid).
    """

    heartbeat_interval_ms: int
    lease_wait_ms: int
    node_id: str
    credential: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        heartbeat_interval_ms = self.heartbeat_interval_ms

        lease_wait_ms = self.lease_wait_ms

        node_id = self.node_id

        credential: None | str | Unset
        if isinstance(self.credential, Unset):
            credential = UNSET
        else:
            credential = self.credential

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "heartbeat_interval_ms": heartbeat_interval_ms,
                "lease_wait_ms": lease_wait_ms,
                "node_id": node_id,
            }
        )
        if credential is not UNSET:
            field_dict["credential"] = credential

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        heartbeat_interval_ms = d.pop("heartbeat_interval_ms")

        lease_wait_ms = d.pop("lease_wait_ms")

        node_id = d.pop("node_id")

        def _parse_credential(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        credential = _parse_credential(d.pop("credential", UNSET))

        register_response = cls(
            heartbeat_interval_ms=heartbeat_interval_ms,
            lease_wait_ms=lease_wait_ms,
            node_id=node_id,
            credential=credential,
        )

        register_response.additional_properties = d
        return register_response

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> Any:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties
