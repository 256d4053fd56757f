from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.attempt_key import AttemptKey


T = TypeVar("T", bound="HeartbeatResponse")


@_attrs_define
class HeartbeatResponse:
    """
    Attributes:
        drain (bool | Unset): Take no new leases; finish what runs.
        kill (list[AttemptKey] | Unset): Attempts the agent must stop (and then report `stopped`).
        unknown_node (bool | Unset): The server does not know this node id: register again.
    """

    drain: bool | Unset = UNSET
    kill: list[AttemptKey] | Unset = UNSET
    unknown_node: bool | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        drain = self.drain

        kill: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.kill, Unset):
            kill = []
            for kill_item_data in self.kill:
                kill_item = kill_item_data.to_dict()
                kill.append(kill_item)

        unknown_node = self.unknown_node

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({})
        if drain is not UNSET:
            field_dict["drain"] = drain
        if kill is not UNSET:
            field_dict["kill"] = kill
        if unknown_node is not UNSET:
            field_dict["unknown_node"] = unknown_node

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.attempt_key import AttemptKey

        d = dict(src_dict)
        drain = d.pop("drain", UNSET)

        _kill = d.pop("kill", UNSET)
        kill: list[AttemptKey] | Unset = UNSET
        if _kill is not UNSET:
            kill = []
            for kill_item_data in _kill:
                kill_item = AttemptKey.from_dict(kill_item_data)

                kill.append(kill_item)

        unknown_node = d.pop("unknown_node", UNSET)

        heartbeat_response = cls(
            drain=drain,
            kill=kill,
            unknown_node=unknown_node,
        )

        heartbeat_response.additional_properties = d
        return heartbeat_response

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
