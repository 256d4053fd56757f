from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.attempt_key import AttemptKey


T = TypeVar("T", bound="RegisterRequest")


@_attrs_define
class RegisterRequest:
    """`POST /v1/agent/register`.

    Attributes:
        cpus (float):
        memory (int): Bytes.
        name (str): The node's name; `local` is the built-in executor's.
        slots (int): How many attempts the agent runs at once.
        version (str): The agent's `kiln` version.
        compute_env (None | str | Unset):
        containers (bool | Unset): A Docker Engine answers on the node: it runs tasks whose image is a Docker image.
        ends_at (int | None | Unset): When the agent goes away (ms since the epoch; a Slurm allocation's end): it is
            given
            only attempts whose `timeout` ends before then.
        running (list[AttemptKey] | Unset): Attempts still running on this agent (after a reconnect).
    """

    cpus: float
    memory: int
    name: str
    slots: int
    version: str
    compute_env: None | str | Unset = UNSET
    containers: bool | Unset = UNSET
    ends_at: int | None | Unset = UNSET
    running: list[AttemptKey] | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        cpus = self.cpus

        memory = self.memory

        name = self.name

        slots = self.slots

        version = self.version

        compute_env: None | str | Unset
        if isinstance(self.compute_env, Unset):
            compute_env = UNSET
        else:
            compute_env = self.compute_env

        containers = self.containers

        ends_at: int | None | Unset
        if isinstance(self.ends_at, Unset):
            ends_at = UNSET
        else:
            ends_at = self.ends_at

        running: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.running, Unset):
            running = []
            for running_item_data in self.running:
                running_item = running_item_data.to_dict()
                running.append(running_item)

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "cpus": cpus,
                "memory": memory,
                "name": name,
                "slots": slots,
                "version": version,
            }
        )
        if compute_env is not UNSET:
            field_dict["compute_env"] = compute_env
        if containers is not UNSET:
            field_dict["containers"] = containers
        if ends_at is not UNSET:
            field_dict["ends_at"] = ends_at
        if running is not UNSET:
            field_dict["running"] = running

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.attempt_key import AttemptKey

        d = dict(src_dict)
        cpus = d.pop("cpus")

        memory = d.pop("memory")

        name = d.pop("name")

        slots = d.pop("slots")

        version = d.pop("version")

        def _parse_compute_env(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        compute_env = _parse_compute_env(d.pop("compute_env", UNSET))

        containers = d.pop("containers", UNSET)

        def _parse_ends_at(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        ends_at = _parse_ends_at(d.pop("ends_at", UNSET))

        _running = d.pop("running", UNSET)
        running: list[AttemptKey] | Unset = UNSET
        if _running is not UNSET:
            running = []
            for running_item_data in _running:
                running_item = AttemptKey.from_dict(running_item_data)

                running.append(running_item)

        register_request = cls(
            cpus=cpus,
            memory=memory,
            name=name,
            slots=slots,
            version=version,
            compute_env=compute_env,
            containers=containers,
            ends_at=ends_at,
            running=running,
        )

        return register_request
