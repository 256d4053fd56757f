from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="EventRecord")


@_attrs_define
class EventRecord:
    """One journal event (`GET /v1/events`): a change of state or an operation, past tense.

    Attributes:
        at (str): When it happened (RFC 3339).
        project (str):
        seq (int): The event's sequence number: only grows, with no gap; resume after it with
            `?after=SEQ` or `Last-Event-ID`.
        type_ (str): What happened: `JobSubmitted`, `InstanceStarted`, `InstanceFailed`, `NodeLost`, …
        attempt (int | None | Unset):
        compute_env (None | str | Unset):
        desired_nodes (int | None | Unset): A compute environment's size after it was scaled.
        exit_code (int | None | Unset):
        index (int | None | Unset):
        job (None | str | Unset):
        node (None | str | Unset):
        reason (None | str | Unset):
        state (None | str | Unset): The state entered.
        task (None | str | Unset):
    """

    at: str
    project: str
    seq: int
    type_: str
    attempt: int | None | Unset = UNSET
    compute_env: None | str | Unset = UNSET
    desired_nodes: int | None | Unset = UNSET
    exit_code: int | None | Unset = UNSET
    index: int | None | Unset = UNSET
    job: None | str | Unset = UNSET
    node: None | str | Unset = UNSET
    reason: None | str | Unset = UNSET
    state: None | str | Unset = UNSET
    task: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        at = self.at

        project = self.project

        seq = self.seq

        type_ = self.type_

        attempt: int | None | Unset
        if isinstance(self.attempt, Unset):
            attempt = UNSET
        else:
            attempt = self.attempt

        compute_env: None | str | Unset
        if isinstance(self.compute_env, Unset):
            compute_env = UNSET
        else:
            compute_env = self.compute_env

        desired_nodes: int | None | Unset
        if isinstance(self.desired_nodes, Unset):
            desired_nodes = UNSET
        else:
            desired_nodes = self.desired_nodes

        exit_code: int | None | Unset
        if isinstance(self.exit_code, Unset):
            exit_code = UNSET
        else:
            exit_code = self.exit_code

        index: int | None | Unset
        if isinstance(self.index, Unset):
            index = UNSET
        else:
            index = self.index

        job: None | str | Unset
        if isinstance(self.job, Unset):
            job = UNSET
        else:
            job = self.job

        node: None | str | Unset
        if isinstance(self.node, Unset):
            node = UNSET
        else:
            node = self.node

        reason: None | str | Unset
        if isinstance(self.reason, Unset):
            reason = UNSET
        else:
            reason = self.reason

        state: None | str | Unset
        if isinstance(self.state, Unset):
            state = UNSET
        else:
            state = self.state

        task: None | str | Unset
        if isinstance(self.task, Unset):
            task = UNSET
        else:
            task = self.task

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "at": at,
                "project": project,
                "seq": seq,
                "type": type_,
            }
        )
        if attempt is not UNSET:
            field_dict["attempt"] = attempt
        if compute_env is not UNSET:
            field_dict["compute_env"] = compute_env
        if desired_nodes is not UNSET:
            field_dict["desired_nodes"] = desired_nodes
        if exit_code is not UNSET:
            field_dict["exit_code"] = exit_code
        if index is not UNSET:
            field_dict["index"] = index
        if job is not UNSET:
            field_dict["job"] = job
        if node is not UNSET:
            field_dict["node"] = node
        if reason is not UNSET:
            field_dict["reason"] = reason
        if state is not UNSET:
            field_dict["state"] = state
        if task is not UNSET:
            field_dict["task"] = task

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        at = d.pop("at")

        project = d.pop("project")

        seq = d.pop("seq")

        type_ = d.pop("type")

        def _parse_attempt(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        attempt = _parse_attempt(d.pop("attempt", UNSET))

        def _parse_compute_env(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        compute_env = _parse_compute_env(d.pop("compute_env", UNSET))

        def _parse_desired_nodes(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        desired_nodes = _parse_desired_nodes(d.pop("desired_nodes", UNSET))

        def _parse_exit_code(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        exit_code = _parse_exit_code(d.pop("exit_code", UNSET))

        def _parse_index(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        index = _parse_index(d.pop("index", UNSET))

        def _parse_job(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        job = _parse_job(d.pop("job", UNSET))

        def _parse_node(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        node = _parse_node(d.pop("node", UNSET))

        def _parse_reason(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        reason = _parse_reason(d.pop("reason", UNSET))

        def _parse_state(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        state = _parse_state(d.pop("state", UNSET))

        def _parse_task(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        task = _parse_task(d.pop("task", UNSET))

        event_record = cls(
            at=at,
            project=project,
            seq=seq,
            type_=type_,
            attempt=attempt,
            compute_env=compute_env,
            desired_nodes=desired_nodes,
            exit_code=exit_code,
            index=index,
            job=job,
            node=node,
            reason=reason,
            state=state,
            task=task,
        )

        event_record.additional_properties = d
        return event_record

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
