from enum import StrEnum


class AttemptEventKindType5Type(StrEnum):
    START_FAILED = "start_failed"

    def __str__(self) -> str:
        return str(self.value)
