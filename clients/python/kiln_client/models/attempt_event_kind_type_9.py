from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.attempt_event_kind_type_9_type import AttemptEventKindType9Type

T = TypeVar("T", bound="AttemptEventKindType9")


@_attrs_define
class AttemptEventKindType9:
    """The Docker image is not on the node and could not be pulled.

    Attributes:
        image (str):
        type_ (AttemptEventKindType9Type):
    """

    image: str
    type_: AttemptEventKindType9Type
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        image = self.image

        type_ = self.type_.value

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "image": image,
                "type": type_,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        image = d.pop("image")

        type_ = AttemptEventKindType9Type(d.pop("type"))

        attempt_event_kind_type_9 = cls(
            image=image,
            type_=type_,
        )

        attempt_event_kind_type_9.additional_properties = d
        return attempt_event_kind_type_9

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
