from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.attempt_detail import AttemptDetail


T = TypeVar("T", bound="InstanceDetail")


@_attrs_define
class InstanceDetail:
    """One task instance in `GET /v1/jobs/{id}/tasks/{task}/instances`.

    Attributes:
        attempt (int): The current (latest) attempt, 1-based; 0 if never dispatched.
        index (int): 0-based.
        state (str):
        attempts (list[AttemptDetail] | Unset):
        exit_code (int | None | Unset):
        node (None | str | Unset):
        reason (None | str | Unset):
    """

    attempt: int
    index: int
    state: str
    attempts: list[AttemptDetail] | Unset = UNSET
    exit_code: int | None | Unset = UNSET
    node: None | str | Unset = UNSET
    reason: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        attempt = self.attempt

        index = self.index

        state = self.state

        attempts: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.attempts, Unset):
            attempts = []
            for attempts_item_data in self.attempts:
                attempts_item = attempts_item_data.to_dict()
                attempts.append(attempts_item)

        exit_code: int | None | Unset
        if isinstance(self.exit_code, Unset):
            exit_code = UNSET
        else:
            exit_code = self.exit_code

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

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "attempt": attempt,
                "index": index,
                "state": state,
            }
        )
        if attempts is not UNSET:
            field_dict["attempts"] = attempts
        if exit_code is not UNSET:
            field_dict["exit_code"] = exit_code
        if node is not UNSET:
            field_dict["node"] = node
        if reason is not UNSET:
            field_dict["reason"] = reason

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.attempt_detail import AttemptDetail

        d = dict(src_dict)
        attempt = d.pop("attempt")

        index = d.pop("index")

        state = d.pop("state")

        _attempts = d.pop("attempts", UNSET)
        attempts: list[AttemptDetail] | Unset = UNSET
        if _attempts is not UNSET:
            attempts = []
            for attempts_item_data in _attempts:
                attempts_item = AttemptDetail.from_dict(attempts_item_data)

                attempts.append(attempts_item)

        def _parse_exit_code(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        exit_code = _parse_exit_code(d.pop("exit_code", UNSET))

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

        instance_detail = cls(
            attempt=attempt,
            index=index,
            state=state,
            attempts=attempts,
            exit_code=exit_code,
            node=node,
            reason=reason,
        )

        instance_detail.additional_properties = d
        return instance_detail

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
