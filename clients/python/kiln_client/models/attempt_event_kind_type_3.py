from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.attempt_event_kind_type_3_type import AttemptEventKindType3Type

T = TypeVar("T", bound="AttemptEventKindType3")


@_attrs_define
class AttemptEventKindType3:
    """Kiln killed it at its `timeout`.

    Attributes:
        type_ (AttemptEventKindType3Type):
    """

    type_: AttemptEventKindType3Type
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        type_ = self.type_.value

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "type": type_,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        type_ = AttemptEventKindType3Type(d.pop("type"))

        attempt_event_kind_type_3 = cls(
            type_=type_,
        )

        attempt_event_kind_type_3.additional_properties = d
        return attempt_event_kind_type_3

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
