from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="TokenRequest")


@_attrs_define
class TokenRequest:
    """The body of `POST /v1/tokens`.

    Attributes:
        project (str): The project the token acts in.
        role (str): `viewer`, `submitter`, `operator` or `admin`.
        expires (None | str | Unset): How long the token works, e.g. `30d`, `12h` [default: until revoked]. Example:
            30d.
        name (None | str | Unset): Unique among tokens [default: a new `tok-…` name].
    """

    project: str
    role: str
    expires: None | str | Unset = UNSET
    name: None | str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        project = self.project

        role = self.role

        expires: None | str | Unset
        if isinstance(self.expires, Unset):
            expires = UNSET
        else:
            expires = self.expires

        name: None | str | Unset
        if isinstance(self.name, Unset):
            name = UNSET
        else:
            name = self.name

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "project": project,
                "role": role,
            }
        )
        if expires is not UNSET:
            field_dict["expires"] = expires
        if name is not UNSET:
            field_dict["name"] = name

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        project = d.pop("project")

        role = d.pop("role")

        def _parse_expires(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        expires = _parse_expires(d.pop("expires", UNSET))

        def _parse_name(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        name = _parse_name(d.pop("name", UNSET))

        token_request = cls(
            project=project,
            role=role,
            expires=expires,
            name=name,
        )

        return token_request
