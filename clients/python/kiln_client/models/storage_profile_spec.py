from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="StorageProfileSpec")


@_attrs_define
class StorageProfileSpec:
    """A storage profile as created: the body of `POST /v1/storage-profiles`, and one item of a
    `kiln run --storage-profiles` file. Of kind `s3` or `cos` it reaches object storage
    (`access_key_id`, `secret_access_key`, …); of kind `docker-registry`, a container registry
    (`server`, `username`, `password`). `secret_access_key`, `session_token` and `password` are
    write-only: no answer, log line or error carries them (reads show `***`).

        Attributes:
            kind (str): `s3` (AWS S3 or an S3-compatible server), `cos` (Tencent Cloud COS), or
                `docker-registry` (a container registry's login). Example: s3.
            name (str):
            access_key_id (str | Unset): Required for `s3` and `cos`.
            default (bool | Unset): The profile of mappings that name none (at most one profile is the default; not for
                `docker-registry`, which is picked by `server`).
            endpoint (None | str | Unset): The service's URL, e.g. `http://10.0.0.5:9000`; absent: AWS S3 / COS itself.
            password (None | str | Unset): `docker-registry`: the login's password or access token.
            path_style (bool | None | Unset): Path-style requests (`ENDPOINT/BUCKET/KEY`); default true when `endpoint` is
                given.
            region (None | str | Unset): The region to sign with; `us-east-1` when absent.
            secret_access_key (str | Unset): Required for `s3` and `cos`.
            server (None | str | Unset): `docker-registry`: the registry's host as image references name it (`HOST[:PORT]`,
                e.g. `ccr.ccs.tencentyun.com`, `10.0.0.5:5000`; `docker.io` for Docker Hub). Images of
                that registry are pulled with this login unless their task names another
                (`registry_profile`).
            session_token (None | str | Unset):
            username (None | str | Unset): `docker-registry`: the login's user name.
    """

    kind: str
    name: str
    access_key_id: str | Unset = UNSET
    default: bool | Unset = UNSET
    endpoint: None | str | Unset = UNSET
    password: None | str | Unset = UNSET
    path_style: bool | None | Unset = UNSET
    region: None | str | Unset = UNSET
    secret_access_key: str | Unset = UNSET
    server: None | str | Unset = UNSET
    session_token: None | str | Unset = UNSET
    username: None | str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        kind = self.kind

        name = self.name

        access_key_id = self.access_key_id

        default = self.default

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

        field_dict.update(
            {
                "kind": kind,
                "name": name,
            }
        )
        if access_key_id is not UNSET:
            field_dict["access_key_id"] = access_key_id
        if default is not UNSET:
            field_dict["default"] = default
        if endpoint is not UNSET:
            field_dict["endpoint"] = endpoint
        if password is not UNSET:
            field_dict["password"] = password
        if path_style is not UNSET:
            field_dict["path_style"] = path_style
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
        kind = d.pop("kind")

        name = d.pop("name")

        access_key_id = d.pop("access_key_id", UNSET)

        default = d.pop("default", UNSET)

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

        storage_profile_spec = cls(
            kind=kind,
            name=name,
            access_key_id=access_key_id,
            default=default,
            endpoint=endpoint,
            password=password,
            path_style=path_style,
            region=region,
            secret_access_key=secret_access_key,
            server=server,
            session_token=session_token,
            username=username,
        )

        return storage_profile_spec
