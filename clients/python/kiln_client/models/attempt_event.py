from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar

from attrs import define as _attrs_define

if TYPE_CHECKING:
    from ..models.attempt_event_kind_type_0 import AttemptEventKindType0
    from ..models.attempt_event_kind_type_1 import AttemptEventKindType1
    from ..models.attempt_event_kind_type_2 import AttemptEventKindType2
    from ..models.attempt_event_kind_type_3 import AttemptEventKindType3
    from ..models.attempt_event_kind_type_4 import AttemptEventKindType4
    from ..models.attempt_event_kind_type_5 import AttemptEventKindType5
    from ..models.attempt_event_kind_type_6 import AttemptEventKindType6
    from ..models.attempt_event_kind_type_7 import AttemptEventKindType7
    from ..models.attempt_event_kind_type_8 import AttemptEventKindType8
    from ..models.attempt_event_kind_type_9 import AttemptEventKindType9
    from ..models.attempt_event_kind_type_10 import AttemptEventKindType10
    from ..models.attempt_key import AttemptKey


T = TypeVar("T", bound="AttemptEvent")


@_attrs_define
class AttemptEvent:
    """
    Attributes:
        key (AttemptKey): Names one attempt of one task instance. (It travels in answers too, so it tolerates unknown
            fields; the request bodies around it do not.)
        kind (AttemptEventKindType0 | AttemptEventKindType1 | AttemptEventKindType10 | AttemptEventKindType2 |
            AttemptEventKindType3 | AttemptEventKindType4 | AttemptEventKindType5 | AttemptEventKindType6 |
            AttemptEventKindType7 | AttemptEventKindType8 | AttemptEventKindType9): What happened to an attempt: `{"type":
            "exited", "code": 3}`, `{"type": "timed_out"}`, …
    """

    key: AttemptKey
    kind: (
        AttemptEventKindType0
        | AttemptEventKindType1
        | AttemptEventKindType10
        | AttemptEventKindType2
        | AttemptEventKindType3
        | AttemptEventKindType4
        | AttemptEventKindType5
        | AttemptEventKindType6
        | AttemptEventKindType7
        | AttemptEventKindType8
        | AttemptEventKindType9
    )

    def to_dict(self) -> dict[str, Any]:
        from ..models.attempt_event_kind_type_0 import AttemptEventKindType0
        from ..models.attempt_event_kind_type_1 import AttemptEventKindType1
        from ..models.attempt_event_kind_type_2 import AttemptEventKindType2
        from ..models.attempt_event_kind_type_3 import AttemptEventKindType3
        from ..models.attempt_event_kind_type_4 import AttemptEventKindType4
        from ..models.attempt_event_kind_type_5 import AttemptEventKindType5
        from ..models.attempt_event_kind_type_6 import AttemptEventKindType6
        from ..models.attempt_event_kind_type_7 import AttemptEventKindType7
        from ..models.attempt_event_kind_type_8 import AttemptEventKindType8
        from ..models.attempt_event_kind_type_9 import AttemptEventKindType9

        key = self.key.to_dict()

        kind: dict[str, Any]
        if (
            isinstance(self.kind, AttemptEventKindType0)
            or isinstance(self.kind, AttemptEventKindType1)
            or isinstance(self.kind, AttemptEventKindType2)
            or isinstance(self.kind, AttemptEventKindType3)
            or isinstance(self.kind, AttemptEventKindType4)
            or isinstance(self.kind, AttemptEventKindType5)
            or isinstance(self.kind, AttemptEventKindType6)
            or isinstance(self.kind, AttemptEventKindType7)
            or isinstance(self.kind, AttemptEventKindType8)
            or isinstance(self.kind, AttemptEventKindType9)
        ):
            kind = self.kind.to_dict()
        else:
            kind = self.kind.to_dict()

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "key": key,
                "kind": kind,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.attempt_event_kind_type_0 import AttemptEventKindType0
        from ..models.attempt_event_kind_type_1 import AttemptEventKindType1
        from ..models.attempt_event_kind_type_2 import AttemptEventKindType2
        from ..models.attempt_event_kind_type_3 import AttemptEventKindType3
        from ..models.attempt_event_kind_type_4 import AttemptEventKindType4
        from ..models.attempt_event_kind_type_5 import AttemptEventKindType5
        from ..models.attempt_event_kind_type_6 import AttemptEventKindType6
        from ..models.attempt_event_kind_type_7 import AttemptEventKindType7
        from ..models.attempt_event_kind_type_8 import AttemptEventKindType8
        from ..models.attempt_event_kind_type_9 import AttemptEventKindType9
        from ..models.attempt_event_kind_type_10 import AttemptEventKindType10
        from ..models.attempt_key import AttemptKey

        d = dict(src_dict)
        key = AttemptKey.from_dict(d.pop("key"))

        def _parse_kind(
            data: object,
        ) -> (
            AttemptEventKindType0
            | AttemptEventKindType1
            | AttemptEventKindType10
            | AttemptEventKindType2
            | AttemptEventKindType3
            | AttemptEventKindType4
            | AttemptEventKindType5
            | AttemptEventKindType6
            | AttemptEventKindType7
            | AttemptEventKindType8
            | AttemptEventKindType9
        ):
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                componentsschemas_attempt_event_kind_type_0 = (
                    AttemptEventKindType0.from_dict(data)
                )

                return componentsschemas_attempt_event_kind_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                componentsschemas_attempt_event_kind_type_1 = (
                    AttemptEventKindType1.from_dict(data)
                )

                return componentsschemas_attempt_event_kind_type_1
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                componentsschemas_attempt_event_kind_type_2 = (
                    AttemptEventKindType2.from_dict(data)
                )

                return componentsschemas_attempt_event_kind_type_2
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                componentsschemas_attempt_event_kind_type_3 = (
                    AttemptEventKindType3.from_dict(data)
                )

                return componentsschemas_attempt_event_kind_type_3
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                componentsschemas_attempt_event_kind_type_4 = (
                    AttemptEventKindType4.from_dict(data)
                )

                return componentsschemas_attempt_event_kind_type_4
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                componentsschemas_attempt_event_kind_type_5 = (
                    AttemptEventKindType5.from_dict(data)
                )

                return componentsschemas_attempt_event_kind_type_5
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                componentsschemas_attempt_event_kind_type_6 = (
                    AttemptEventKindType6.from_dict(data)
                )

                return componentsschemas_attempt_event_kind_type_6
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                componentsschemas_attempt_event_kind_type_7 = (
                    AttemptEventKindType7.from_dict(data)
                )

                return componentsschemas_attempt_event_kind_type_7
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                componentsschemas_attempt_event_kind_type_8 = (
                    AttemptEventKindType8.from_dict(data)
                )

                return componentsschemas_attempt_event_kind_type_8
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                componentsschemas_attempt_event_kind_type_9 = (
                    AttemptEventKindType9.from_dict(data)
                )

                return componentsschemas_attempt_event_kind_type_9
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            if not isinstance(data, dict):
                raise TypeError()
            componentsschemas_attempt_event_kind_type_10 = (
                AttemptEventKindType10.from_dict(data)
            )

            return componentsschemas_attempt_event_kind_type_10

        kind = _parse_kind(d.pop("kind"))

        attempt_event = cls(
            key=key,
            kind=kind,
        )

        return attempt_event
