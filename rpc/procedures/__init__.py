"""The procedures, one module per namespace, composed once into the root router."""

from rpc.procedures import batch, blueprint, execution, execution_control, system
from rpc.router import RouterTree, merge


def root_router() -> RouterTree:
    return {
        "batch": batch.router,
        "blueprint": blueprint.router,
        "execution": merge(execution.router, execution_control.router),
        "system": system.router,
    }


__all__ = ["root_router"]
