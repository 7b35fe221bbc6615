"""Property-based fuzzing of every real procedure, over a real server and real sockets.

Each procedure that `flatten(root_router())` lists (so one added later is fuzzed too) gets
random inputs: any JSON, and inputs built from its own msgspec input type, field by field,
with values near the valid ones (ids the server made, unknown and malformed ids, numbers at
and past their bounds, huge strings, path traversal for batch file sources, blueprint
documents with faults sown in them), fields missing, extra fields, wrong types. Each goes by
the method its kind asks (a query by GET with a superjson `?input=`, a mutation by POST) and
now and then by the wrong one; a subscription is opened, read for a moment, then closed.

The oracle is the contract (API.md §1, §5): a well-formed tRPC envelope, never a 5xx, the
HTTP status equal to `data.httpStatus`, codes from the contract's table, BAD_REQUEST messages
that say something, a success that decodes as the procedure's declared output type. After
every test /healthz and `system.health` (database ok) answer and the server logged no ERROR.

The seeded state (blueprints, executions completed, paused on input, on a pause node and at a
breakpoint, failed, and batches) is put back before each test, so `batch.clearAll`,
`execution.stopAll` and `blueprint.delete` may be fuzzed like the rest.

A longer hunt: `FUZZ_SCALE=10 pytest --timeout=0 tests/rpc/test_fuzz_procedures.py`.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import msgspec.inspect as mi
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from rpc.procedures import root_router
from rpc.router import Kind, Procedure, flatten
from rpc.settings import Settings
from tests._logs import ErrorRecords, error_records
from tests.engine.test_fuzz_blueprints import dags, mutated, nested
from tests.rpc._codes import CLIENT_ERRORS
from tests.servers import running_server

pytestmark = [
    pytest.mark.slow,
    # The server runs in this process: its retry and webhook jitter draw from the global
    # `random` while hypothesis draws, which hypothesis takes for a strategy using it.
    pytest.mark.filterwarnings(
        "ignore:Do not use the `random` module:hypothesis.errors.HypothesisDeprecationWarning"
    ),
]

PREFIX = "/api/trpc/"
PROCEDURES: dict[str, Procedure] = flatten(root_router())
PATHS = sorted(PROCEDURES)
SUBSCRIPTIONS = [p for p in PATHS if PROCEDURES[p].kind is Kind.SUBSCRIPTION]
SCALE = float(os.environ.get("FUZZ_SCALE", "1"))  #: FUZZ_SCALE=10 for a longer hunt
SSE_SECONDS = 0.5  #: how long a subscription is read before the client leaves
MAX_INPUT = 64 * 1024  #: the default limit on a GET's decoded input
MAX_URL = 60_000  #: longer GETs go over a raw socket (httpx refuses URLs past 64 KiB)

CODES = CLIENT_ERRORS  #: a 5xx is a failure of the fuzz, whatever its numbers
EVENT_TYPES = {"execution-update", "node-execution", "log", "batch-update"}

FUZZ = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
)


def fuzz(examples: int) -> settings:
    return settings(FUZZ, max_examples=max(1, round(examples * SCALE)))


# --------------------------------------------------------------------------------------------
# Ids the server made, kept so fuzzed inputs can name real things


ID_FORMS = {
    "exec": re.compile(r"^exec_[0-9]{1,16}_[0-9a-z]{5}$"),
    "bp": re.compile(r"^bp_[0-9]{1,16}_[0-9a-z]{5}$"),
    "batch": re.compile(r"^batch_[0-9]{1,16}_[0-9a-z]{5}$"),
}
ID_KEYS = {"executionId": "exec", "id": "exec", "retryOf": "exec", "blueprintId": "bp"}
ID_KEYS["batchId"] = "batch"


@dataclass
class Pool:
    """Ids by kind: the seeded ones first (shrinking picks them), then those the fuzzing made."""

    ids: dict[str, list[str]] = field(default_factory=lambda: {kind: [] for kind in ID_FORMS})
    event_ids: list[str] = field(default_factory=lambda: ["1", "1.1"])

    def pick(self, kind: str, index: int) -> str:
        known = self.ids[kind]
        return known[index % len(known)] if known else f"{kind}_1_aaaaa"

    def harvest(self, value: Any) -> None:
        """Every id of a known form anywhere in a result."""
        if isinstance(value, dict):
            for key, item in value.items():
                kind = ID_KEYS.get(key)
                if kind and isinstance(item, str) and ID_FORMS[kind].match(item):
                    self.add(kind, item)
                self.harvest(item)
        elif isinstance(value, list):
            for item in value[:50]:
                self.harvest(item)

    def add(self, kind: str, value: str) -> None:
        known = self.ids[kind]
        if value not in known and len(known) < 200:
            known.append(value)


POOL = Pool()


# --------------------------------------------------------------------------------------------
# Values

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=10,
)
# Values a sown fault may put in a blueprint: bounded, so no fuzzed delay runs for minutes.
doc_values = st.recursive(
    st.none()
    | st.booleans()
    | st.sampled_from([-1, 0, 1, 2, 50, 2**31, 2**63, 2**64, 10**20, 0.5, -0.0, 1e300])
    | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)
huge_strings = st.sampled_from([1_000, 70_000, 300_000]).map(lambda n: "x" * n)
odd_strings = st.sampled_from(
    ["", " ", "\x00", "\n", "é", "💥", "\u202e", "%00", "%s", "'; DROP TABLE x; --", "../"]
)
documents = (
    dags()
    | dags(loose=True)
    | dags().flatmap(lambda d: mutated(d, doc_values))
    | st.just({"name": "deep", "nodes": [{"id": "a", "type": "noop", "config": nested(70)}]})
    | json_values
)


def malformed_ids(kind: str) -> st.SearchStrategy[str]:
    good = f"{kind}_1733050800000_a3b7z"
    return st.sampled_from(
        [
            "",
            f"{kind}_",
            f"{kind}_1_AAAAA",
            f"{kind}_12345678901234567_aaaaa",
            f"{kind}_1_aaaa",
            f"{kind}_-1_aaaaa",
            f" {good}",
            f"{good} ",
            f"{good}\n",
            f"{good}\x00",
            f"../{good}",
            f"{kind}_\uff11_aaaaa",
            good.upper(),
            "exec_1_aaaaa" if kind != "exec" else "bp_1_aaaaa",
            f"{kind}_{'1' * 5000}_aaaaa",
        ]
    )


def ids(kind: str, faulty: bool = True) -> st.SearchStrategy[str]:
    """Ids the server made (mostly) and well-formed unknown ones; malformed ones if `faulty`."""
    known = st.integers(0, 10**6).map(lambda i: POOL.pick(kind, i))
    unknown = st.sampled_from([f"{kind}_1_aaaaa", f"{kind}_9999999999999999_zzzzz"])
    return known | known | known | unknown | (malformed_ids(kind) if faulty else st.nothing())


# File and folder sources of batch.start: the folder's files, and ways out of it.
FILES = [
    "ok.json",
    "pauses.json",
    "bad.json",
    "notjson.json",
    "sub/nested.json",
    "deep.json",
    "deeptemplate.json",
    "big.json",
    "link-out.json",
    "dir.json",
    "loop.json",
    "nope.json",
]
ESCAPES = [
    "../secret.json",
    "sub/../../secret.json",
    "/etc/passwd",
    "/tmp",
    "/",
    "..",
    ".",
    "",
    "~",
    "sub",
    "sub/",
    "sub/../ok.json",
    "./ok.json",
    "%2e%2e/secret.json",
    "..\\secret.json",
    "ok.json\x00",
    "ok.json/",
    "a" * 300,
    "a/" * 3000,
    "é.json",
    "link-dir",
    "link-dir/secret.json",
]
paths = st.sampled_from(FILES) | st.sampled_from(ESCAPES) | st.text(max_size=12)
folders = st.sampled_from([".", "sub", "", "..", "/", "/tmp", "link-dir", "ok.json", "nope"])
folders |= st.sampled_from(ESCAPES)
event_ids = st.sampled_from(
    ["", "0", "1", "1.1", "1.9", "1.", ".1", "-1", "x", "1.2.3", "99999999999999999999.4", "\u0661"]
) | st.integers(0, 10**6).map(lambda i: POOL.event_ids[i % len(POOL.event_ids)])
webhook_urls = st.sampled_from(
    [
        "http://127.0.0.1:1/hook",
        "http://localhost:1/",
        "http://[::1]:1/",
        "http://[::1",
        "http://[",
        "http://127.0.0.1:99999/",
        "http://127.0.0.1:x/",
        "http://example.com/",
        "ftp://127.0.0.1/",
        "http://",
        "",
        "http://user:pass@127.0.0.1:1/",
        "http://127.0.0.1:1/\n",
    ]
)

# Values for fields by their wire name, where the type alone says too little: (values the
# field takes, values it may refuse). Waits are kept short: an execution started here may
# never end by itself.
HINTS: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    "executionId": (ids("exec", faulty=False), malformed_ids("exec")),
    "blueprintId": (ids("bp", faulty=False), malformed_ids("bp")),
    "batchId": (ids("batch", faulty=False), malformed_ids("batch")),
    "blueprintIds": (
        st.lists(ids("bp", faulty=False), min_size=1, max_size=3),
        st.lists(ids("bp"), max_size=3) | st.lists(ids("bp"), min_size=1001, max_size=1001),
    ),
    "paths": (st.lists(st.sampled_from(FILES), min_size=1, max_size=3), st.lists(paths)),
    "folderPath": (st.sampled_from([".", "sub"]), folders),
    "lastEventId": (event_ids, event_ids),
    "nodeId": (
        st.sampled_from(["ask", "wait", "check", "bp", "a"]),
        st.sampled_from(["nope", "", "x" * 200]),
    ),
    "blueprint": (dags() | dags(loose=True), documents),
    "data": (st.fixed_dictionaries({"ok": st.booleans()}), json_values),
    "url": (st.sampled_from(["http://127.0.0.1:1/hook", "http://[::1]:1/"]), webhook_urls),
    "search": (st.sampled_from(["", "quick", "Q", "%", "_", "'", '"', "\\"]), st.text()),
    "waitMs": (st.integers(0, 1500), st.sampled_from([-1, 300_001, 2**63])),
    "idempotencyKey": (st.sampled_from(["k1", "k2", "k3", "\u00e9"]), st.sampled_from(["", " "])),
    "name": (st.text(min_size=1, max_size=8), odd_strings),
    "nodes": (
        dags().map(lambda d: d["nodes"]),
        documents.map(lambda d: d.get("nodes") if isinstance(d, dict) else d),
    ),
}
WRONG = json_values | huge_strings | odd_strings | st.sampled_from([[], {}, None, True, 2**64])


def values_of(info: mi.Type, name: str | None, faulty: bool) -> st.SearchStrategy[Any]:
    """Values for one field: those its type allows (or its name's hint), and if `faulty`
    also those at and past its bounds, and wrong ones."""
    if name in HINTS:
        good, bad = HINTS[name]
        return good | bad | WRONG if faulty else good
    if not faulty:
        return valid(info)
    return valid(info) | edges(info) | WRONG


def valid(info: mi.Type) -> st.SearchStrategy[Any]:
    """What the type accepts."""
    if isinstance(info, mi.Metadata):
        return valid(info.type)
    if isinstance(info, mi.StructType):
        return structs(info, faults=0)
    if isinstance(info, mi.UnionType):
        return st.one_of([valid(t) for t in info.types])
    if isinstance(info, mi.LiteralType):
        return st.sampled_from(list(info.values))
    if isinstance(info, mi.EnumType):
        return st.sampled_from([member.value for member in info.cls])
    if isinstance(info, mi.StrType):
        if info.pattern is not None:
            return st.from_regex(info.pattern)
        return st.text(min_size=info.min_length or 0, max_size=min(info.max_length or 12, 12))
    if isinstance(info, mi.IntType):
        low = info.ge if info.ge is not None else 0
        return st.integers(low, min(info.le if info.le is not None else low + 50, low + 50))
    if isinstance(info, mi.FloatType):
        return st.floats(allow_nan=False, allow_infinity=False)
    if isinstance(info, mi.BoolType):
        return st.booleans()
    if isinstance(info, mi.NoneType):
        return st.none()
    if isinstance(info, (mi.ListType, mi.VarTupleType, mi.SetType)):
        low = info.min_length or 0
        return st.lists(valid(info.item_type), min_size=low, max_size=max(low, 3))
    if isinstance(info, mi.DictType):
        return st.dictionaries(st.text(max_size=6), json_values, max_size=3)
    return json_values  # Any, and whatever else a later procedure declares


def edges(info: mi.Type) -> st.SearchStrategy[Any]:
    """Values at the type's bounds and just past them: what it may refuse."""
    if isinstance(info, mi.Metadata):
        return edges(info.type)
    if isinstance(info, mi.UnionType):
        return st.one_of([edges(t) for t in info.types])
    if isinstance(info, mi.StructType):
        return structs(info, faults=2)
    if isinstance(info, (mi.LiteralType, mi.EnumType)):
        return st.sampled_from(["", "x", "RUNNING", "CONTINUE"])
    if isinstance(info, mi.StrType):
        lengths = [n for n in (info.min_length, info.max_length) if n is not None]
        near = [n + d for n in lengths for d in (-1, 0, 1) if n + d >= 0]
        return st.sampled_from(["y" * n for n in near] or ["y"]) | odd_strings | huge_strings
    if isinstance(info, mi.IntType):
        near = [0, -1, 2**31, 2**63 - 1, 2**63, -(2**63) - 1, 2**64]
        for bound in (info.ge, info.le):
            near += [] if bound is None else [bound - 1, bound, bound + 1]
        return st.sampled_from(near)
    if isinstance(info, (mi.ListType, mi.VarTupleType, mi.SetType)):
        item = valid(info.item_type) | edges(info.item_type)
        sizes = [n for n in (info.max_length,) if n is not None and n <= 50]
        over = (
            st.lists(item, min_size=sizes[0] + 1, max_size=sizes[0] + 1) if sizes else st.nothing()
        )
        return st.lists(item, max_size=3) | over | st.just([])
    return WRONG


@st.composite
def structs(draw: st.DrawFn, info: mi.StructType, faults: int) -> dict[str, Any]:
    """An object of the struct's fields, each present (required ones always) with a value it
    takes, then `faults` faults sown: a field missing, wrong, at an edge, or one unknown."""
    value: dict[str, Any] = {}
    if info.tag_field is not None:
        value[info.tag_field] = info.tag
    for spec in info.fields:
        if spec.required or spec.encode_name in ("name", "nodes") or draw(st.booleans()):
            value[spec.encode_name] = draw(values_of(spec.type, spec.encode_name, False))
    if not faults and {"blueprintId", "blueprint"} <= value.keys():
        # Exactly one of them starts an execution; a version goes only with an id.
        dropped = draw(st.sampled_from(["blueprintId", "blueprint"]))
        del value[dropped]
        if dropped == "blueprintId":
            value.pop("version", None)
    specs = {spec.encode_name: spec for spec in info.fields}
    names = [*specs, *([info.tag_field] if info.tag_field else [])]
    for _ in range(faults):
        kind = draw(st.sampled_from(["wrong", "wrong", "wrong", "missing", "unknown"]))
        name = draw(st.sampled_from(names)) if names else "x"
        if kind == "missing":
            value.pop(name, None)
        elif kind == "unknown" or name not in specs:
            extra = draw(st.sampled_from(["extra", "json", "__proto__", "", "ID", name]))
            value[extra] = draw(WRONG)
        else:
            value[name] = draw(values_of(specs[name].type, name, True))
    return value


def inputs_for(path: str) -> st.SearchStrategy[Any]:
    """What to send to one procedure: an input its type takes, one with a fault or two sown
    in it, or any JSON."""
    proc = PROCEDURES[path]
    if proc.input_type is None:
        return json_values | st.none()
    if path in ("blueprint.create", "blueprint.validate"):
        return dags() | dags(loose=True) | documents
    info = mi.type_info(proc.input_type)
    if not isinstance(info, mi.StructType):
        return valid(info) | valid(info) | edges(info) | json_values
    return structs(info, 0) | structs(info, 0) | structs(info, 1) | structs(info, 2) | json_values


# --------------------------------------------------------------------------------------------
# The server, its blueprints folder, and the state the fuzzing starts from


def quick(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "description": "seeded",
        "nodes": [
            {"id": "a", "type": "noop"},
            {"id": "b", "type": "transform", "dependsOn": ["a"], "config": {"expression": "a"}},
        ],
    }


def asks() -> dict[str, Any]:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    node = {"id": "ask", "type": "input", "config": {"prompt": "ok?", "schema": schema}}
    return {"name": "asks", "nodes": [node, {"id": "z", "type": "noop", "dependsOn": ["ask"]}]}


SEEDS: dict[str, dict[str, Any]] = {
    "quick": quick("quick"),
    "asks": asks(),
    "waits": {"name": "waits", "nodes": [{"id": "wait", "type": "pause"}]},
    "fails": {
        "name": "fails",
        "nodes": [{"id": "check", "type": "assert", "config": {"expression": "`false`"}}],
    },
    "stops": {
        "name": "stops",
        "nodes": [{"id": "a", "type": "noop"}, {"id": "bp", "type": "noop", "breakpoint": True}],
    },
}
#: slot -> (seed, debug, the status it should be in)
EXECUTIONS = {
    "completed": ("quick", False, "completed"),
    "input": ("asks", False, "paused"),
    "wait": ("waits", False, "paused"),
    "failed": ("fails", False, "failed"),
    "breakpoint": ("stops", True, "paused"),
}


def write_folder(folder: Path) -> None:
    """Blueprint files good and bad, and ways out of the folder (a link, `..`)."""
    (folder / "sub").mkdir(parents=True)
    (folder / "dir.json").mkdir()
    write = lambda name, text: (folder / name).write_text(text)  # noqa: E731
    write("ok.json", json.dumps(quick("ok file")))
    write("pauses.json", json.dumps(SEEDS["waits"]))
    write("bad.json", json.dumps({"name": "bad", "nodes": [{"id": "a", "type": "nope"}]}))
    write("notjson.json", "{nodes: ")
    write("sub/nested.json", json.dumps(quick("nested file")))
    write("big.json", json.dumps({**quick("big"), "description": "x" * (1024 * 1024)}))
    # Deeper than any recursion limit, and deep enough inside a template to need one.
    write("deep.json", "[" * 100_000 + "]" * 100_000)
    template = "[" * 30_000 + '"{{ input }}"' + "]" * 30_000
    node = '{"id": "t", "type": "transform", "config": {"template": ' + template + "}}"
    write("deeptemplate.json", '{"name": "deep", "nodes": [' + node + "]}")
    secret = folder.parent / "secret.json"
    secret.write_text(json.dumps(quick("secret")))
    (folder / "link-out.json").symlink_to(secret)
    (folder / "link-dir").symlink_to(folder.parent)
    (folder / "loop.json").symlink_to(folder / "loop.json")


@dataclass
class World:
    url: str
    client: httpx.Client
    slots: dict[str, str] = field(default_factory=dict)  #: execution slot -> its id
    blueprints: dict[str, str] = field(default_factory=dict)  #: seed -> blueprint id
    batch: str | None = None

    def call(self, path: str, value: Any = None) -> Any:
        """A call that must succeed (seeding); the result's json."""
        reply = call(self.client, self.url, path, {"json": value})
        assert reply.status == 200, reply.describe()
        return json.loads(reply.body)["result"]["data"]["json"]

    def refresh(self) -> None:
        """Put back whatever the last test deleted, stopped or moved on."""
        for seed, document in SEEDS.items():
            known = self.blueprints.get(seed)
            if known is None or not self.exists("blueprint.get", {"blueprintId": known}):
                self.blueprints[seed] = self.call("blueprint.create", document)["blueprintId"]
        for slot, (seed, debug, wanted) in EXECUTIONS.items():
            known = self.slots.get(slot)
            if known is None or self.status(known) != wanted:
                self.slots[slot] = self.execute(seed, debug, wanted)
        if self.batch is None or not self.exists("batch.getStatus", {"batchId": self.batch}):
            ids = [self.blueprints["quick"], self.blueprints["fails"]]
            source = {"type": "workflows", "blueprintIds": ids}
            self.batch = self.call("batch.start", {"source": source})["batchId"]
        POOL.ids["bp"][: len(SEEDS)] = list(self.blueprints.values())
        POOL.ids["exec"][: len(EXECUTIONS)] = list(self.slots.values())
        POOL.ids["batch"][:1] = [self.batch]

    def exists(self, path: str, value: Any) -> bool:
        reply = call(self.client, self.url, path, {"json": value})
        assert reply.status in (200, 404), reply.describe()
        return reply.status == 200

    def status(self, execution_id: str) -> str:
        found = self.call("execution.getExecutionStatus", {"executionId": execution_id})
        return str(found["status"])

    def execute(self, seed: str, debug: bool, wanted: str) -> str:
        # Version 1 is the seed's own document, whatever fuzzed updates made of later ones.
        blueprint_id = self.blueprints[seed]
        request = {"blueprintId": blueprint_id, "version": 1, "debug": debug, "waitMs": 10_000}
        started = self.call("blueprint.execute", request)
        assert started["status"] == wanted, started
        return str(started["id"])


@pytest.fixture(scope="module")
def server_errors() -> Iterator[ErrorRecords]:
    with error_records("uvicorn", "blueprint", "asyncio") as handler:
        yield handler


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, server_errors: ErrorRecords) -> Iterator[World]:
    root = tmp_path_factory.mktemp("fuzz-procedures")
    write_folder(root / "blueprints")
    config = Settings(
        db=str(root / "blueprint.db"),
        blueprints_dir=str(root / "blueprints"),
        sse_ping_seconds=0.2,
        rate_limit=None,  # fuzzing makes far more than 100 calls a second
    )
    with running_server(config) as url, httpx.Client(timeout=httpx.Timeout(30)) as client:
        yield World(url, client)


