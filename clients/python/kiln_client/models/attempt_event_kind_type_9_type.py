from enum import StrEnum


class AttemptEventKindType9Type(StrEnum):
    IMAGE_NOT_FOUND = "image_not_found"

    def __str__(self) -> str:
        return str(self.value)
