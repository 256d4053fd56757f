from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.activity_info import ActivityInfo
    from ..models.allocation_info import AllocationInfo
    from ..models.compute_env_detail_resources_type_0 import (
        ComputeEnvDetailResourcesType0,
    )
    from ..models.node_ref import NodeRef
    from ..models.provider_error import ProviderError


T = TypeVar("T", bound="ComputeEnvDetail")


@_attrs_define
class ComputeEnvDetail:
    """`GET /v1/compute-envs/{name}` (also the answer of create and scale): the environment and
    its nodes, flattened into one object.

        Attributes:
            name (str):
            provider (str): `local`, `static` or `docker`.
            account (None | str | Unset): `slurm`: `sbatch --account`.
            activities (list[ActivityInfo] | Unset): The latest scaling activities, newest first (at most 20; all of them at
                `GET /v1/compute-envs/{name}/activities`).
            allocations (list[AllocationInfo] | Unset): `slurm`: the environment's allocations (Slurm jobs) that have not
                ended.
            cpus_per_node (int | None | Unset): `slurm`: CPUs asked for on each node [default 1].
            creation_failures (int | Unset): Node creations that failed since the server started (each one backs off the
                next).
            description (None | str | Unset):
            desired_nodes (int | Unset): Defaults to 0 when omitted.
            idle_timeout (None | str | Unset): Backlog scaling: a node idle this long is removed, e.g. `5m` [default 5m].
            image (None | str | Unset):
            instance_type (None | str | Unset): A catalog instance type; exclusive with `resources`.
            last_error (None | ProviderError | Unset):
            max_nodes (int | None | Unset): Backlog scaling: at most this many nodes; setting it turns backlog scaling on.
            max_pending_allocations (int | None | Unset): Backlog scaling: at most this many allocations (Slurm jobs, or
                nodes starting) on
                their way at once [default 4].
            memory_per_node (None | str | Unset): `slurm`: `sbatch --mem`, e.g. `4GiB`.
            min_nodes (int | None | Unset): Backlog scaling: nodes kept even without work [default 0].
            network (None | str | Unset):
            nodes (list[NodeRef] | Unset):
            nodes_per_allocation (int | None | Unset): `slurm`: `sbatch --nodes` [default 1].
            partition (None | str | Unset): `slurm`: `sbatch --partition`.
            projects (list[str] | None | Unset): The projects whose jobs may run here, the owner first [default: the
                creator's
                project]. Only an admin may name other projects than its own.
            qos (None | str | Unset): `slurm`: `sbatch --qos`.
            resources (ComputeEnvDetailResourcesType0 | None | Unset): Explicit resources (`{"cpus": …, "memory": …}`);
                exclusive with `instance_type`.
            sbatch_args (list[str] | None | Unset): `slurm`: further `sbatch` arguments, passed as they are.
            slots (int | None | Unset):
            state (str | Unset): The environment's state, from its nodes': `RUNNING` (also with no nodes),
                `CREATING`, `CREATION_FAILED` (creating nodes fails now), `ABNORMAL`, `DELETING`. Example: RUNNING.
            status (None | str | Unset): What holds capacity back, for people (e.g. `2 allocations pending in Slurm (job
                1234
                PENDING: Resources)`, or the provider's last error).
            time_limit (None | str | Unset): `slurm`: `sbatch --time`, e.g. `2h`; the agents stop taking work that would not
                end
                before it.
            workers_per_allocation (int | None | Unset): `slurm`: agents (Kiln nodes) started in each allocation [default:
                one per Slurm node].
    """

    name: str
    provider: str
    account: None | str | Unset = UNSET
    activities: list[ActivityInfo] | Unset = UNSET
    allocations: list[AllocationInfo] | Unset = UNSET
    cpus_per_node: int | None | Unset = UNSET
    creation_failures: int | Unset = UNSET
    description: None | str | Unset = UNSET
    desired_nodes: int | Unset = UNSET
    idle_timeout: None | str | Unset = UNSET
    image: None | str | Unset = UNSET
    instance_type: None | str | Unset = UNSET
    last_error: None | ProviderError | Unset = UNSET
    max_nodes: int | None | Unset = UNSET
    max_pending_allocations: int | None | Unset = UNSET
    memory_per_node: None | str | Unset = UNSET
    min_nodes: int | None | Unset = UNSET
    network: None | str | Unset = UNSET
    nodes: list[NodeRef] | Unset = UNSET
    nodes_per_allocation: int | None | Unset = UNSET
    partition: None | str | Unset = UNSET
    projects: list[str] | None | Unset = UNSET
    qos: None | str | Unset = UNSET
    resources: ComputeEnvDetailResourcesType0 | None | Unset = UNSET
    sbatch_args: list[str] | None | Unset = UNSET
    slots: int | None | Unset = UNSET
    state: str | Unset = UNSET
    status: None | str | Unset = UNSET
    time_limit: None | str | Unset = UNSET
    workers_per_allocation: int | None | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        from ..models.compute_env_detail_resources_type_0 import (
            ComputeEnvDetailResourcesType0,
        )
        from ..models.provider_error import ProviderError

        name = self.name

        provider = self.provider

        account: None | str | Unset
        if isinstance(self.account, Unset):
            account = UNSET
        else:
            account = self.account

        activities: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.activities, Unset):
            activities = []
            for activities_item_data in self.activities:
                activities_item = activities_item_data.to_dict()
                activities.append(activities_item)

        allocations: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.allocations, Unset):
            allocations = []
            for allocations_item_data in self.allocations:
                allocations_item = allocations_item_data.to_dict()
                allocations.append(allocations_item)

        cpus_per_node: int | None | Unset
        if isinstance(self.cpus_per_node, Unset):
            cpus_per_node = UNSET
        else:
            cpus_per_node = self.cpus_per_node

        creation_failures = self.creation_failures

        description: None | str | Unset
        if isinstance(self.description, Unset):
            description = UNSET
        else:
            description = self.description

        desired_nodes = self.desired_nodes

        idle_timeout: None | str | Unset
        if isinstance(self.idle_timeout, Unset):
            idle_timeout = UNSET
        else:
            idle_timeout = self.idle_timeout

        image: None | str | Unset
        if isinstance(self.image, Unset):
            image = UNSET
        else:
            image = self.image

        instance_type: None | str | Unset
        if isinstance(self.instance_type, Unset):
            instance_type = UNSET
        else:
            instance_type = self.instance_type

        last_error: dict[str, Any] | None | Unset
        if isinstance(self.last_error, Unset):
            last_error = UNSET
        elif isinstance(self.last_error, ProviderError):
            last_error = self.last_error.to_dict()
        else:
            last_error = self.last_error

        max_nodes: int | None | Unset
        if isinstance(self.max_nodes, Unset):
            max_nodes = UNSET
        else:
            max_nodes = self.max_nodes

        max_pending_allocations: int | None | Unset
        if isinstance(self.max_pending_allocations, Unset):
            max_pending_allocations = UNSET
        else:
            max_pending_allocations = self.max_pending_allocations

        memory_per_node: None | str | Unset
        if isinstance(self.memory_per_node, Unset):
            memory_per_node = UNSET
        else:
            memory_per_node = self.memory_per_node

        min_nodes: int | None | Unset
        if isinstance(self.min_nodes, Unset):
            min_nodes = UNSET
        else:
            min_nodes = self.min_nodes

        network: None | str | Unset
        if isinstance(self.network, Unset):
            network = UNSET
        else:
            network = self.network

        nodes: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.nodes, Unset):
            nodes = []
            for nodes_item_data in self.nodes:
                nodes_item = nodes_item_data.to_dict()
                nodes.append(nodes_item)

        nodes_per_allocation: int | None | Unset
        if isinstance(self.nodes_per_allocation, Unset):
            nodes_per_allocation = UNSET
        else:
            nodes_per_allocation = self.nodes_per_allocation

        partition: None | str | Unset
        if isinstance(self.partition, Unset):
            partition = UNSET
        else:
            partition = self.partition

        projects: list[str] | None | Unset
        if isinstance(self.projects, Unset):
            projects = UNSET
        elif isinstance(self.projects, list):
            projects = self.projects

        else:
            projects = self.projects

        qos: None | str | Unset
        if isinstance(self.qos, Unset):
            qos = UNSET
        else:
            qos = self.qos

        resources: dict[str, Any] | None | Unset
        if isinstance(self.resources, Unset):
            resources = UNSET
        elif isinstance(self.resources, ComputeEnvDetailResourcesType0):
            resources = self.resources.to_dict()
        else:
            resources = self.resources

        sbatch_args: list[str] | None | Unset
        if isinstance(self.sbatch_args, Unset):
            sbatch_args = UNSET
        elif isinstance(self.sbatch_args, list):
            sbatch_args = self.sbatch_args

        else:
            sbatch_args = self.sbatch_args

        slots: int | None | Unset
        if isinstance(self.slots, Unset):
            slots = UNSET
        else:
            slots = self.slots

        state = self.state

        status: None | str | Unset
        if isinstance(self.status, Unset):
            status = UNSET
        else:
            status = self.status

        time_limit: None | str | Unset
        if isinstance(self.time_limit, Unset):
            time_limit = UNSET
        else:
            time_limit = self.time_limit

        workers_per_allocation: int | None | Unset
        if isinstance(self.workers_per_allocation, Unset):
            workers_per_allocation = UNSET
        else:
            workers_per_allocation = self.workers_per_allocation

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "name": name,
                "provider": provider,
            }
        )
        if account is not UNSET:
            field_dict["account"] = account
        if activities is not UNSET:
            field_dict["activities"] = activities
        if allocations is not UNSET:
            field_dict["allocations"] = allocations
        if cpus_per_node is not UNSET:
            field_dict["cpus_per_node"] = cpus_per_node
        if creation_failures is not UNSET:
            field_dict["creation_failures"] = creation_failures
        if description is not UNSET:
            field_dict["description"] = description
        if desired_nodes is not UNSET:
            field_dict["desired_nodes"] = desired_nodes
        if idle_timeout is not UNSET:
            field_dict["idle_timeout"] = idle_timeout
        if image is not UNSET:
            field_dict["image"] = image
        if instance_type is not UNSET:
            field_dict["instance_type"] = instance_type
        if last_error is not UNSET:
            field_dict["last_error"] = last_error
        if max_nodes is not UNSET:
            field_dict["max_nodes"] = max_nodes
        if max_pending_allocations is not UNSET:
            field_dict["max_pending_allocations"] = max_pending_allocations
        if memory_per_node is not UNSET:
            field_dict["memory_per_node"] = memory_per_node
        if min_nodes is not UNSET:
            field_dict["min_nodes"] = min_nodes
        if network is not UNSET:
            field_dict["network"] = network
        if nodes is not UNSET:
            field_dict["nodes"] = nodes
        if nodes_per_allocation is not UNSET:
            field_dict["nodes_per_allocation"] = nodes_per_allocation
        if partition is not UNSET:
            field_dict["partition"] = partition
        if projects is not UNSET:
            field_dict["projects"] = projects
        if qos is not UNSET:
            field_dict["qos"] = qos
        if resources is not UNSET:
            field_dict["resources"] = resources
        if sbatch_args is not UNSET:
            field_dict["sbatch_args"] = sbatch_args
        if slots is not UNSET:
            field_dict["slots"] = slots
        if state is not UNSET:
            field_dict["state"] = state
        if status is not UNSET:
            field_dict["status"] = status
        if time_limit is not UNSET:
            field_dict["time_limit"] = time_limit
        if workers_per_allocation is not UNSET:
            field_dict["workers_per_allocation"] = workers_per_allocation

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.activity_info import ActivityInfo
        from ..models.allocation_info import AllocationInfo
        from ..models.compute_env_detail_resources_type_0 import (
            ComputeEnvDetailResourcesType0,
        )
        from ..models.node_ref import NodeRef
        from ..models.provider_error import ProviderError

        d = dict(src_dict)
        name = d.pop("name")

        provider = d.pop("provider")

        def _parse_account(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        account = _parse_account(d.pop("account", UNSET))

        _activities = d.pop("activities", UNSET)
        activities: list[ActivityInfo] | Unset = UNSET
        if _activities is not UNSET:
            activities = []
            for activities_item_data in _activities:
                activities_item = ActivityInfo.from_dict(activities_item_data)

                activities.append(activities_item)

        _allocations = d.pop("allocations", UNSET)
        allocations: list[AllocationInfo] | Unset = UNSET
        if _allocations is not UNSET:
            allocations = []
            for allocations_item_data in _allocations:
                allocations_item = AllocationInfo.from_dict(allocations_item_data)

                allocations.append(allocations_item)

        def _parse_cpus_per_node(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        cpus_per_node = _parse_cpus_per_node(d.pop("cpus_per_node", UNSET))

        creation_failures = d.pop("creation_failures", UNSET)

        def _parse_description(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        description = _parse_description(d.pop("description", UNSET))

        desired_nodes = d.pop("desired_nodes", UNSET)

        def _parse_idle_timeout(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        idle_timeout = _parse_idle_timeout(d.pop("idle_timeout", UNSET))

        def _parse_image(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        image = _parse_image(d.pop("image", UNSET))

        def _parse_instance_type(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        instance_type = _parse_instance_type(d.pop("instance_type", UNSET))

        def _parse_last_error(data: object) -> None | ProviderError | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                last_error_type_1 = ProviderError.from_dict(data)

                return last_error_type_1
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | ProviderError | Unset, data)

        last_error = _parse_last_error(d.pop("last_error", UNSET))

        def _parse_max_nodes(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_nodes = _parse_max_nodes(d.pop("max_nodes", UNSET))

        def _parse_max_pending_allocations(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_pending_allocations = _parse_max_pending_allocations(
            d.pop("max_pending_allocations", UNSET)
        )

        def _parse_memory_per_node(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        memory_per_node = _parse_memory_per_node(d.pop("memory_per_node", UNSET))

        def _parse_min_nodes(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        min_nodes = _parse_min_nodes(d.pop("min_nodes", UNSET))

        def _parse_network(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        network = _parse_network(d.pop("network", UNSET))

        _nodes = d.pop("nodes", UNSET)
        nodes: list[NodeRef] | Unset = UNSET
        if _nodes is not UNSET:
            nodes = []
            for nodes_item_data in _nodes:
                nodes_item = NodeRef.from_dict(nodes_item_data)

                nodes.append(nodes_item)

        def _parse_nodes_per_allocation(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        nodes_per_allocation = _parse_nodes_per_allocation(
            d.pop("nodes_per_allocation", UNSET)
        )

        def _parse_partition(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        partition = _parse_partition(d.pop("partition", UNSET))

        def _parse_projects(data: object) -> list[str] | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, list):
                    raise TypeError()
                projects_type_0 = cast(list[str], data)

                return projects_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(list[str] | None | Unset, data)

        projects = _parse_projects(d.pop("projects", UNSET))

        def _parse_qos(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        qos = _parse_qos(d.pop("qos", UNSET))

        def _parse_resources(
            data: object,
        ) -> ComputeEnvDetailResourcesType0 | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                resources_type_0 = ComputeEnvDetailResourcesType0.from_dict(data)

                return resources_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(ComputeEnvDetailResourcesType0 | None | Unset, data)

        resources = _parse_resources(d.pop("resources", UNSET))

        def _parse_sbatch_args(data: object) -> list[str] | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, list):
                    raise TypeError()
                sbatch_args_type_0 = cast(list[str], data)

                return sbatch_args_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(list[str] | None | Unset, data)

        sbatch_args = _parse_sbatch_args(d.pop("sbatch_args", UNSET))

        def _parse_slots(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        slots = _parse_slots(d.pop("slots", UNSET))

        state = d.pop("state", UNSET)

        def _parse_status(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        status = _parse_status(d.pop("status", UNSET))

        def _parse_time_limit(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        time_limit = _parse_time_limit(d.pop("time_limit", UNSET))

        def _parse_workers_per_allocation(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        workers_per_allocation = _parse_workers_per_allocation(
            d.pop("workers_per_allocation", UNSET)
        )

        compute_env_detail = cls(
            name=name,
            provider=provider,
            account=account,
            activities=activities,
            allocations=allocations,
            cpus_per_node=cpus_per_node,
            creation_failures=creation_failures,
            description=description,
            desired_nodes=desired_nodes,
            idle_timeout=idle_timeout,
            image=image,
            instance_type=instance_type,
            last_error=last_error,
            max_nodes=max_nodes,
            max_pending_allocations=max_pending_allocations,
            memory_per_node=memory_per_node,
            min_nodes=min_nodes,
            network=network,
            nodes=nodes,
            nodes_per_allocation=nodes_per_allocation,
            partition=partition,
            projects=projects,
            qos=qos,
            resources=resources,
            sbatch_args=sbatch_args,
            slots=slots,
            state=state,
            status=status,
            time_limit=time_limit,
            workers_per_allocation=workers_per_allocation,
        )

        return compute_env_detail
