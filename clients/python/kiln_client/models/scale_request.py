from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="ScaleRequest")


@_attrs_define
class ScaleRequest:
    """`POST /v1/compute-envs/{name}/scale`.

    Attributes:
        desired_nodes (int):
    """

    desired_nodes: int

    def to_dict(self) -> dict[str, Any]:
        desired_nodes = self.desired_nodes

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "desired_nodes": desired_nodes,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        desired_nodes = d.pop("desired_nodes")

        scale_request = cls(
            desired_nodes=desired_nodes,
        )

        return scale_request
