from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar

from attrs import define as _attrs_define

if TYPE_CHECKING:
    from ..models.attempt_event import AttemptEvent


T = TypeVar("T", bound="ReportRequest")


@_attrs_define
class ReportRequest:
    """`POST /v1/agent/report`.

    Attributes:
        events (list[AttemptEvent]):
        node_id (str):
    """

    events: list[AttemptEvent]
    node_id: str

    def to_dict(self) -> dict[str, Any]:
        events = []
        for events_item_data in self.events:
            events_item = events_item_data.to_dict()
            events.append(events_item)

        node_id = self.node_id

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "events": events,
                "node_id": node_id,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.attempt_event import AttemptEvent

        d = dict(src_dict)
        events = []
        _events = d.pop("events")
        for events_item_data in _events:
            events_item = AttemptEvent.from_dict(events_item_data)

            events.append(events_item)

        node_id = d.pop("node_id")

        report_request = cls(
            events=events,
            node_id=node_id,
        )

        return report_request
