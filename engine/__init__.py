"""The blueprint engine: model and validation, scheduler, node types, events and storage ports."""

__all__: list[str] = []
