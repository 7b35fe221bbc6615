"""The procedures, one module per namespace, composed once into the root router."""

from rpc.procedures import blueprint, execution, system
from rpc.router import RouterTree


def root_router() -> RouterTree:
    return {
        "blueprint": blueprint.router,
        "execution": execution.router,
        "system": system.router,
    }


__all__ = ["root_router"]
