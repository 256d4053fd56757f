from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="StorageProfileSpec")


@_attrs_define
class StorageProfileSpec:
    """A storage profile as created: the body of `POST /v1/storage-profiles`, and one item of a
    `kiln run --storage-profiles` file. `secret_access_key` and `session_token` are write-only:
    no answer, log line or error carries them (reads show `***`).

        Attributes:
            access_key_id (str):
            kind (str): `s3` (AWS S3 or an S3-compatible server) or `cos` (Tencent Cloud COS). Example: s3.
            name (str):
            secret_access_key (str):
            default (bool | Unset): The profile of mappings that name none (at most one profile is the default).
            endpoint (None | str | Unset): The service's URL, e.g. `http://10.0.0.5:9000`; absent: AWS S3 / COS itself.
            path_style (bool | None | Unset): Path-style requests (`ENDPOINT/BUCKET/KEY`); default true when `endpoint` is
                given.
            region (None | str | Unset): The region to sign with; `us-east-1` when absent.
            session_token (None | str | Unset):
    """

    access_key_id: str
    kind: str
    name: str
    secret_access_key: str
    default: bool | Unset = UNSET
    endpoint: None | str | Unset = UNSET
    path_style: bool | None | Unset = UNSET
    region: None | str | Unset = UNSET
    session_token: None | str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        access_key_id = self.access_key_id

        kind = self.kind

        name = self.name

        secret_access_key = self.secret_access_key

        default = self.default

        endpoint: None | str | Unset
        if isinstance(self.endpoint, Unset):
            endpoint = UNSET
        else:
            endpoint = self.endpoint

        path_style: bool | None | Unset
        if isinstance(self.path_style, Unset):
            path_style = UNSET
        else:
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

        field_dict.update(
            {
                "access_key_id": access_key_id,
                "kind": kind,
                "name": name,
                "secret_access_key": secret_access_key,
            }
        )
        if default is not UNSET:
            field_dict["default"] = default
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

        default = d.pop("default", UNSET)

        def _parse_endpoint(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        endpoint = _parse_endpoint(d.pop("endpoint", UNSET))

        def _parse_path_style(data: object) -> bool | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(bool | None | Unset, data)

        path_style = _parse_path_style(d.pop("path_style", UNSET))

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

        storage_profile_spec = cls(
            access_key_id=access_key_id,
            kind=kind,
            name=name,
            secret_access_key=secret_access_key,
            default=default,
            endpoint=endpoint,
            path_style=path_style,
            region=region,
            session_token=session_token,
        )

        return storage_profile_spec
