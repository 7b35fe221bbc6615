// Drives the server with the official tRPC client and prints one JSON report to stdout.
//
//   node trpc-client.mjs <baseUrl> <superjson|none> <scenario>
//
// Every link gets a fetch wrapper that records the HTTP requests it makes, so the tests can
// check that batching (or a single SSE connection) really happened.
import {
  createTRPCUntypedClient,
  httpBatchLink,
  httpBatchStreamLink,
  httpLink,
  httpSubscriptionLink,
} from "@trpc/client";
import { EventSource } from "eventsource";
import superjson from "superjson";

const DEADLINE_MS = 30_000;
const ENDPOINT = "/api/trpc";
const TRICKY_TEXT = 'a+b c&d=%2C ü 😀\n"q"'; // survives URL and JSON encoding unchanged

const TRANSFORMERS = { superjson, none: undefined };

const [baseUrl, transformerName, scenario] = process.argv.slice(2);
const url = baseUrl.replace(/\/$/, "") + ENDPOINT;
const transformer = TRANSFORMERS[transformerName];
const requests = [];
let progress = null; // what a subscription has seen so far, reported if the deadline passes

async function recordingFetch(input, init) {
  const target = new URL(String(input));
  const headers = new Headers(init?.headers);
  const request = {
    method: init?.method ?? "GET",
    paths: decodeURIComponent(target.pathname.slice(ENDPOINT.length + 1)).split(","),
    batch: target.searchParams.get("batch") === "1",
    trpcAccept: headers.get("trpc-accept"),
  };
  requests.push(request);
  const response = await fetch(input, init);
  request.status = response.status;
  return response;
}

function client(link) {
  return createTRPCUntypedClient({
    links: [link({ url, transformer, fetch: recordingFetch })],
  });
}

function describeError(error) {
  return {
    name: error.name,
    message: error.message,
    code: error.data?.code,
    httpStatus: error.data?.httpStatus,
    path: error.data?.path,
  };
}

// Each call's own outcome, so one failure never hides another call's result.
async function settle(calls) {
  const outcomes = await Promise.allSettled(calls);
  return outcomes.map((outcome) =>
    outcome.status === "fulfilled"
      ? { ok: true, data: outcome.value }
      : { ok: false, error: describeError(outcome.reason) },
  );
}

// Queries that mix successes and every kind of per-call failure; the slow one settles last.
function mixedQueries(trpc) {
  return [
    trpc.query("sleep", { ms: 100 }),
    trpc.query("greet", { name: "ann", at: new Date("2024-05-06T07:08:09.123Z") }),
    trpc.query("noinput"),
    trpc.query("forbidden"),
    trpc.query("no.such.path"),
    trpc.query("boom"),
    trpc.query("greet", { name: 42 }),
    trpc.query("nested.deep.noinput"),
  ];
}

async function single() {
  const trpc = client(httpLink);
  return settle([
    trpc.query("greet", { name: "bob", at: new Date("2024-05-06T07:08:09.123Z") }),
    trpc.query("noinput"),
    trpc.query("nested.deep.noinput"),
    trpc.query("echo", { text: TRICKY_TEXT, tags: ["x,y", "%2C"] }),
    trpc.mutation("math.add", { a: 2, b: 40 }),
  ]);
}

// Values only superjson can carry: the server must revive them before validating and echoing.
async function revive() {
  const extra = {
    big: 10n,
    "dotted.key": 5n, // superjson escapes the dot in its meta path
    pairs: new Map([["k", 1]]),
    when: new Date(0),
    gone: undefined,
  };
  return settle([client(httpLink).query("echo", { text: "t", extra })]);
}

async function errors() {
  const trpc = client(httpLink);
  return settle([
    trpc.query("no.such.path"),
    trpc.query("forbidden"),
    trpc.mutation("conflict"),
    trpc.query("boom"),
    trpc.query("echo", { tags: "not-a-list" }),
    trpc.mutation("math.add", { a: 1, b: "two" }),
  ]);
}

async function batch() {
  return settle(mixedQueries(client(httpBatchLink)));
}

async function batchMutations() {
  const trpc = client(httpBatchLink);
  return settle([
    trpc.mutation("math.add", { a: 1, b: 2 }),
    trpc.mutation("conflict"),
    trpc.mutation("math.add", { a: 10, b: 20 }),
  ]);
}

async function stream() {
  return settle(mixedQueries(client(httpBatchStreamLink)));
}

// Collects a subscription's events until it completes, fails or has sent maxEvents.
function subscribe(path, input, maxEvents = Infinity) {
  const trpc = createTRPCUntypedClient({
    links: [
      httpSubscriptionLink({
        url,
        transformer,
        EventSource,
        eventSourceOptions: { fetch: recordingFetch },
      }),
    ],
  });
  const report = { events: [], started: false, stopped: false, completed: false, error: null };
  progress = report;
  return new Promise((resolve) => {
    const subscription = trpc.subscription(path, input, {
      onStarted: () => (report.started = true),
      onData: (value) => {
        report.events.push(value);
        if (report.events.length === maxEvents) {
          subscription.unsubscribe();
          resolve(report);
        }
      },
      onStopped: () => (report.stopped = true),
      onComplete: () => {
        report.completed = true;
        resolve(report);
      },
      onError: (error) => {
        report.error = describeError(error);
        subscription.unsubscribe();
        resolve(report);
      },
    });
  });
}

const scenarios = {
  single,
  revive,
  errors,
  batch,
  "batch-mutations": batchMutations,
  stream,
  ticks: () => subscribe("ticks", { count: 3 }),
  "ticks-resume": () => subscribe("ticks", { count: 5, lastEventId: "2" }),
  "ticks-fail": () => subscribe("ticks", { count: 3, failAfter: 1 }),
  "ticks-invalid": () => subscribe("ticks", { count: "three" }),
  forever: () => subscribe("forever", undefined, 3),
};

function finish(report) {
  const line = JSON.stringify({ ...report, requests }) + "\n";
  process.stdout.write(line, () => process.exit(0));
}

if (!(scenario in scenarios) || !(transformerName in TRANSFORMERS)) {
  const names = Object.keys(scenarios).join("|");
  console.error(`usage: node trpc-client.mjs <baseUrl> <superjson|none> <${names}>`);
  process.exit(2);
}
setTimeout(() => finish({ timedOut: true, result: progress }), DEADLINE_MS);
finish({ result: await scenarios[scenario]() });
