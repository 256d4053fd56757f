from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.attempt_event_kind_type_1_type import AttemptEventKindType1Type

T = TypeVar("T", bound="AttemptEventKindType1")


@_attrs_define
class AttemptEventKindType1:
    """The process exited by itself with this code.

    Attributes:
        code (int):
        type_ (AttemptEventKindType1Type):
    """

    code: int
    type_: AttemptEventKindType1Type
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        code = self.code

        type_ = self.type_.value

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "code": code,
                "type": type_,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        code = d.pop("code")

        type_ = AttemptEventKindType1Type(d.pop("type"))

        attempt_event_kind_type_1 = cls(
            code=code,
            type_=type_,
        )

        attempt_event_kind_type_1.additional_properties = d
        return attempt_event_kind_type_1

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