@pytest.fixture(autouse=True)
def healthy(world: World, server_errors: ErrorRecords) -> Iterator[None]:
    """The seeded state is in place before each test; after it the server answers /healthz,
    says its database is ok, and logged no error."""
    world.refresh()
    seen = len(server_errors.records)
    yield
    assert world.client.get(f"{world.url}/healthz").json() == {"status": "ok"}
    health = world.call("system.health")
    assert (health["status"], health["database"]) == ("ok", "ok"), health
    logged = server_errors.records[seen:]
    assert not logged, [(r.getMessage(), r.exc_info) for r in logged]


# --------------------------------------------------------------------------------------------
# Calls and the oracle


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes = b""
    events: list[dict[str, str]] = field(default_factory=list)

    def describe(self) -> str:
        return f"{self.status} {self.body[:800]!r} {self.events[:6]}"


def call(
    client: httpx.Client,
    base: str,
    path: str,
    sent: Any,
    *,
    method: str | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """One call by its kind's method (or `method`); `sent` is the envelope, or None for no
    input. A subscription is read for SSE_SECONDS, then the client leaves."""
    proc = PROCEDURES.get(path)
    kind = proc.kind if proc else Kind.QUERY
    method = method or ("POST" if kind is Kind.MUTATION else "GET")
    url = f"{base}{PREFIX}{urllib.parse.quote(path, safe='.')}"
    raw = None if sent is None else json.dumps(sent, separators=(",", ":")).encode()
    headers = dict(headers or {})
    if method == "POST":
        headers["content-type"] = "application/json"
        return send(client, "POST", url, raw or b"", headers)
    if raw is not None:
        url += "?input=" + urllib.parse.quote_from_bytes(raw, safe="")
    if len(url) > MAX_URL:
        return send_raw(base, url.removeprefix(base), headers)
    return send(client, "GET", url, None, headers)


def send(
    client: httpx.Client, method: str, url: str, body: bytes | None, headers: dict[str, str]
) -> Reply:
    with client.stream(method, url, content=body, headers=headers) as response:
        reply = Reply(response.status_code, {k.lower(): v for k, v in response.headers.items()})
        if not reply.headers.get("content-type", "").startswith("text/event-stream"):
            reply.body = response.read()
            return reply
        deadline = time.monotonic() + SSE_SECONDS
        for chunk in response.iter_raw():
            reply.body += chunk
            if time.monotonic() > deadline or b"event: return" in reply.body:
                break
            if b"event: serialized-error" in reply.body and reply.body.endswith(b"\n\n"):
                break
        reply.events = parse_sse(reply.body)
    return reply


def send_raw(base: str, target: str, headers: dict[str, str]) -> Reply:
    """A GET too long for httpx, on a plain socket."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.putrequest("GET", target, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        reply = Reply(response.status, {k.lower(): v for k, v in response.getheaders()})
        if not reply.headers.get("content-type", "").startswith("text/event-stream"):
            reply.body = response.read()
            return reply
        deadline = time.monotonic() + SSE_SECONDS
        while time.monotonic() < deadline and b"event: return" not in reply.body:
            chunk = response.read1(65536)
            if not chunk:
                break
            reply.body += chunk
        reply.events = parse_sse(reply.body)
    finally:
        connection.close()
    return reply


def parse_sse(buffer: bytes) -> list[dict[str, str]]:
    """The complete events of an SSE buffer."""
    blocks = buffer.split(b"\n\n")[:-1]
    events = []
    for block in blocks:
        event: dict[str, str] = {}
        for line in block.split(b"\n"):
            if not line:
                continue
            name, sep, value = line.partition(b":")
            assert sep, f"SSE line without a colon: {line!r}"
            event[name.decode()] = value.removeprefix(b" ").decode()
        if event:
            events.append(event)
    return events


def check_shape(shape: Any, path: str, where: str) -> tuple[int, str]:
    """A tRPC error shape from the contract's table; returns (httpStatus, code name)."""
    assert isinstance(shape, dict) and {"message", "code", "data"} <= shape.keys(), where
    data = shape["data"]
    assert isinstance(data, dict) and {"code", "httpStatus", "path"} <= data.keys(), where
    name, status = data["code"], data["httpStatus"]
    assert name in CODES, f"{name} is not in the contract's table (or is a 5xx): {where}"
    assert (shape["code"], status) == CODES[name], where
    assert data["path"] in (path, None), where
    assert "stack" not in data, where
    message = shape["message"]
    assert isinstance(message, str) and message.strip(), f"an error that says nothing: {where}"
    for problem in data.get("problems", []):
        assert isinstance(problem, dict) and {"nodeId", "field", "message"} <= problem.keys()
        assert isinstance(problem["message"], str) and problem["message"], where
    return status, name


@dataclass
class Outcome:
    status: int
    code: str | None = None  #: the error's code name; None for a success or a stream
    value: Any = None


def check(reply: Reply, path: str, method: str) -> Outcome:
    """The contract's oracle for one call."""
    where = f"{method} {path}: {reply.describe()}"
    assert reply.status < 500, where
    content_type = reply.headers.get("content-type", "")
    if content_type.startswith("text/event-stream"):
        check_stream(reply, path, where)
        return Outcome(reply.status)
    assert content_type.startswith("application/json"), where
    body = json.loads(reply.body)
    assert isinstance(body, dict) and len(body) == 1, where
    if "result" in body:
        assert reply.status == 200, where
        data = body["result"]["data"]
        assert isinstance(data, dict) and set(data) == {"json"}, where
        return Outcome(200, None, data["json"])
    error = body["error"]
    assert isinstance(error, dict) and set(error) == {"json"}, where
    status, name = check_shape(error["json"], path, where)
    assert status == reply.status, f"httpStatus {status} under HTTP {reply.status}: {where}"
    return Outcome(status, name, error["json"])


def check_stream(reply: Reply, path: str, where: str) -> None:
    assert PROCEDURES[path].kind is Kind.SUBSCRIPTION, f"a stream for a non-subscription: {where}"
    assert reply.status == 200 and reply.events, where
    assert reply.events[0].get("event") == "connected", where
    for sse in reply.events[1:]:
        kind = sse.get("event", "message")
        if kind in ("ping", "return"):
            continue
        assert kind in ("message", "serialized-error"), where
        value = json.loads(sse["data"])
        assert isinstance(value, dict) and set(value) == {"json"}, where
        if kind == "serialized-error":
            check_shape(value["json"], path, where)
            continue
        assert sse.get("id"), f"a data event without an id: {where}"
        POOL.event_ids.append(sse["id"])
        assert value["json"].get("type") in EVENT_TYPES, where


def check_output(path: str, value: Any) -> None:
    """A success decodes as the procedure's declared output type."""
    output_type = PROCEDURES[path].output_type
    msgspec.json.decode(json.dumps(value), type=output_type)


# --------------------------------------------------------------------------------------------
# Properties


FORMS = ["json"] * 9 + ["undefined", "absent", "bare"]


def envelope(form: str, value: Any) -> Any:
    if form == "json":
        return {"json": value}
    if form == "undefined":
        return {"json": None, "meta": {"values": ["undefined"], "v": 1}}
    if form == "absent":
        return None
    return value


@pytest.mark.parametrize("path", PATHS)
@fuzz(25)
@given(data=st.data())
def test_every_procedure_takes_any_input_without_a_5xx(
    world: World, path: str, data: st.DataObject
):
    """Inputs built from the procedure's own type (or any JSON), by the method its kind asks:
    a well-formed answer from the contract's table, never a 5xx; a success is its output."""
    value = data.draw(inputs_for(path), label="input")
    form = data.draw(st.sampled_from(FORMS), label="form")
    headers = {}
    if PROCEDURES[path].kind is Kind.SUBSCRIPTION and data.draw(st.booleans(), label="resume"):
        headers["last-event-id"] = data.draw(event_ids.filter(str.isascii), label="resume id")
    reply = call(world.client, world.url, path, envelope(form, value), headers=headers)
    outcome = check(reply, path, "POST" if PROCEDURES[path].kind is Kind.MUTATION else "GET")
    event(f"{outcome.status} {outcome.code or ''}")
    if outcome.code is None and outcome.value is not None:
        check_output(path, outcome.value)
        POOL.harvest(outcome.value)


WRONG_METHOD = {Kind.QUERY: "POST", Kind.MUTATION: "GET", Kind.SUBSCRIPTION: "POST"}


@pytest.mark.parametrize("path", PATHS)
@fuzz(4)
@given(data=st.data())
def test_the_wrong_method_is_method_not_supported(world: World, path: str, data: st.DataObject):
    """A query or subscription by POST, a mutation by GET: 405 METHOD_NOT_SUPPORTED, and
    nothing runs."""
    value = data.draw(inputs_for(path), label="input")
    method = WRONG_METHOD[PROCEDURES[path].kind]
    sent = {"json": value}
    reply = call(world.client, world.url, path, sent, method=method)
    outcome = check(reply, path, method)
    expected = [(405, "METHOD_NOT_SUPPORTED")]
    if method == "GET" and len(json.dumps(sent, separators=(",", ":"))) > MAX_INPUT:
        expected.append((413, "PAYLOAD_TOO_LARGE"))  # the limit is checked first
    assert (outcome.status, outcome.code) in expected, reply.describe()


def has_pattern(info: mi.Type) -> bool:
    if isinstance(info, mi.Metadata):
        return has_pattern(info.type)
    if isinstance(info, mi.UnionType):
        return any(has_pattern(t) for t in info.types)
    return isinstance(info, mi.StrType) and info.pattern is not None


def id_fields() -> list[tuple[str, str, str]]:
    """(procedure, field, id kind) for every input field that must hold an id of a form."""
    kinds = {"executionId": "exec", "blueprintId": "bp", "batchId": "batch"}
    found = []
    for path, proc in PROCEDURES.items():
        info = None if proc.input_type is None else mi.type_info(proc.input_type)
        if not isinstance(info, mi.StructType):
            continue
        for spec in info.fields:
            if spec.encode_name in kinds and has_pattern(spec.type):
                found.append((path, spec.encode_name, kinds[spec.encode_name]))
    return found


ID_FIELDS = id_fields()


@pytest.mark.parametrize(("path", "name", "kind"), ID_FIELDS)
@fuzz(6)
@given(data=st.data())
def test_a_malformed_id_is_a_bad_request(
    world: World, path: str, name: str, kind: str, data: st.DataObject
):
    """An id not of its form is a BAD_REQUEST naming the field (API.md §5), whatever else the
    input holds."""
    wrong = data.draw(malformed_ids(kind), label=name)
    value = {name: wrong}
    if path == "execution.pauseControl":
        value["action"] = "continue"
    if path == "execution.setTraceLogs":
        value["enabled"] = True
    reply = call(world.client, world.url, path, {"json": value})
    outcome = check(reply, path, "GET" if PROCEDURES[path].kind is not Kind.MUTATION else "POST")
    if reply.headers.get("content-type", "").startswith("text/event-stream"):
        events = [e for e in reply.events if e.get("event") == "serialized-error"]
        assert events, reply.describe()
        shape = json.loads(events[0]["data"])["json"]
        assert shape["data"]["code"] == "BAD_REQUEST", reply.describe()
        return
    assert (outcome.status, outcome.code) == (400, "BAD_REQUEST"), reply.describe()
    assert name in outcome.value["message"], reply.describe()


sources = st.fixed_dictionaries(
    {"type": st.just("files"), "paths": st.lists(paths, min_size=1, max_size=3)}
) | st.fixed_dictionaries({"type": st.just("folder"), "folderPath": folders})


@fuzz(40)
@given(source=sources, concurrency=st.integers(1, 3))
def test_batch_sources_are_read_only_from_inside_the_folder(
    world: World, source: dict[str, Any], concurrency: int
):
    """File and folder sources, with every way out of the blueprints folder we know: a
    FORBIDDEN (or NOT_FOUND, BAD_REQUEST, PAYLOAD_TOO_LARGE for what is inside but unfit),
    never a 5xx; what starts was read from inside the folder."""
    value = {"source": source, "concurrency": concurrency}
    reply = call(world.client, world.url, "batch.start", {"json": value})
    outcome = check(reply, "batch.start", "POST")
    allowed_codes = {None, "FORBIDDEN", "NOT_FOUND", "BAD_REQUEST", "PAYLOAD_TOO_LARGE"}
    assert outcome.code in allowed_codes, reply.describe()
    if outcome.code is None:
        for started in outcome.value["executions"]:
            path = started["workflowPath"]
            assert not path.startswith(("/", "..")) and "secret" not in path, reply.describe()
        POOL.harvest(outcome.value)


webhooks = st.fixed_dictionaries(
    {"url": webhook_urls},
    optional={
        "events": st.lists(st.sampled_from(["completed", "failed", "paused", "x"]), max_size=2),
        "secret": st.text(max_size=6),
    },
)


@fuzz(15)
@given(
    seed=st.sampled_from(["quick", "fails", "waits"]),
    webhook=webhooks,
    method=st.sampled_from(["blueprint.execute", "execution.executeBlueprintWithLogging"]),
)
def test_webhooks_to_any_url_are_refused_or_tried(
    world: World, seed: str, webhook: dict[str, Any], method: str
):
    """A webhook to any URL: FORBIDDEN (or BAD_REQUEST) when it may not be sent, else the
    execution starts and its deliveries (to nothing listening) are tried and recorded. The
    deliverer logs no error: checked after the test, once the first attempts have run."""
    value: dict[str, Any] = {"blueprintId": world.blueprints[seed], "webhook": webhook}
    if method == "blueprint.execute":
        value["waitMs"] = 1000
    reply = call(world.client, world.url, method, {"json": value})
    outcome = check(reply, method, "POST")
    assert outcome.code in (None, "FORBIDDEN", "BAD_REQUEST"), reply.describe()
    if outcome.code is None:
        POOL.harvest(outcome.value)
        time.sleep(0.6)  # one poll of the deliverer, so its attempt runs during this test


QUERIES = [p for p in PATHS if PROCEDURES[p].kind is Kind.QUERY]
MUTATIONS = [p for p in PATHS if PROCEDURES[p].kind is Kind.MUTATION]


@fuzz(30)
@given(data=st.data())
def test_batches_of_real_procedures(world: World, data: st.DataObject):
    """Two to four calls of one kind in one request (`?batch=1`): an array of envelopes in
    order, each held to the oracle, under the items' shared status or 207."""
    kind = data.draw(st.sampled_from(["GET", "POST"]), label="method")
    paths = data.draw(
        st.lists(st.sampled_from(QUERIES if kind == "GET" else MUTATIONS), min_size=2, max_size=4),
        label="paths",
    )
    inputs = {str(i): {"json": data.draw(inputs_for(path))} for i, path in enumerate(paths)}
    raw = json.dumps(inputs, separators=(",", ":")).encode()
    url = f"{world.url}{PREFIX}{','.join(paths)}?batch=1"
    if kind == "GET":
        url += "&input=" + urllib.parse.quote_from_bytes(raw, safe="")
        reply = send(world.client, "GET", url, None, {}) if len(url) < MAX_URL else None
    else:
        reply = send(world.client, "POST", url, raw, {"content-type": "application/json"})
    if reply is None:
        return  # too long for a URL: the single-call properties cover the 413
    assert reply.status < 500, reply.describe()
    body = json.loads(reply.body)
    if isinstance(body, dict):  # one error for the whole request (a limit)
        status, _ = check_shape(body["error"]["json"], "", reply.describe())
        assert status == reply.status, reply.describe()
        return
    assert isinstance(body, list) and len(body) == len(paths), reply.describe()
    statuses = set()
    for path, item in zip(paths, body, strict=True):
        one = Reply(200 if "result" in item else item["error"]["json"]["data"]["httpStatus"], {})
        one.headers["content-type"] = "application/json"
        one.body = json.dumps(item).encode()
        statuses.add(check(one, path, kind).status)
    assert reply.status == (statuses.pop() if len(statuses) == 1 else 207), reply.describe()


def one_node_blueprint(node: dict[str, Any]) -> dict[str, Any]:
    return {"blueprint": {"name": "found", "nodes": [node]}, "waitMs": 1000}


# What these properties found, each the call that showed it (all were 500s, or worse).
FOUND: list[tuple[str, Any, set[str | None]]] = [
    ("execution.onUpdate", {"lastEventId": "99999999999999999999.4"}, {None}),
    ("batch.list", {"offset": 2**63}, {"BAD_REQUEST"}),
    ("blueprint.get", {"blueprintId": "bp_1_aaaaa", "version": 2**63}, {"BAD_REQUEST"}),
    ("execution.getExecutionStatus", {"executionId": "exec_1_aaaaa\n"}, {"BAD_REQUEST"}),
    ("batch.start", {"source": {"type": "files", "paths": ["a" * 300]}}, {"BAD_REQUEST"}),
    ("batch.start", {"source": {"type": "folder", "folderPath": "loop.json"}}, {"BAD_REQUEST"}),
    ("batch.start", {"source": {"type": "files", "paths": ["deep.json"]}}, {"BAD_REQUEST"}),
    ("batch.start", {"source": {"type": "files", "paths": ["deeptemplate.json"]}}, {"BAD_REQUEST"}),
    (
        "blueprint.execute",
        {**one_node_blueprint({"id": "a", "type": "noop"}), "webhook": {"url": "http://[::1"}},
        {"FORBIDDEN"},
    ),
    (
        "blueprint.validate",
        {
            "name": "x",
            "nodes": [
                {"id": "a", "type": "input", "config": {"prompt": "?", "schema": {"type": [[]]}}}
            ],
        },
        {None},
    ),
    # The output aliased the context: the log writer failed, and went on failing, for all.
    (
        "blueprint.execute",
        one_node_blueprint({"id": "a", "type": "transform", "config": {"expression": "nodes"}}),
        {None},
    ),
    (
        "blueprint.execute",
        {
            **one_node_blueprint(
                {"id": "a", "type": "transform", "config": {"template": "{{ input[::0] }}"}}
            ),
            "input": [1],
            "traceLogs": True,
        },
        {None},
    ),
]


@pytest.mark.parametrize(("path", "value", "codes"), FOUND)
def test_what_the_fuzzing_found_stays_fixed(
    world: World, path: str, value: Any, codes: set[str | None]
):
    reply = call(world.client, world.url, path, {"json": value})
    outcome = check(reply, path, "POST" if PROCEDURES[path].kind is Kind.MUTATION else "GET")
    assert outcome.code in codes, reply.describe()
    if path == "blueprint.execute" and outcome.code is None:
        assert outcome.value["status"] in ("completed", "failed"), reply.describe()


def test_every_procedure_is_fuzzed():
    """The properties above cover every procedure the root router has, by construction; this
    keeps the list honest (a procedure whose input type the generator cannot read would fail
    here, not silently get only random JSON)."""
    assert PATHS and SUBSCRIPTIONS
    for path in PATHS:
        proc = PROCEDURES[path]
        if proc.input_type is not None:
            mi.type_info(proc.input_type)
        inputs_for(path).validate()
