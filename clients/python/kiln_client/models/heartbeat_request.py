from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.attempt_key import AttemptKey


T = TypeVar("T", bound="HeartbeatRequest")


@_attrs_define
class HeartbeatRequest:
    """`POST /v1/agent/heartbeat`.

    Attributes:
        node_id (str):
        leaving (bool | Unset): The agent is going away now (its allocation ends, or it was told to stop there): the
            attempts it holds are lost (`NODE_LOST`, not counted against `retries`) and run again
            elsewhere; it kills them itself.
        running (list[AttemptKey] | Unset):
    """

    node_id: str
    leaving: bool | Unset = UNSET
    running: list[AttemptKey] | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        node_id = self.node_id

        leaving = self.leaving

        running: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.running, Unset):
            running = []
            for running_item_data in self.running:
                running_item = running_item_data.to_dict()
                running.append(running_item)

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "node_id": node_id,
            }
        )
        if leaving is not UNSET:
            field_dict["leaving"] = leaving
        if running is not UNSET:
            field_dict["running"] = running

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.attempt_key import AttemptKey

        d = dict(src_dict)
        node_id = d.pop("node_id")

        leaving = d.pop("leaving", UNSET)

        _running = d.pop("running", UNSET)
        running: list[AttemptKey] | Unset = UNSET
        if _running is not UNSET:
            running = []
            for running_item_data in _running:
                running_item = AttemptKey.from_dict(running_item_data)

                running.append(running_item)

        heartbeat_request = cls(
            node_id=node_id,
            leaving=leaving,
            running=running,
        )

        return heartbeat_request
