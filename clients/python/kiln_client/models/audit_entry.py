from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="AuditEntry")


@_attrs_define
class AuditEntry:
    """One state-changing API call, as the audit log keeps it.

    Attributes:
        action (str): The method and route, e.g. `POST /v1/jobs/{id}/terminate`.
        at (str): RFC 3339.
        object_ (str): What it was about, e.g. `job/job-4yn0we13` or the request's path.
        result (int): The HTTP status answered.
        seq (int):
        token (str): The name of the token that called (`admin`: the data directory's admin token; `-`: no
            valid token).
        project (None | str | Unset): The caller's project.
    """

    action: str
    at: str
    object_: str
    result: int
    seq: int
    token: str
    project: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        action = self.action

        at = self.at

        object_ = self.object_

        result = self.result

        seq = self.seq

        token = self.token

        project: None | str | Unset
        if isinstance(self.project, Unset):
            project = UNSET
        else:
            project = self.project

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "action": action,
                "at": at,
                "object": object_,
                "result": result,
                "seq": seq,
                "token": token,
            }
        )
        if project is not UNSET:
            field_dict["project"] = project

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        action = d.pop("action")

        at = d.pop("at")

        object_ = d.pop("object")

        result = d.pop("result")

        seq = d.pop("seq")

        token = d.pop("token")

        def _parse_project(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        project = _parse_project(d.pop("project", UNSET))

        audit_entry = cls(
            action=action,
            at=at,
            object_=object_,
            result=result,
            seq=seq,
            token=token,
            project=project,
        )

        audit_entry.additional_properties = d
        return audit_entry

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
