from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.attempt_assignment_env import AttemptAssignmentEnv
    from ..models.attempt_key import AttemptKey
    from ..models.command_dto_type_0 import CommandDtoType0
    from ..models.command_dto_type_1 import CommandDtoType1
    from ..models.input_mapping_dto import InputMappingDto
    from ..models.output_mapping_dto import OutputMappingDto
    from ..models.registry_auth import RegistryAuth
    from ..models.storage_settings import StorageSettings


T = TypeVar("T", bound="AttemptAssignment")


@_attrs_define
class AttemptAssignment:
    """One attempt the agent is to start now.

    Attributes:
        command (CommandDtoType0 | CommandDtoType1): What to run: `{"shell": "echo hi"}` (run by `sh -c`) or `{"argv":
            ["echo", "hi"]}`.
        instances (int): Number of instances of the task (`BATCH_TASK_INSTANCE_NUM`).
        job_name (str):
        key (AttemptKey): Names one attempt of one task instance. (It travels in answers too, so it tolerates unknown
            fields; the request bodies around it do not.)
        env (AttemptAssignmentEnv | Unset): The task's `env`, with the instance's item variables
            (`BATCH_TASK_INSTANCE_ITEM`,
            `BATCH_ITEM_*`) if its task has items; the agent adds the other `BATCH_*` variables
            itself. Mappings, redirects and an argv command come with the item filled in.
        image (str | Unset): `host`, or the Docker image to run the command in.
        inputs (list[InputMappingDto] | Unset): Remote storage to make available before the command runs.
        memory (int | Unset): Memory limit in bytes; 0: none (containers only).
        millicpus (int | Unset): CPU limit in thousandths of a CPU (containers only).
        network (None | str | Unset): The Docker network (VPC) the container joins; `None`: the engine's default.
        outputs (list[OutputMappingDto] | Unset): Local paths to upload after it ends.
        registry (None | RegistryAuth | Unset):
        stderr (None | str | Unset):
        stdout (None | str | Unset): Where stdout / stderr are uploaded when it ends (a prefix ending in `/` or an
            object URL).
        storage (list[StorageSettings] | Unset): The storage settings of the profiles this attempt's mappings use (each
            mapping's
            `profile`, else `storage_profile`): held in memory for the attempt only, never written
            to the node's disk or passed to the command. Empty: the node's own storage (`AWS_*`).
        storage_profile (None | str | Unset): The profile of the mappings and redirects that name none: the task's
            `storage_profile`, else the server's default profile; `None`: the node's own storage.
        timeout_ms (int | None | Unset):
    """

    command: CommandDtoType0 | CommandDtoType1
    instances: int
    job_name: str
    key: AttemptKey
    env: AttemptAssignmentEnv | Unset = UNSET
    image: str | Unset = UNSET
    inputs: list[InputMappingDto] | Unset = UNSET
    memory: int | Unset = UNSET
    millicpus: int | Unset = UNSET
    network: None | str | Unset = UNSET
    outputs: list[OutputMappingDto] | Unset = UNSET
    registry: None | RegistryAuth | Unset = UNSET
    stderr: None | str | Unset = UNSET
    stdout: None | str | Unset = UNSET
    storage: list[StorageSettings] | Unset = UNSET
    storage_profile: None | str | Unset = UNSET
    timeout_ms: int | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from ..models.command_dto_type_0 import CommandDtoType0
        from ..models.registry_auth import RegistryAuth

        command: dict[str, Any]
        if isinstance(self.command, CommandDtoType0):
            command = self.command.to_dict()
        else:
            command = self.command.to_dict()

        instances = self.instances

        job_name = self.job_name

        key = self.key.to_dict()

        env: dict[str, Any] | Unset = UNSET
        if not isinstance(self.env, Unset):
            env = self.env.to_dict()

        image = self.image

        inputs: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.inputs, Unset):
            inputs = []
            for inputs_item_data in self.inputs:
                inputs_item = inputs_item_data.to_dict()
                inputs.append(inputs_item)

        memory = self.memory

        millicpus = self.millicpus

        network: None | str | Unset
        if isinstance(self.network, Unset):
            network = UNSET
        else:
            network = self.network

        outputs: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.outputs, Unset):
            outputs = []
            for outputs_item_data in self.outputs:
                outputs_item = outputs_item_data.to_dict()
                outputs.append(outputs_item)

        registry: dict[str, Any] | None | Unset
        if isinstance(self.registry, Unset):
            registry = UNSET
        elif isinstance(self.registry, RegistryAuth):
            registry = self.registry.to_dict()
        else:
            registry = self.registry

        stderr: None | str | Unset
        if isinstance(self.stderr, Unset):
            stderr = UNSET
        else:
            stderr = self.stderr

        stdout: None | str | Unset
        if isinstance(self.stdout, Unset):
            stdout = UNSET
        else:
            stdout = self.stdout

        storage: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.storage, Unset):
            storage = []
            for storage_item_data in self.storage:
                storage_item = storage_item_data.to_dict()
                storage.append(storage_item)

        storage_profile: None | str | Unset
        if isinstance(self.storage_profile, Unset):
            storage_profile = UNSET
        else:
            storage_profile = self.storage_profile

        timeout_ms: int | None | Unset
        if isinstance(self.timeout_ms, Unset):
            timeout_ms = UNSET
        else:
            timeout_ms = self.timeout_ms

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "command": command,
                "instances": instances,
                "job_name": job_name,
                "key": key,
            }
        )
        if env is not UNSET:
            field_dict["env"] = env
        if image is not UNSET:
            field_dict["image"] = image
        if inputs is not UNSET:
            field_dict["inputs"] = inputs
        if memory is not UNSET:
            field_dict["memory"] = memory
        if millicpus is not UNSET:
            field_dict["millicpus"] = millicpus
        if network is not UNSET:
            field_dict["network"] = network
        if outputs is not UNSET:
            field_dict["outputs"] = outputs
        if registry is not UNSET:
            field_dict["registry"] = registry
        if stderr is not UNSET:
            field_dict["stderr"] = stderr
        if stdout is not UNSET:
            field_dict["stdout"] = stdout
        if storage is not UNSET:
            field_dict["storage"] = storage
        if storage_profile is not UNSET:
            field_dict["storage_profile"] = storage_profile
        if timeout_ms is not UNSET:
            field_dict["timeout_ms"] = timeout_ms

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.attempt_assignment_env import AttemptAssignmentEnv
        from ..models.attempt_key import AttemptKey
        from ..models.command_dto_type_0 import CommandDtoType0
        from ..models.command_dto_type_1 import CommandDtoType1
        from ..models.input_mapping_dto import InputMappingDto
        from ..models.output_mapping_dto import OutputMappingDto
        from ..models.registry_auth import RegistryAuth
        from ..models.storage_settings import StorageSettings

        d = dict(src_dict)

        def _parse_command(data: object) -> CommandDtoType0 | CommandDtoType1:
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                componentsschemas_command_dto_type_0 = CommandDtoType0.from_dict(data)

                return componentsschemas_command_dto_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            if not isinstance(data, dict):
                raise TypeError()
            componentsschemas_command_dto_type_1 = CommandDtoType1.from_dict(data)

            return componentsschemas_command_dto_type_1

        command = _parse_command(d.pop("command"))

        instances = d.pop("instances")

        job_name = d.pop("job_name")

        key = AttemptKey.from_dict(d.pop("key"))

        _env = d.pop("env", UNSET)
        env: AttemptAssignmentEnv | Unset
        if isinstance(_env, Unset):
            env = UNSET
        else:
            env = AttemptAssignmentEnv.from_dict(_env)

        image = d.pop("image", UNSET)

        _inputs = d.pop("inputs", UNSET)
        inputs: list[InputMappingDto] | Unset = UNSET
        if _inputs is not UNSET:
            inputs = []
            for inputs_item_data in _inputs:
                inputs_item = InputMappingDto.from_dict(inputs_item_data)

                inputs.append(inputs_item)

        memory = d.pop("memory", UNSET)

        millicpus = d.pop("millicpus", UNSET)

        def _parse_network(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        network = _parse_network(d.pop("network", UNSET))

        _outputs = d.pop("outputs", UNSET)
        outputs: list[OutputMappingDto] | Unset = UNSET
        if _outputs is not UNSET:
            outputs = []
            for outputs_item_data in _outputs:
                outputs_item = OutputMappingDto.from_dict(outputs_item_data)

                outputs.append(outputs_item)

        def _parse_registry(data: object) -> None | RegistryAuth | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                registry_type_1 = RegistryAuth.from_dict(data)

                return registry_type_1
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | RegistryAuth | Unset, data)

        registry = _parse_registry(d.pop("registry", UNSET))

        def _parse_stderr(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        stderr = _parse_stderr(d.pop("stderr", UNSET))

        def _parse_stdout(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        stdout = _parse_stdout(d.pop("stdout", UNSET))

        _storage = d.pop("storage", UNSET)
        storage: list[StorageSettings] | Unset = UNSET
        if _storage is not UNSET:
            storage = []
            for storage_item_data in _storage:
                storage_item = StorageSettings.from_dict(storage_item_data)

                storage.append(storage_item)

        def _parse_storage_profile(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        storage_profile = _parse_storage_profile(d.pop("storage_profile", UNSET))

        def _parse_timeout_ms(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        timeout_ms = _parse_timeout_ms(d.pop("timeout_ms", UNSET))

        attempt_assignment = cls(
            command=command,
            instances=instances,
            job_name=job_name,
            key=key,
            env=env,
            image=image,
            inputs=inputs,
            memory=memory,
            millicpus=millicpus,
            network=network,
            outputs=outputs,
            registry=registry,
            stderr=stderr,
            stdout=stdout,
            storage=storage,
            storage_profile=storage_profile,
            timeout_ms=timeout_ms,
        )

        attempt_assignment.additional_properties = d
        return attempt_assignment

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
