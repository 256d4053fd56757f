from enum import StrEnum


class AttemptEventKindType2Type(StrEnum):
    SIGNALED = "signaled"

    def __str__(self) -> str:
        return str(self.value)
