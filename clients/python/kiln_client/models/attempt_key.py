from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="AttemptKey")


@_attrs_define
class AttemptKey:
    """Names one attempt of one task instance. (It travels in answers too, so it tolerates unknown
    fields; the request bodies around it do not.)

        Attributes:
            attempt (int): 1-based attempt number.
            index (int): 0-based instance index.
            job (str): The job id (`job-…`).
            task (str):
    """

    attempt: int
    index: int
    job: str
    task: str
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        attempt = self.attempt

        index = self.index

        job = self.job

        task = self.task

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "attempt": attempt,
                "index": index,
                "job": job,
                "task": task,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        attempt = d.pop("attempt")

        index = d.pop("index")

        job = d.pop("job")

        task = d.pop("task")

        attempt_key = cls(
            attempt=attempt,
            index=index,
            job=job,
            task=task,
        )

        attempt_key.additional_properties = d
        return attempt_key

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
