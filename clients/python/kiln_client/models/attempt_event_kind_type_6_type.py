from enum import StrEnum


class AttemptEventKindType6Type(StrEnum):
    INPUT_MAPPING_FAILED = "input_mapping_failed"

    def __str__(self) -> str:
        return str(self.value)
