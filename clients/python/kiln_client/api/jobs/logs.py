from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_body import ErrorBody
from ...types import UNSET, Response, Unset


def _get_kwargs(
    id: str,
    task: str,
    index: int,
    *,
    stream: str | Unset = UNSET,
    follow: bool | Unset = UNSET,
    attempt: int | Unset = UNSET,
) -> dict[str, Any]:

    params: dict[str, Any] = {}

    params["stream"] = stream

    params["follow"] = follow

    params["attempt"] = attempt

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/v1/jobs/{id}/tasks/{task}/instances/{index}/logs".format(
            id=quote(str(id), safe=""),
            task=quote(str(task), safe=""),
            index=quote(str(index), safe=""),
        ),
        "params": params,
    }

    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ErrorBody | str | None:
    if response.status_code == 200:
        response_200 = response.text
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
) -> Response[ErrorBody | str]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    id: str,
    task: str,
    index: int,
    *,
    client: AuthenticatedClient,
    stream: str | Unset = UNSET,
    follow: bool | Unset = UNSET,
    attempt: int | Unset = UNSET,
) -> Response[ErrorBody | str]:
    """The output of an instance's latest attempt (or `attempt=N`); `follow=true` streams it until
    the attempt ends.

    Args:
        id (str):
        task (str):
        index (int):
        stream (str | Unset):
        follow (bool | Unset):
        attempt (int | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | str]
    """

    kwargs = _get_kwargs(
        id=id,
        task=task,
        index=index,
        stream=stream,
        follow=follow,
        attempt=attempt,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    id: str,
    task: str,
    index: int,
    *,
    client: AuthenticatedClient,
    stream: str | Unset = UNSET,
    follow: bool | Unset = UNSET,
    attempt: int | Unset = UNSET,
) -> ErrorBody | str | None:
    """The output of an instance's latest attempt (or `attempt=N`); `follow=true` streams it until
    the attempt ends.

    Args:
        id (str):
        task (str):
        index (int):
        stream (str | Unset):
        follow (bool | Unset):
        attempt (int | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | str
    """

    return sync_detailed(
        id=id,
        task=task,
        index=index,
        client=client,
        stream=stream,
        follow=follow,
        attempt=attempt,
    ).parsed


async def asyncio_detailed(
    id: str,
    task: str,
    index: int,
    *,
    client: AuthenticatedClient,
    stream: str | Unset = UNSET,
    follow: bool | Unset = UNSET,
    attempt: int | Unset = UNSET,
) -> Response[ErrorBody | str]:
    """The output of an instance's latest attempt (or `attempt=N`); `follow=true` streams it until
    the attempt ends.

    Args:
        id (str):
        task (str):
        index (int):
        stream (str | Unset):
        follow (bool | Unset):
        attempt (int | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | str]
    """

    kwargs = _get_kwargs(
        id=id,
        task=task,
        index=index,
        stream=stream,
        follow=follow,
        attempt=attempt,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    id: str,
    task: str,
    index: int,
    *,
    client: AuthenticatedClient,
    stream: str | Unset = UNSET,
    follow: bool | Unset = UNSET,
    attempt: int | Unset = UNSET,
) -> ErrorBody | str | None:
    """The output of an instance's latest attempt (or `attempt=N`); `follow=true` streams it until
    the attempt ends.

    Args:
        id (str):
        task (str):
        index (int):
        stream (str | Unset):
        follow (bool | Unset):
        attempt (int | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | str
    """

    return (
        await asyncio_detailed(
            id=id,
            task=task,
            index=index,
            client=client,
            stream=stream,
            follow=follow,
            attempt=attempt,
        )
    ).parsed
