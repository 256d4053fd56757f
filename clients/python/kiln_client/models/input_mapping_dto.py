from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="InputMappingDto")


@_attrs_define
class InputMappingDto:
    """`source` (a storage URL) made available at `target` (a path in the working directory).

    Attributes:
        source (str):
        target (str):
    """

    source: str
    target: str

    def to_dict(self) -> dict[str, Any]:
        source = self.source

        target = self.target

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "source": source,
                "target": target,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        source = d.pop("source")

        target = d.pop("target")

        input_mapping_dto = cls(
            source=source,
            target=target,
        )

        return input_mapping_dto
