from enum import StrEnum


class AttemptEventKindType10Type(StrEnum):
    IMAGE_PULL_FAILED = "image_pull_failed"

    def __str__(self) -> str:
        return str(self.value)
