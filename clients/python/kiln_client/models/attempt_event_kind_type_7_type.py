from enum import StrEnum


class AttemptEventKindType7Type(StrEnum):
    OUTPUT_MAPPING_FAILED = "output_mapping_failed"

    def __str__(self) -> str:
        return str(self.value)
