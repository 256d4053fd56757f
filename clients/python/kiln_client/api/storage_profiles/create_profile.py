from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_body import ErrorBody
from ...models.storage_profile import StorageProfile
from ...models.storage_profile_spec import StorageProfileSpec
from ...types import Response


def _get_kwargs(
    *,
    body: StorageProfileSpec,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/v1/storage-profiles",
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ErrorBody | StorageProfile | None:
    if response.status_code == 201:
        response_201 = StorageProfile.from_dict(response.json())

        return response_201

    if response.status_code == 400:
        response_400 = ErrorBody.from_dict(response.json())

        return response_400

    if response.status_code == 401:
        response_401 = ErrorBody.from_dict(response.json())

        return response_401

    if response.status_code == 403:
        response_403 = ErrorBody.from_dict(response.json())

        return response_403

    if response.status_code == 409:
        response_409 = ErrorBody.from_dict(response.json())

        return response_409

    if response.status_code == 413:
        response_413 = ErrorBody.from_dict(response.json())

        return response_413

    if response.status_code == 500:
        response_500 = ErrorBody.from_dict(response.json())

        return response_500

    if response.status_code == 503:
        response_503 = ErrorBody.from_dict(response.json())

        return response_503

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Response[ErrorBody | StorageProfile]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    body: StorageProfileSpec,
) -> Response[ErrorBody | StorageProfile]:
    """Store a storage profile. Its secret fields are sealed at rest and never answered; a name in
    use is a conflict (delete it first), as is a second default profile.

    Args:
        body (StorageProfileSpec): A storage profile as created: the body of `POST /v1/storage-
            profiles`, and one item of a
            `kiln run --storage-profiles` file. Of kind `s3` or `cos` it reaches object storage
            (`access_key_id`, `secret_access_key`, …); of kind `docker-registry`, a container registry
            (`server`, `username`, `password`). `secret_access_key`, `session_token` and `password`
            are
            write-only: no answer, log line or error carries them (reads show `***`).

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | StorageProfile]
    """

    kwargs = _get_kwargs(
        body=body,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient,
    body: StorageProfileSpec,
) -> ErrorBody | StorageProfile | None:
    """Store a storage profile. Its secret fields are sealed at rest and never answered; a name in
    use is a conflict (delete it first), as is a second default profile.

    Args:
        body (StorageProfileSpec): A storage profile as created: the body of `POST /v1/storage-
            profiles`, and one item of a
            `kiln run --storage-profiles` file. Of kind `s3` or `cos` it reaches object storage
            (`access_key_id`, `secret_access_key`, …); of kind `docker-registry`, a container registry
            (`server`, `username`, `password`). `secret_access_key`, `session_token` and `password`
            are
            write-only: no answer, log line or error carries them (reads show `***`).

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | StorageProfile
    """

    return sync_detailed(
        client=client,
        body=body,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    body: StorageProfileSpec,
) -> Response[ErrorBody | StorageProfile]:
    """Store a storage profile. Its secret fields are sealed at rest and never answered; a name in
    use is a conflict (delete it first), as is a second default profile.

    Args:
        body (StorageProfileSpec): A storage profile as created: the body of `POST /v1/storage-
            profiles`, and one item of a
            `kiln run --storage-profiles` file. Of kind `s3` or `cos` it reaches object storage
            (`access_key_id`, `secret_access_key`, …); of kind `docker-registry`, a container registry
            (`server`, `username`, `password`). `secret_access_key`, `session_token` and `password`
            are
            write-only: no answer, log line or error carries them (reads show `***`).

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | StorageProfile]
    """

    kwargs = _get_kwargs(
        body=body,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
    body: StorageProfileSpec,
) -> ErrorBody | StorageProfile | None:
    """Store a storage profile. Its secret fields are sealed at rest and never answered; a name in
    use is a conflict (delete it first), as is a second default profile.

    Args:
        body (StorageProfileSpec): A storage profile as created: the body of `POST /v1/storage-
            profiles`, and one item of a
            `kiln run --storage-profiles` file. Of kind `s3` or `cos` it reaches object storage
            (`access_key_id`, `secret_access_key`, …); of kind `docker-registry`, a container registry
            (`server`, `username`, `password`). `secret_access_key`, `session_token` and `password`
            are
            write-only: no answer, log line or error carries them (reads show `***`).

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | StorageProfile
    """

    return (
        await asyncio_detailed(
            client=client,
            body=body,
        )
    ).parsed
