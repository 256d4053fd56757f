from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.compute_env_resources_type_0 import ComputeEnvResourcesType0


T = TypeVar("T", bound="ComputeEnv")


@_attrs_define
class ComputeEnv:
    """A compute environment: the body of `POST /v1/compute-envs`.

    Its size is fixed (`desired_nodes`) or follows the backlog (`max_nodes`, with `min_nodes`,
    `idle_timeout` and `max_pending_allocations`). The `slurm` provider's fields say how each
    allocation is submitted with `sbatch`.

        Attributes:
            name (str):
            provider (str): `local`, `static` or `docker`.
            account (None | str | Unset): `slurm`: `sbatch --account`.
            cpus_per_node (int | None | Unset): `slurm`: CPUs asked for on each node [default 1].
            description (None | str | Unset):
            desired_nodes (int | Unset): Defaults to 0 when omitted.
            idle_timeout (None | str | Unset): Backlog scaling: a node idle this long is removed, e.g. `5m` [default 5m].
            image (None | str | Unset):
            instance_type (None | str | Unset): A catalog instance type; exclusive with `resources`.
            max_nodes (int | None | Unset): Backlog scaling: at most this many nodes; setting it turns backlog scaling on.
            max_pending_allocations (int | None | Unset): Backlog scaling: at most this many allocations (Slurm jobs, or
                nodes starting) on
                their way at once [default 4].
            memory_per_node (None | str | Unset): `slurm`: `sbatch --mem`, e.g. `4GiB`.
            min_nodes (int | None | Unset): Backlog scaling: nodes kept even without work [default 0].
            network (None | str | Unset):
            nodes_per_allocation (int | None | Unset): `slurm`: `sbatch --nodes` [default 1].
            partition (None | str | Unset): `slurm`: `sbatch --partition`.
            projects (list[str] | None | Unset): The projects whose jobs may run here, the owner first [default: the
                creator's
                project]. Only an admin may name other projects than its own.
            qos (None | str | Unset): `slurm`: `sbatch --qos`.
            resources (ComputeEnvResourcesType0 | None | Unset): Explicit resources (`{"cpus": …, "memory": …}`); exclusive
                with `instance_type`.
            sbatch_args (list[str] | None | Unset): `slurm`: further `sbatch` arguments, passed as they are.
            slots (int | None | Unset):
            time_limit (None | str | Unset): `slurm`: `sbatch --time`, e.g. `2h`; the agents stop taking work that would not
                end
                before it.
            workers_per_allocation (int | None | Unset): `slurm`: agents (Kiln nodes) started in each allocation [default:
                one per Slurm node].
    """

    name: str
    provider: str
    account: None | str | Unset = UNSET
    cpus_per_node: int | None | Unset = UNSET
    description: None | str | Unset = UNSET
    desired_nodes: int | Unset = UNSET
    idle_timeout: None | str | Unset = UNSET
    image: None | str | Unset = UNSET
    instance_type: None | str | Unset = UNSET
    max_nodes: int | None | Unset = UNSET
    max_pending_allocations: int | None | Unset = UNSET
    memory_per_node: None | str | Unset = UNSET
    min_nodes: int | None | Unset = UNSET
    network: None | str | Unset = UNSET
    nodes_per_allocation: int | None | Unset = UNSET
    partition: None | str | Unset = UNSET
    projects: list[str] | None | Unset = UNSET
    qos: None | str | Unset = UNSET
    resources: ComputeEnvResourcesType0 | None | Unset = UNSET
    sbatch_args: list[str] | None | Unset = UNSET
    slots: int | None | Unset = UNSET
    time_limit: None | str | Unset = UNSET
    workers_per_allocation: int | None | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        from ..models.compute_env_resources_type_0 import ComputeEnvResourcesType0

        name = self.name

        provider = self.provider

        account: None | str | Unset
        if isinstance(self.account, Unset):
            account = UNSET
        else:
            account = self.account

        cpus_per_node: int | None | Unset
        if isinstance(self.cpus_per_node, Unset):
            cpus_per_node = UNSET
        else:
            cpus_per_node = self.cpus_per_node

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
        elif isinstance(self.resources, ComputeEnvResourcesType0):
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
        if cpus_per_node is not UNSET:
            field_dict["cpus_per_node"] = cpus_per_node
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
        if time_limit is not UNSET:
            field_dict["time_limit"] = time_limit
        if workers_per_allocation is not UNSET:
            field_dict["workers_per_allocation"] = workers_per_allocation

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.compute_env_resources_type_0 import ComputeEnvResourcesType0

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

        def _parse_cpus_per_node(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        cpus_per_node = _parse_cpus_per_node(d.pop("cpus_per_node", UNSET))

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

        def _parse_resources(data: object) -> ComputeEnvResourcesType0 | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                resources_type_0 = ComputeEnvResourcesType0.from_dict(data)

                return resources_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(ComputeEnvResourcesType0 | None | Unset, data)

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

        compute_env = cls(
            name=name,
            provider=provider,
            account=account,
            cpus_per_node=cpus_per_node,
            description=description,
            desired_nodes=desired_nodes,
            idle_timeout=idle_timeout,
            image=image,
            instance_type=instance_type,
            max_nodes=max_nodes,
            max_pending_allocations=max_pending_allocations,
            memory_per_node=memory_per_node,
            min_nodes=min_nodes,
            network=network,
            nodes_per_allocation=nodes_per_allocation,
            partition=partition,
            projects=projects,
            qos=qos,
            resources=resources,
            sbatch_args=sbatch_args,
            slots=slots,
            time_limit=time_limit,
            workers_per_allocation=workers_per_allocation,
        )

        return compute_env
