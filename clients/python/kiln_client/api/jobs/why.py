from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_body import ErrorBody
from ...models.why import Why
from ...types import UNSET, Response, Unset


def _get_kwargs(
    id: str,
    *,
    task: str | Unset = UNSET,
    index: int | Unset = UNSET,
) -> dict[str, Any]:

    params: dict[str, Any] = {}

    params["task"] = task

    params["index"] = index

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/v1/jobs/{id}/why".format(
            id=quote(str(id), safe=""),
        ),
        "params": params,
    }

    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ErrorBody | Why | None:
    if response.status_code == 200:
        response_200 = Why.from_dict(response.json())

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
) -> Response[ErrorBody | Why]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    id: str,
    *,
    client: AuthenticatedClient,
    task: str | Unset = UNSET,
    index: int | Unset = UNSET,
) -> Response[ErrorBody | Why]:
    """Why a job, task or instance is in its state (`index` needs `task`: 400 without it).

    Args:
        id (str):
        task (str | Unset):
        index (int | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | Why]
    """

    kwargs = _get_kwargs(
        id=id,
        task=task,
        index=index,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    id: str,
    *,
    client: AuthenticatedClient,
    task: str | Unset = UNSET,
    index: int | Unset = UNSET,
) -> ErrorBody | Why | None:
    """Why a job, task or instance is in its state (`index` needs `task`: 400 without it).

    Args:
        id (str):
        task (str | Unset):
        index (int | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | Why
    """

    return sync_detailed(
        id=id,
        client=client,
        task=task,
        index=index,
    ).parsed


async def asyncio_detailed(
    id: str,
    *,
    client: AuthenticatedClient,
    task: str | Unset = UNSET,
    index: int | Unset = UNSET,
) -> Response[ErrorBody | Why]:
    """Why a job, task or instance is in its state (`index` needs `task`: 400 without it).

    Args:
        id (str):
        task (str | Unset):
        index (int | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | Why]
    """

    kwargs = _get_kwargs(
        id=id,
        task=task,
        index=index,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    id: str,
    *,
    client: AuthenticatedClient,
    task: str | Unset = UNSET,
    index: int | Unset = UNSET,
) -> ErrorBody | Why | None:
    """Why a job, task or instance is in its state (`index` needs `task`: 400 without it).

    Args:
        id (str):
        task (str | Unset):
        index (int | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | Why
    """

    return (
        await asyncio_detailed(
            id=id,
            client=client,
            task=task,
            index=index,
        )
    ).parsed
