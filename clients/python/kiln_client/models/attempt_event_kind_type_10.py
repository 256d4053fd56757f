from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.attempt_event_kind_type_10_type import AttemptEventKindType10Type

T = TypeVar("T", bound="AttemptEventKindType10")


@_attrs_define
class AttemptEventKindType10:
    """The registry refused the pull (`REF: cause`, e.g. `REF: unauthorized`).

    Attributes:
        message (str):
        type_ (AttemptEventKindType10Type):
    """

    message: str
    type_: AttemptEventKindType10Type
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        message = self.message

        type_ = self.type_.value

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "message": message,
                "type": type_,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        message = d.pop("message")

        type_ = AttemptEventKindType10Type(d.pop("type"))

        attempt_event_kind_type_10 = cls(
            message=message,
            type_=type_,
        )

        attempt_event_kind_type_10.additional_properties = d
        return attempt_event_kind_type_10

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
