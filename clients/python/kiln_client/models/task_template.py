from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.task_template_task import TaskTemplateTask


T = TypeVar("T", bound="TaskTemplate")


@_attrs_define
class TaskTemplate:
    """A task template: `POST /v1/task-templates` (request and `201` answer),
    `GET /v1/task-templates/{name}`.

        Attributes:
            name (str):
            task (TaskTemplateTask): Task fields of the job spec (`command`, `instances`, `env`, …), checked by the server.
            description (None | str | Unset):
    """

    name: str
    task: TaskTemplateTask
    description: None | str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        name = self.name

        task = self.task.to_dict()

        description: None | str | Unset
        if isinstance(self.description, Unset):
            description = UNSET
        else:
            description = self.description

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "name": name,
                "task": task,
            }
        )
        if description is not UNSET:
            field_dict["description"] = description

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.task_template_task import TaskTemplateTask

        d = dict(src_dict)
        name = d.pop("name")

        task = TaskTemplateTask.from_dict(d.pop("task"))

        def _parse_description(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        description = _parse_description(d.pop("description", UNSET))

        task_template = cls(
            name=name,
            task=task,
            description=description,
        )

        return task_template
