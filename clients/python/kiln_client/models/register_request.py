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
        running (list[AttemptKey] | Unset): Attempts still running on this agent (after a reconnect).
    """

    cpus: float
    memory: int
    name: str
    slots: int
    version: str
    compute_env: None | str | Unset = UNSET
    containers: bool | Unset = UNSET
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
            running=running,
        )

        return register_request
