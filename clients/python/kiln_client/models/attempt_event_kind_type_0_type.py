from enum import StrEnum


class AttemptEventKindType0Type(StrEnum):
    STARTED = "started"

    def __str__(self) -> str:
        return str(self.value)
