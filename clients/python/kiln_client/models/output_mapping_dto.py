from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="OutputMappingDto")


@_attrs_define
class OutputMappingDto:
    """`source` (a local path) uploaded to `target` (a storage URL) `when`: success|failure|always.

    Attributes:
        source (str):
        target (str):
        when (str):
    """

    source: str
    target: str
    when: str

    def to_dict(self) -> dict[str, Any]:
        source = self.source

        target = self.target

        when = self.when

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "source": source,
                "target": target,
                "when": when,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        source = d.pop("source")

        target = d.pop("target")

        when = d.pop("when")

        output_mapping_dto = cls(
            source=source,
            target=target,
            when=when,
        )

        return output_mapping_dto
