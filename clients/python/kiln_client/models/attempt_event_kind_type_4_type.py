from enum import StrEnum


class AttemptEventKindType4Type(StrEnum):
    STOPPED = "stopped"

    def __str__(self) -> str:
        return str(self.value)
