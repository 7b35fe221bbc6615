"""Server settings: one frozen record, filled from the command line and the environment."""

from __future__ import annotations

import msgspec

from engine.engine import EngineLimits
from engine.webhooks import LOOPBACK, WebhookPolicy
from rpc.codec import Transformer
from rpc.ratelimit import RateLimit
from rpc.resolver import WireOptions
from store import Durability


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1  #: server processes sharing the port and the database file
    db: str = "data/blueprint.db"
    prefix: str = "/api/trpc"
    transformer: Transformer = Transformer.SUPERJSON
    dev: bool = False  #: stack traces in errors
    cors_origins: tuple[str, ...] = ()  #: browser origins allowed besides our own
    allow_method_override: bool = False  #: queries may also come by POST
    max_batch_size: int = 50
    max_input_bytes: int = 64 * 1024  #: decoded `input` of a GET
    max_body_bytes: int = 1024 * 1024
    max_depth: int = 64
    sse_ping_seconds: float = 10.0
    access_log: bool = False
    log_level: str = "info"
    durability: Durability = Durability.NORMAL
    status_cache_bytes: int = 64 * 1024 * 1024
    blueprints_dir: str = "blueprints"  #: the folder file and folder batch sources may read
    load_blueprints: bool = False  #: add the folder's *.json to the catalogue at start
    plugins: tuple[str, ...] = ()  #: modules whose register(registry) adds node types
    max_running_executions: int = 16
    node_concurrency: int = 8
    max_nodes: int = 10_000
    webhook_allow: tuple[str, ...] = LOOPBACK  #: the hosts webhooks may go to
    rate_limit: RateLimit | None = RateLimit(rate=100, burst=200)  #: per key; None: off
    max_active_per_key: int = 1000  #: queued, running and paused executions one key started
    log_message_bytes: int = 8192  #: a log message is cut beyond this

    @property
    def webhooks(self) -> WebhookPolicy:
        return WebhookPolicy(allowed_hosts=self.webhook_allow)

    @property
    def engine_limits(self) -> EngineLimits:
        return EngineLimits(
            max_running_executions=self.max_running_executions,
            node_concurrency=self.node_concurrency,
            max_nodes=self.max_nodes,
            log_message_bytes=self.log_message_bytes,
        )

    @property
    def wire(self) -> WireOptions:
        return WireOptions(
            transformer=self.transformer,
            max_batch_size=self.max_batch_size,
            max_input_bytes=self.max_input_bytes,
            max_depth=self.max_depth,
            allow_method_override=self.allow_method_override,
            dev=self.dev,
            sse_ping_seconds=self.sse_ping_seconds,
        )

    @property
    def max_url_bytes(self) -> int:
        """Room for the input fully percent-encoded plus a long batch path, and a little over."""
        return 3 * self.max_input_bytes + 32 * 1024
