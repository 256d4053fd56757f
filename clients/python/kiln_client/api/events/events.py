from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_body import ErrorBody
from ...models.event_page import EventPage
from ...types import UNSET, Response, Unset


def _get_kwargs(
    *,
    after: int | Unset = UNSET,
    limit: int | Unset = UNSET,
    job: str | Unset = UNSET,
    type_: str | Unset = UNSET,
    last_event_id: int | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(last_event_id, Unset):
        headers["Last-Event-ID"] = str(last_event_id)

    params: dict[str, Any] = {}

    params["after"] = after

    params["limit"] = limit

    params["job"] = job

    params["type"] = type_

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/v1/events",
        "params": params,
    }

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ErrorBody | EventPage | None:
    if response.status_code == 200:
        response_200 = EventPage.from_dict(response.json())

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
) -> Response[ErrorBody | EventPage]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    after: int | Unset = UNSET,
    limit: int | Unset = UNSET,
    job: str | Unset = UNSET,
    type_: str | Unset = UNSET,
    last_event_id: int | Unset = UNSET,
) -> Response[ErrorBody | EventPage]:
    """The journal: every change of state and every operation, oldest first. A JSON page
    (`after`, `limit`); with `Accept: text/event-stream`, Server-Sent Events that follow the
    journal (`id:` = `seq`; a reconnect with `Last-Event-ID` resumes after it).

    Args:
        after (int | Unset):
        limit (int | Unset):
        job (str | Unset):
        type_ (str | Unset):
        last_event_id (int | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | EventPage]
    """

    kwargs = _get_kwargs(
        after=after,
        limit=limit,
        job=job,
        type_=type_,
        last_event_id=last_event_id,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient,
    after: int | Unset = UNSET,
    limit: int | Unset = UNSET,
    job: str | Unset = UNSET,
    type_: str | Unset = UNSET,
    last_event_id: int | Unset = UNSET,
) -> ErrorBody | EventPage | None:
    """The journal: every change of state and every operation, oldest first. A JSON page
    (`after`, `limit`); with `Accept: text/event-stream`, Server-Sent Events that follow the
    journal (`id:` = `seq`; a reconnect with `Last-Event-ID` resumes after it).

    Args:
        after (int | Unset):
        limit (int | Unset):
        job (str | Unset):
        type_ (str | Unset):
        last_event_id (int | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | EventPage
    """

    return sync_detailed(
        client=client,
        after=after,
        limit=limit,
        job=job,
        type_=type_,
        last_event_id=last_event_id,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    after: int | Unset = UNSET,
    limit: int | Unset = UNSET,
    job: str | Unset = UNSET,
    type_: str | Unset = UNSET,
    last_event_id: int | Unset = UNSET,
) -> Response[ErrorBody | EventPage]:
    """The journal: every change of state and every operation, oldest first. A JSON page
    (`after`, `limit`); with `Accept: text/event-stream`, Server-Sent Events that follow the
    journal (`id:` = `seq`; a reconnect with `Last-Event-ID` resumes after it).

    Args:
        after (int | Unset):
        limit (int | Unset):
        job (str | Unset):
        type_ (str | Unset):
        last_event_id (int | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | EventPage]
    """

    kwargs = _get_kwargs(
        after=after,
        limit=limit,
        job=job,
        type_=type_,
        last_event_id=last_event_id,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
    after: int | Unset = UNSET,
    limit: int | Unset = UNSET,
    job: str | Unset = UNSET,
    type_: str | Unset = UNSET,
    last_event_id: int | Unset = UNSET,
) -> ErrorBody | EventPage | None:
    """The journal: every change of state and every operation, oldest first. A JSON page
    (`after`, `limit`); with `Accept: text/event-stream`, Server-Sent Events that follow the
    journal (`id:` = `seq`; a reconnect with `Last-Event-ID` resumes after it).

    Args:
        after (int | Unset):
        limit (int | Unset):
        job (str | Unset):
        type_ (str | Unset):
        last_event_id (int | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | EventPage
    """

    return (
        await asyncio_detailed(
            client=client,
            after=after,
            limit=limit,
            job=job,
            type_=type_,
            last_event_id=last_event_id,
        )
    ).parsed
