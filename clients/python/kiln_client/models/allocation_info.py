from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="AllocationInfo")


@_attrs_define
class AllocationInfo:
    """One allocation of a `slurm` environment: a Slurm job running agents.

    Attributes:
        job_id (str): The Slurm job id.
        registered (int): Of those, how many have registered.
        state (str): Slurm's state (`PENDING`, `RUNNING`, `COMPLETING`, …).
        submitted_at (str): RFC 3339: when it was submitted.
        workers (int): Agents the allocation starts.
        ends_at (None | str | Unset): RFC 3339: when Slurm ends it, once it runs (its time limit).
        reason (None | str | Unset): Slurm's reason (`Resources`, `Priority`, …), if it gives one.
    """

    job_id: str
    registered: int
    state: str
    submitted_at: str
    workers: int
    ends_at: None | str | Unset = UNSET
    reason: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        job_id = self.job_id

        registered = self.registered

        state = self.state

        submitted_at = self.submitted_at

        workers = self.workers

        ends_at: None | str | Unset
        if isinstance(self.ends_at, Unset):
            ends_at = UNSET
        else:
            ends_at = self.ends_at

        reason: None | str | Unset
        if isinstance(self.reason, Unset):
            reason = UNSET
        else:
            reason = self.reason

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "job_id": job_id,
                "registered": registered,
                "state": state,
                "submitted_at": submitted_at,
                "workers": workers,
            }
        )
        if ends_at is not UNSET:
            field_dict["ends_at"] = ends_at
        if reason is not UNSET:
            field_dict["reason"] = reason

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        job_id = d.pop("job_id")

        registered = d.pop("registered")

        state = d.pop("state")

        submitted_at = d.pop("submitted_at")

        workers = d.pop("workers")

        def _parse_ends_at(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        ends_at = _parse_ends_at(d.pop("ends_at", UNSET))

        def _parse_reason(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        reason = _parse_reason(d.pop("reason", UNSET))

        allocation_info = cls(
            job_id=job_id,
            registered=registered,
            state=state,
            submitted_at=submitted_at,
            workers=workers,
            ends_at=ends_at,
            reason=reason,
        )

        allocation_info.additional_properties = d
        return allocation_info

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
