from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.attempt_event_kind_type_5_type import AttemptEventKindType5Type

T = TypeVar("T", bound="AttemptEventKindType5")


@_attrs_define
class AttemptEventKindType5:
    """It could not be started; `resource` is true when the node lacked something (a retry
    elsewhere may succeed, and spends `resource_retries`), false for a bad command.

        Attributes:
            message (str):
            resource (bool):
            type_ (AttemptEventKindType5Type):
    """

    message: str
    resource: bool
    type_: AttemptEventKindType5Type
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        message = self.message

        resource = self.resource

        type_ = self.type_.value

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "message": message,
                "resource": resource,
                "type": type_,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        message = d.pop("message")

        resource = d.pop("resource")

        type_ = AttemptEventKindType5Type(d.pop("type"))

        attempt_event_kind_type_5 = cls(
            message=message,
            resource=resource,
            type_=type_,
        )

        attempt_event_kind_type_5.additional_properties = d
        return attempt_event_kind_type_5

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
