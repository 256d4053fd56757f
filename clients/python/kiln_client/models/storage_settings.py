from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="StorageSettings")


@_attrs_define
class StorageSettings:
    """How to reach one storage profile's storage, secrets included: what an attempt is given
    of a storage profile. `Debug` shows neither the secret key nor the session token.

        Attributes:
            access_key_id (str):
            kind (str): `s3` or `cos`.
            name (str): The profile's name, as mappings name it.
            secret_access_key (str):
            endpoint (None | str | Unset):
            path_style (bool | Unset): Path-style requests (`ENDPOINT/BUCKET/KEY`).
            region (None | str | Unset):
            session_token (None | str | Unset):
    """

    access_key_id: str
    kind: str
    name: str
    secret_access_key: str
    endpoint: None | str | Unset = UNSET
    path_style: bool | Unset = UNSET
    region: None | str | Unset = UNSET
    session_token: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        access_key_id = self.access_key_id

        kind = self.kind

        name = self.name

        secret_access_key = self.secret_access_key

        endpoint: None | str | Unset
        if isinstance(self.endpoint, Unset):
            endpoint = UNSET
        else:
            endpoint = self.endpoint

        path_style = self.path_style

        region: None | str | Unset
        if isinstance(self.region, Unset):
            region = UNSET
        else:
            region = self.region

        session_token: None | str | Unset
        if isinstance(self.session_token, Unset):
            session_token = UNSET
        else:
            session_token = self.session_token

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "access_key_id": access_key_id,
                "kind": kind,
                "name": name,
                "secret_access_key": secret_access_key,
            }
        )
        if endpoint is not UNSET:
            field_dict["endpoint"] = endpoint
        if path_style is not UNSET:
            field_dict["path_style"] = path_style
        if region is not UNSET:
            field_dict["region"] = region
        if session_token is not UNSET:
            field_dict["session_token"] = session_token

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        access_key_id = d.pop("access_key_id")

        kind = d.pop("kind")

        name = d.pop("name")

        secret_access_key = d.pop("secret_access_key")

        def _parse_endpoint(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        endpoint = _parse_endpoint(d.pop("endpoint", UNSET))

        path_style = d.pop("path_style", UNSET)

        def _parse_region(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        region = _parse_region(d.pop("region", UNSET))

        def _parse_session_token(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        session_token = _parse_session_token(d.pop("session_token", UNSET))

        storage_settings = cls(
            access_key_id=access_key_id,
            kind=kind,
            name=name,
            secret_access_key=secret_access_key,
            endpoint=endpoint,
            path_style=path_style,
            region=region,
            session_token=session_token,
        )

        storage_settings.additional_properties = d
        return storage_settings

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
