"""Application modules of the outbound-call function app (one responsibility each)."""
