from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.task_detail_counts import TaskDetailCounts


T = TypeVar("T", bound="TaskDetail")


@_attrs_define
class TaskDetail:
    """
    Attributes:
        instances (int): Number of instances of the task.
        name (str):
        state (str):
        counts (TaskDetailCounts | Unset): Instances per state name, e.g. `{"SUCCEED": 3, "RUNNING": 1}`; zero counts
            may be left out.
        reason (None | str | Unset):
    """

    instances: int
    name: str
    state: str
    counts: TaskDetailCounts | Unset = UNSET
    reason: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        instances = self.instances

        name = self.name

        state = self.state

        counts: dict[str, Any] | Unset = UNSET
        if not isinstance(self.counts, Unset):
            counts = self.counts.to_dict()

        reason: None | str | Unset
        if isinstance(self.reason, Unset):
            reason = UNSET
        else:
            reason = self.reason

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "instances": instances,
                "name": name,
                "state": state,
            }
        )
        if counts is not UNSET:
            field_dict["counts"] = counts
        if reason is not UNSET:
            field_dict["reason"] = reason

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.task_detail_counts import TaskDetailCounts

        d = dict(src_dict)
        instances = d.pop("instances")

        name = d.pop("name")

        state = d.pop("state")

        _counts = d.pop("counts", UNSET)
        counts: TaskDetailCounts | Unset
        if isinstance(_counts, Unset):
            counts = UNSET
        else:
            counts = TaskDetailCounts.from_dict(_counts)

        def _parse_reason(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        reason = _parse_reason(d.pop("reason", UNSET))

        task_detail = cls(
            instances=instances,
            name=name,
            state=state,
            counts=counts,
            reason=reason,
        )

        task_detail.additional_properties = d
        return task_detail

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
