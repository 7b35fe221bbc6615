// Small blueprints the scenario scripts run. Slow steps are long `delay`s that a test stops
// (never waits out), or `pause`/`input` nodes, so "running" and "paused" are states a scenario
// holds for as long as it needs rather than races it hopes to win.

/** One step that runs for a minute: it is running until a client stops it. */
export const LONG = {
  name: "e2e long",
  nodes: [{ id: "wait", type: "delay", config: { ms: 60_000 } }],
};

/** Done at once. */
export const QUICK = {
  name: "e2e quick",
  nodes: [
    { id: "start", type: "noop" },
    { id: "double", type: "transform", dependsOn: ["start"], config: { expression: "input" } },
  ],
};

/** Paused on `hold` (a pause node) until a client continues it. */
export const HELD = {
  name: "e2e held",
  nodes: [
    { id: "start", type: "noop" },
    { id: "hold", type: "pause", dependsOn: ["start"], config: { message: "hold on" } },
    { id: "after", type: "noop", dependsOn: ["hold"] },
  ],
};

/** Paused on `hold`, then a minute-long step: running again once continued. */
export const HELD_THEN_LONG = {
  name: "e2e held then long",
  nodes: [
    { id: "hold", type: "pause" },
    { id: "wait", type: "delay", dependsOn: ["hold"], config: { ms: 60_000 } },
  ],
};

export const ASK_SCHEMA = {
  type: "object",
  properties: {
    ok: { type: "boolean" },
    count: { type: "integer", minimum: 1 },
    tag: { type: "string", enum: ["a", "b"] },
    note: { type: "string", maxLength: 5 },
  },
  required: ["ok", "count"],
};

/** Waits on the input node `ask`; `after` outputs the data provided. */
export const ASK = {
  name: "e2e ask",
  nodes: [
    { id: "ask", type: "input", config: { prompt: "Publish the report?", schema: ASK_SCHEMA } },
    {
      id: "after",
      type: "transform",
      dependsOn: ["ask"],
      config: { expression: "nodes.ask.output" },
    },
  ],
};

/** Breakpoints on b, c and d. Each also depends on a, so skipping one never skips the next. */
export const DEBUGGED = {
  name: "e2e debugged",
  nodes: [
    { id: "a", type: "noop" },
    {
      id: "b",
      type: "transform",
      dependsOn: ["a"],
      breakpoint: true,
      config: { expression: "`1`" },
    },
    {
      id: "c",
      type: "transform",
      dependsOn: ["a", "b"],
      breakpoint: true,
      config: { expression: "`2`" },
    },
    {
      id: "d",
      type: "transform",
      dependsOn: ["a", "c"],
      breakpoint: true,
      config: { expression: "`3`" },
    },
    {
      id: "e",
      type: "transform",
      dependsOn: ["d"],
      config: {
        template: {
          b: "{{ nodes.b.output }}",
          c: "{{ nodes.c.output }}",
          d: "{{ nodes.d.output }}",
        },
      },
    },
  ],
};

/** A transform before and after a pause, so trace entries can appear on both sides of it. */
export const TRACED = {
  name: "e2e traced",
  nodes: [
    { id: "first", type: "transform", config: { expression: "input.x" } },
    { id: "hold", type: "pause", dependsOn: ["first"] },
    {
      id: "shape",
      type: "transform",
      dependsOn: ["hold"],
      config: { template: { x: "{{ nodes.first.output }}" } },
    },
  ],
};

/** `count` nodes (tests/plugins/counting.py) write a line each time they run. */
export const COUNTED = {
  name: "e2e counted",
  nodes: [
    { id: "first", type: "count" },
    { id: "hold", type: "pause", dependsOn: ["first"] },
    { id: "last", type: "count", dependsOn: ["hold"] },
  ],
};

export const COUNTED_FAILING = {
  name: "e2e counted failing",
  nodes: [
    { id: "first", type: "count" },
    {
      id: "boom",
      type: "assert",
      dependsOn: ["first"],
      config: { expression: "`false`", message: "always fails" },
    },
  ],
};

/** One quarter-second step: a stop sent near its end races the step's own finish. */
export const SHORT = {
  name: "e2e short",
  nodes: [{ id: "last", type: "delay", config: { ms: 250 } }],
};
