from enum import StrEnum


class AttemptEventKindType8Type(StrEnum):
    OUT_OF_MEMORY = "out_of_memory"

    def __str__(self) -> str:
        return str(self.value)
