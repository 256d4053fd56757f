from enum import StrEnum


class AttemptEventKindType1Type(StrEnum):
    EXITED = "exited"

    def __str__(self) -> str:
        return str(self.value)
