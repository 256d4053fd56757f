from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="StorageProfile")


@_attrs_define
class StorageProfile:
    """A storage profile as read back: its secret fields are `***`.

    Attributes:
        created_at (str): RFC 3339.
        default (bool):
        kind (str):
        name (str):
        path_style (bool):
        access_key_id (str | Unset): `s3`, `cos`: the key's id; absent for `docker-registry`.
        endpoint (None | str | Unset):
        password (None | str | Unset): `docker-registry`: always `***`.
        region (None | str | Unset):
        secret_access_key (str | Unset): `s3`, `cos`: always `***`; absent for `docker-registry`.
        server (None | str | Unset): `docker-registry`: the registry's host.
        session_token (None | str | Unset): `***` when the profile has one.
        username (None | str | Unset): `docker-registry`: the login's user name.
    """

    created_at: str
    default: bool
    kind: str
    name: str
    path_style: bool
    access_key_id: str | Unset = UNSET
    endpoint: None | str | Unset = UNSET
    password: None | str | Unset = UNSET
    region: None | str | Unset = UNSET
    secret_access_key: str | Unset = UNSET
    server: None | str | Unset = UNSET
    session_token: None | str | Unset = UNSET
    username: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        created_at = self.created_at

        default = self.default

        kind = self.kind

        name = self.name

        path_style = self.path_style

        access_key_id = self.access_key_id

        endpoint: None | str | Unset
        if isinstance(self.endpoint, Unset):
            endpoint = UNSET
        else:
            endpoint = self.endpoint

        password: None | str | Unset
        if isinstance(self.password, Unset):
            password = UNSET
        else:
            password = self.password

        region: None | str | Unset
        if isinstance(self.region, Unset):
            region = UNSET
        else:
            region = self.region

        secret_access_key = self.secret_access_key

        server: None | str | Unset
        if isinstance(self.server, Unset):
            server = UNSET
        else:
            server = self.server

        session_token: None | str | Unset
        if isinstance(self.session_token, Unset):
            session_token = UNSET
        else:
            session_token = self.session_token

        username: None | str | Unset
        if isinstance(self.username, Unset):
            username = UNSET
        else:
            username = self.username

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "created_at": created_at,
                "default": default,
                "kind": kind,
                "name": name,
                "path_style": path_style,
            }
        )
        if access_key_id is not UNSET:
            field_dict["access_key_id"] = access_key_id
        if endpoint is not UNSET:
            field_dict["endpoint"] = endpoint
        if password is not UNSET:
            field_dict["password"] = password
        if region is not UNSET:
            field_dict["region"] = region
        if secret_access_key is not UNSET:
            field_dict["secret_access_key"] = secret_access_key
        if server is not UNSET:
            field_dict["server"] = server
        if session_token is not UNSET:
            field_dict["session_token"] = session_token
        if username is not UNSET:
            field_dict["username"] = username

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        created_at = d.pop("created_at")

        default = d.pop("default")

        kind = d.pop("kind")

        name = d.pop("name")

        path_style = d.pop("path_style")

        access_key_id = d.pop("access_key_id", UNSET)

        def _parse_endpoint(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        endpoint = _parse_endpoint(d.pop("endpoint", UNSET))

        def _parse_password(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        password = _parse_password(d.pop("password", UNSET))

        def _parse_region(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        region = _parse_region(d.pop("region", UNSET))

        secret_access_key = d.pop("secret_access_key", UNSET)

        def _parse_server(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        server = _parse_server(d.pop("server", UNSET))

        def _parse_session_token(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        session_token = _parse_session_token(d.pop("session_token", UNSET))

        def _parse_username(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        username = _parse_username(d.pop("username", UNSET))

        storage_profile = cls(
            created_at=created_at,
            default=default,
            kind=kind,
            name=name,
            path_style=path_style,
            access_key_id=access_key_id,
            endpoint=endpoint,
            password=password,
            region=region,
            secret_access_key=secret_access_key,
            server=server,
            session_token=session_token,
            username=username,
        )

        storage_profile.additional_properties = d
        return storage_profile

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
