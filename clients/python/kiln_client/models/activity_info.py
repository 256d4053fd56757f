from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="ActivityInfo")


@_attrs_define
class ActivityInfo:
    """A scaling activity, in the shape of Tencent's `DescribeComputeEnvActivities`.

    Attributes:
        activity_id (str):
        activity_state (str): `SUBMITTED`, `PROCESSING`, `SUCCEED` or `FAILED`.
        cause (str): Why the scaler did it.
        compute_node_activity_type (str): `CREATE_COMPUTE_NODE` or `TERMINATE_COMPUTE_NODE`.
        env_id (str):
        start_time (str): RFC 3339.
        compute_node_id (None | str | Unset): The node made or removed (absent while a node being made has not
            registered).
        end_time (None | str | Unset): RFC 3339, once it ended.
        instance_id (None | str | Unset): What the provider made: the Slurm job id, the container or the process id.
        state_reason (None | str | Unset): Why it is in that state (e.g. Slurm's refusal).
    """

    activity_id: str
    activity_state: str
    cause: str
    compute_node_activity_type: str
    env_id: str
    start_time: str
    compute_node_id: None | str | Unset = UNSET
    end_time: None | str | Unset = UNSET
    instance_id: None | str | Unset = UNSET
    state_reason: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        activity_id = self.activity_id

        activity_state = self.activity_state

        cause = self.cause

        compute_node_activity_type = self.compute_node_activity_type

        env_id = self.env_id

        start_time = self.start_time

        compute_node_id: None | str | Unset
        if isinstance(self.compute_node_id, Unset):
            compute_node_id = UNSET
        else:
            compute_node_id = self.compute_node_id

        end_time: None | str | Unset
        if isinstance(self.end_time, Unset):
            end_time = UNSET
        else:
            end_time = self.end_time

        instance_id: None | str | Unset
        if isinstance(self.instance_id, Unset):
            instance_id = UNSET
        else:
            instance_id = self.instance_id

        state_reason: None | str | Unset
        if isinstance(self.state_reason, Unset):
            state_reason = UNSET
        else:
            state_reason = self.state_reason

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "activity_id": activity_id,
                "activity_state": activity_state,
                "cause": cause,
                "compute_node_activity_type": compute_node_activity_type,
                "env_id": env_id,
                "start_time": start_time,
            }
        )
        if compute_node_id is not UNSET:
            field_dict["compute_node_id"] = compute_node_id
        if end_time is not UNSET:
            field_dict["end_time"] = end_time
        if instance_id is not UNSET:
            field_dict["instance_id"] = instance_id
        if state_reason is not UNSET:
            field_dict["state_reason"] = state_reason

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        activity_id = d.pop("activity_id")

        activity_state = d.pop("activity_state")

        cause = d.pop("cause")

        compute_node_activity_type = d.pop("compute_node_activity_type")

        env_id = d.pop("env_id")

        start_time = d.pop("start_time")

        def _parse_compute_node_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        compute_node_id = _parse_compute_node_id(d.pop("compute_node_id", UNSET))

        def _parse_end_time(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        end_time = _parse_end_time(d.pop("end_time", UNSET))

        def _parse_instance_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        instance_id = _parse_instance_id(d.pop("instance_id", UNSET))

        def _parse_state_reason(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        state_reason = _parse_state_reason(d.pop("state_reason", UNSET))

        activity_info = cls(
            activity_id=activity_id,
            activity_state=activity_state,
            cause=cause,
            compute_node_activity_type=compute_node_activity_type,
            env_id=env_id,
            start_time=start_time,
            compute_node_id=compute_node_id,
            end_time=end_time,
            instance_id=instance_id,
            state_reason=state_reason,
        )

        activity_info.additional_properties = d
        return activity_info

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
