from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="NodeInfo")


@_attrs_define
class NodeInfo:
    """One node in `GET /v1/nodes`.

    Attributes:
        cpus (float):
        id (str):
        memory (int): Bytes.
        name (str):
        running (int): Attempts running on the node now.
        slots (int):
        state (str): `CREATING`, `RUNNING`, `ABNORMAL`, `DELETING`, …
        compute_env (None | str | Unset):
        last_seen (None | str | Unset): RFC 3339 time of the last heartbeat.
    """

    cpus: float
    id: str
    memory: int
    name: str
    running: int
    slots: int
    state: str
    compute_env: None | str | Unset = UNSET
    last_seen: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        cpus = self.cpus

        id = self.id

        memory = self.memory

        name = self.name

        running = self.running

        slots = self.slots

        state = self.state

        compute_env: None | str | Unset
        if isinstance(self.compute_env, Unset):
            compute_env = UNSET
        else:
            compute_env = self.compute_env

        last_seen: None | str | Unset
        if isinstance(self.last_seen, Unset):
            last_seen = UNSET
        else:
            last_seen = self.last_seen

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "cpus": cpus,
                "id": id,
                "memory": memory,
                "name": name,
                "running": running,
                "slots": slots,
                "state": state,
            }
        )
        if compute_env is not UNSET:
            field_dict["compute_env"] = compute_env
        if last_seen is not UNSET:
            field_dict["last_seen"] = last_seen

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        cpus = d.pop("cpus")

        id = d.pop("id")

        memory = d.pop("memory")

        name = d.pop("name")

        running = d.pop("running")

        slots = d.pop("slots")

        state = d.pop("state")

        def _parse_compute_env(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        compute_env = _parse_compute_env(d.pop("compute_env", UNSET))

        def _parse_last_seen(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        last_seen = _parse_last_seen(d.pop("last_seen", UNSET))

        node_info = cls(
            cpus=cpus,
            id=id,
            memory=memory,
            name=name,
            running=running,
            slots=slots,
            state=state,
            compute_env=compute_env,
            last_seen=last_seen,
        )

        node_info.additional_properties = d
        return node_info

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
