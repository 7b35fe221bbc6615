"""The HTTP/tRPC edge: one Starlette endpoint, the procedures, and the wiring of everything."""

__all__ = ["app", "cli", "codec", "errors", "resolver", "router"]
