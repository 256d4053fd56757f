from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="InputMappingDto")


@_attrs_define
class InputMappingDto:
    """`source` (a storage URL) made available at `target` (a path in the working directory).

    Attributes:
        source (str):
        target (str):
        profile (None | str | Unset): The storage profile of this mapping (one of the assignment's `storage`).
    """

    source: str
    target: str
    profile: None | str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        source = self.source

        target = self.target

        profile: None | str | Unset
        if isinstance(self.profile, Unset):
            profile = UNSET
        else:
            profile = self.profile

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "source": source,
                "target": target,
            }
        )
        if profile is not UNSET:
            field_dict["profile"] = profile

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        source = d.pop("source")

        target = d.pop("target")

        def _parse_profile(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        profile = _parse_profile(d.pop("profile", UNSET))

        input_mapping_dto = cls(
            source=source,
            target=target,
            profile=profile,
        )

        return input_mapping_dto
