"""The procedures, one module per namespace, composed once into the root router."""

from rpc.procedures import blueprint, execution, execution_control, system
from rpc.router import RouterTree, merge


def root_router() -> RouterTree:
    return {
        "blueprint": blueprint.router,
        "execution": merge(execution.router, execution_control.router),
        "system": system.router,
    }


__all__ = ["root_router"]
