from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.compute_env_detail import ComputeEnvDetail
from ...models.error_body import ErrorBody
from ...models.scale_request import ScaleRequest
from ...types import Response


def _get_kwargs(
    name: str,
    *,
    body: ScaleRequest,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/v1/compute-envs/{name}/scale".format(
            name=quote(str(name), safe=""),
        ),
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ComputeEnvDetail | ErrorBody | None:
    if response.status_code == 200:
        response_200 = ComputeEnvDetail.from_dict(response.json())

        return response_200

    if response.status_code == 400:
        response_400 = ErrorBody.from_dict(response.json())

        return response_400

    if response.status_code == 401:
        response_401 = ErrorBody.from_dict(response.json())

        return response_401

    if response.status_code == 403:
        response_403 = ErrorBody.from_dict(response.json())

        return response_403

    if response.status_code == 404:
        response_404 = ErrorBody.from_dict(response.json())

        return response_404

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
) -> Response[ComputeEnvDetail | ErrorBody]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    name: str,
    *,
    client: AuthenticatedClient,
    body: ScaleRequest,
) -> Response[ComputeEnvDetail | ErrorBody]:
    """Grow or shrink the environment; shrinking drains nodes before they leave. An environment
    that scales with its backlog (`max_nodes`) has no desired size: 409.

    Args:
        name (str):
        body (ScaleRequest): `POST /v1/compute-envs/{name}/scale`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ComputeEnvDetail | ErrorBody]
    """

    kwargs = _get_kwargs(
        name=name,
        body=body,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    name: str,
    *,
    client: AuthenticatedClient,
    body: ScaleRequest,
) -> ComputeEnvDetail | ErrorBody | None:
    """Grow or shrink the environment; shrinking drains nodes before they leave. An environment
    that scales with its backlog (`max_nodes`) has no desired size: 409.

    Args:
        name (str):
        body (ScaleRequest): `POST /v1/compute-envs/{name}/scale`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ComputeEnvDetail | ErrorBody
    """

    return sync_detailed(
        name=name,
        client=client,
        body=body,
    ).parsed


async def asyncio_detailed(
    name: str,
    *,
    client: AuthenticatedClient,
    body: ScaleRequest,
) -> Response[ComputeEnvDetail | ErrorBody]:
    """Grow or shrink the environment; shrinking drains nodes before they leave. An environment
    that scales with its backlog (`max_nodes`) has no desired size: 409.

    Args:
        name (str):
        body (ScaleRequest): `POST /v1/compute-envs/{name}/scale`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ComputeEnvDetail | ErrorBody]
    """

    kwargs = _get_kwargs(
        name=name,
        body=body,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    name: str,
    *,
    client: AuthenticatedClient,
    body: ScaleRequest,
) -> ComputeEnvDetail | ErrorBody | None:
    """Grow or shrink the environment; shrinking drains nodes before they leave. An environment
    that scales with its backlog (`max_nodes`) has no desired size: 409.

    Args:
        name (str):
        body (ScaleRequest): `POST /v1/compute-envs/{name}/scale`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ComputeEnvDetail | ErrorBody
    """

    return (
        await asyncio_detailed(
            name=name,
            client=client,
            body=body,
        )
    ).parsed
