from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.compute_env_detail_resources_type_0 import (
        ComputeEnvDetailResourcesType0,
    )
    from ..models.node_ref import NodeRef


T = TypeVar("T", bound="ComputeEnvDetail")


@_attrs_define
class ComputeEnvDetail:
    """`GET /v1/compute-envs/{name}` (also the answer of create and scale): the environment and
    its nodes, flattened into one object.

        Attributes:
            name (str):
            provider (str): `local`, `static` or `docker`.
            description (None | str | Unset):
            desired_nodes (int | Unset): Defaults to 0 when omitted.
            image (None | str | Unset):
            instance_type (None | str | Unset): A catalog instance type; exclusive with `resources`.
            network (None | str | Unset):
            nodes (list[NodeRef] | Unset):
            resources (ComputeEnvDetailResourcesType0 | None | Unset): Explicit resources (`{"cpus": …, "memory": …}`);
                exclusive with `instance_type`.
            slots (int | None | Unset):
    """

    name: str
    provider: str
    description: None | str | Unset = UNSET
    desired_nodes: int | Unset = UNSET
    image: None | str | Unset = UNSET
    instance_type: None | str | Unset = UNSET
    network: None | str | Unset = UNSET
    nodes: list[NodeRef] | Unset = UNSET
    resources: ComputeEnvDetailResourcesType0 | None | Unset = UNSET
    slots: int | None | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        from ..models.compute_env_detail_resources_type_0 import (
            ComputeEnvDetailResourcesType0,
        )

        name = self.name

        provider = self.provider

        description: None | str | Unset
        if isinstance(self.description, Unset):
            description = UNSET
        else:
            description = self.description

        desired_nodes = self.desired_nodes

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

        resources: dict[str, Any] | None | Unset
        if isinstance(self.resources, Unset):
            resources = UNSET
        elif isinstance(self.resources, ComputeEnvDetailResourcesType0):
            resources = self.resources.to_dict()
        else:
            resources = self.resources

        slots: int | None | Unset
        if isinstance(self.slots, Unset):
            slots = UNSET
        else:
            slots = self.slots

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "name": name,
                "provider": provider,
            }
        )
        if description is not UNSET:
            field_dict["description"] = description
        if desired_nodes is not UNSET:
            field_dict["desired_nodes"] = desired_nodes
        if image is not UNSET:
            field_dict["image"] = image
        if instance_type is not UNSET:
            field_dict["instance_type"] = instance_type
        if network is not UNSET:
            field_dict["network"] = network
        if nodes is not UNSET:
            field_dict["nodes"] = nodes
        if resources is not UNSET:
            field_dict["resources"] = resources
        if slots is not UNSET:
            field_dict["slots"] = slots

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.compute_env_detail_resources_type_0 import (
            ComputeEnvDetailResourcesType0,
        )
        from ..models.node_ref import NodeRef

        d = dict(src_dict)
        name = d.pop("name")

        provider = d.pop("provider")

        def _parse_description(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        description = _parse_description(d.pop("description", UNSET))

        desired_nodes = d.pop("desired_nodes", UNSET)

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

        def _parse_slots(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        slots = _parse_slots(d.pop("slots", UNSET))

        compute_env_detail = cls(
            name=name,
            provider=provider,
            description=description,
            desired_nodes=desired_nodes,
            image=image,
            instance_type=instance_type,
            network=network,
            nodes=nodes,
            resources=resources,
            slots=slots,
        )

        return compute_env_detail
