// Controls executions with the official tRPC client (httpBatchLink, superjson) and prints what
// each command answered and what the execution looked like before and after it.
//
//   node control.mjs <baseUrl> <scenario>
//
// Scenarios that use "the most recent" execution, stopAll or listActive expect to be the only
// thing running on the server; each leaves nothing active behind when it succeeds.
import {
  ASK,
  ASK_SCHEMA,
  COUNTED,
  COUNTED_FAILING,
  DEBUGGED,
  HELD,
  LONG,
  TRACED,
} from "./blueprints.mjs";
import {
  allLogs,
  brief,
  main,
  outcome,
  outcomes,
  start,
  statusOf,
  waitEnded,
  waitFor,
  waitPaused,
  waitRunning,
} from "./lib.mjs";

const UNKNOWN = "exec_1700000000000_zzzzz"; // well formed, never issued
const UNKNOWN_BATCH = "batch_1700000000000_zzzzz";

const SLOW_THEN_NEXT = {
  name: "e2e slow then next",
  nodes: [
    { id: "slow", type: "delay", config: { ms: 2000 } },
    { id: "next", type: "noop", dependsOn: ["slow"] },
  ],
};

/** Stop by id, the most recent active one (no id), a queued one, and with nothing active. */
async function stop({ batch: trpc }) {
  const byId = await start(trpc, LONG);
  await waitRunning(trpc, byId, "wait");
  const stoppedById = await trpc.mutation("execution.stop", { executionId: byId });
  const afterById = brief(await statusOf(trpc, byId));

  const recent = await start(trpc, LONG);
  await waitRunning(trpc, recent, "wait");
  const stoppedRecent = await trpc.mutation("execution.stop", {});
  const afterRecent = brief(await statusOf(trpc, recent));

  // A batch that runs one execution at a time keeps the second queued.
  const created = await trpc.mutation("blueprint.create", LONG);
  const batch = await trpc.mutation("batch.start", {
    source: { type: "workflows", blueprintIds: [created.blueprintId, created.blueprintId] },
    concurrency: 1,
  });
  const [first, second] = batch.executions.map((e) => e.executionId);
  await waitRunning(trpc, first, "wait");
  const queuedBefore = brief(await statusOf(trpc, second));
  const stoppedQueued = await trpc.mutation("execution.stop", { executionId: second });
  const afterQueued = brief(await statusOf(trpc, second));
  const firstStill = brief(await statusOf(trpc, first));
  const stoppedFirst = await trpc.mutation("execution.stop", { executionId: first });

  const nothingActive = await trpc.mutation("execution.stop"); // no input at all
  return {
    byId,
    stoppedById,
    afterById,
    recent,
    stoppedRecent,
    afterRecent,
    queued: second,
    queuedBefore,
    stoppedQueued,
    afterQueued,
    firstStill,
    stoppedFirst,
    nothingActive,
  };
}

/** stopAll with a running, a paused and a one-at-a-time batch of three (two queued). */
async function stopAll({ batch: trpc }) {
  const running = await start(trpc, LONG);
  await waitRunning(trpc, running, "wait");
  const paused = await start(trpc, HELD);
  await waitPaused(trpc, paused);
  const created = await trpc.mutation("blueprint.create", LONG);
  const id = created.blueprintId;
  const batch = await trpc.mutation("batch.start", {
    source: { type: "workflows", blueprintIds: [id, id, id] },
    concurrency: 1,
  });
  const inBatch = batch.executions.map((e) => e.executionId);
  await waitRunning(trpc, inBatch[0], "wait");
  const activeBefore = await trpc.query("execution.listActive");
  const stopped = await trpc.mutation("execution.stopAll");
  const activeAfter = await trpc.query("execution.listActive");
  const ids = [running, paused, ...inBatch];
  const after = await Promise.all(ids.map(async (e) => brief(await statusOf(trpc, e))));
  const batchAfter = await trpc.query("batch.getStatus", { batchId: batch.batchId });
  const again = await trpc.mutation("execution.stopAll");
  const batchId = batch.batchId;
  return { ids, batchId, activeBefore, stopped, activeAfter, after, batchAfter, again };
}

/** A manual pause while a step runs: the step finishes, nothing new starts; then continue. */
async function pause({ batch: trpc }) {
  const id = await start(trpc, SLOW_THEN_NEXT);
  await waitRunning(trpc, id, "slow");
  const paused = await trpc.mutation("execution.pause", { executionId: id });
  const whilePaused = brief(await statusOf(trpc, id));
  const settled = brief(
    await waitFor(
      trpc,
      id,
      (s) => s.steps.find((step) => step.nodeId === "slow").status !== "running",
      "finished its running step",
    ),
  );
  const pausedAgain = await trpc.mutation("execution.pause", { executionId: id });
  const continued = await trpc.mutation("execution.continue", { executionId: id });
  const final = brief(await waitEnded(trpc, id));
  return { id, paused, whilePaused, settled, pausedAgain, continued, final };
}

/** continue with no id takes the most recently started paused execution; pause nodes. */
async function continueRecent({ batch: trpc }) {
  const older = await start(trpc, HELD);
  await waitPaused(trpc, older);
  const newer = await start(trpc, HELD);
  const newerPaused = brief(await waitPaused(trpc, newer));
  const first = await trpc.mutation("execution.continue", {});
  const newerFinal = brief(await waitEnded(trpc, newer));
  const olderStill = brief(await statusOf(trpc, older));
  const second = await trpc.mutation("execution.continue"); // no input at all
  const olderFinal = brief(await waitEnded(trpc, older));
  const none = await trpc.mutation("execution.continue", {});
  return { older, newer, newerPaused, first, newerFinal, olderStill, second, olderFinal, none };
}

const pausedAt = (trpc, id, nodeId) =>
  waitFor(
    trpc,
    id,
    (s) => s.status === "paused" && s.pausedNodeId === nodeId,
    `paused at ${nodeId}`,
  );

/** debug: true pauses before b, c and d: continue, skip, continueWithoutBreakpoint; stop. */
async function breakpoints({ batch: trpc }) {
  const id = await start(trpc, DEBUGGED, { debug: true });
  const atB = brief(await pausedAt(trpc, id, "b"));
  const continued = await trpc.mutation("execution.pauseControl", {
    action: "continue",
    executionId: id,
  });
  const atC = brief(await pausedAt(trpc, id, "c"));
  const skipped = await trpc.mutation("execution.pauseControl", { action: "skip" }); // most recent
  const atD = brief(await pausedAt(trpc, id, "d"));
  const unbroken = await trpc.mutation("execution.pauseControl", {
    action: "continueWithoutBreakpoint",
    executionId: id,
  });
  const final = brief(await waitEnded(trpc, id));

  const stoppedId = await start(trpc, DEBUGGED, { debug: true });
  const stopAtB = brief(await pausedAt(trpc, stoppedId, "b"));
  const stopped = await trpc.mutation("execution.pauseControl", {
    action: "stop",
    executionId: stoppedId,
  });
  const afterStop = brief(await statusOf(trpc, stoppedId));

  const plainId = await start(trpc, DEBUGGED); // breakpoints only apply with debug: true
  const plain = brief(await waitEnded(trpc, plainId));
  return {
    id,
    atB,
    continued,
    atC,
    skipped,
    atD,
    unbroken,
    final,
    stoppedId,
    stopAtB,
    stopped,
    afterStop,
    plain,
  };
}

/** An input node: awaitingInput, rejected data (nothing changes), then accepted data. */
async function input({ batch: trpc }) {
  const id = await start(trpc, ASK);
  const waiting = await waitPaused(trpc, id);
  const rejected = await outcome(
    trpc.mutation("execution.provideInput", {
      executionId: id,
      nodeId: "ask",
      data: { count: 0, tag: "c", note: "far too long" },
    }),
  );
  const wrongType = await outcome(
    trpc.mutation("execution.provideInput", { executionId: id, data: "yes" }),
  );
  const afterRejected = await statusOf(trpc, id);
  const continued = await trpc.mutation("execution.continue", { executionId: id });
  const accepted = await trpc.mutation("execution.provideInput", {
    executionId: id,
    data: { ok: true, count: 2, tag: "a" },
  });
  const final = brief(await waitEnded(trpc, id));
  return {
    id,
    schema: ASK_SCHEMA,
    waiting: brief(waiting),
    waitingSteps: waiting.steps,
    rejected,
    wrongType,
    afterRejected: brief(afterRejected),
    afterRejectedSteps: afterRejected.steps,
    continued,
    accepted,
    final,
  };
}

const logLines = (logs) =>
  logs.map(({ seq, level, nodeId, message }) => ({ seq, level, nodeId, message }));

/** setTraceLogs on (no id: the most recent active), off, and on executions that ended. */
async function trace({ batch: trpc }) {
  const off = await start(trpc, TRACED, { input: { x: 1 } });
  await waitPaused(trpc, off);
  const offBefore = logLines(await allLogs(trpc, off));
  const turnedOn = await trpc.mutation("execution.setTraceLogs", { enabled: true });
  await trpc.mutation("execution.continue", { executionId: off });
  await waitEnded(trpc, off);
  const offLogs = logLines(await allLogs(trpc, off));

  const on = await start(trpc, TRACED, { input: { x: 2 }, traceLogs: true });
  await waitPaused(trpc, on);
  const turnedOff = await trpc.mutation("execution.setTraceLogs", {
    enabled: false,
    executionId: on,
  });
  await trpc.mutation("execution.continue", { executionId: on });
  const onFinal = brief(await waitEnded(trpc, on));
  const onLogs = logLines(await allLogs(trpc, on));

  const ended = await trpc.mutation("execution.setTraceLogs", { enabled: true, executionId: on });
  const none = await trpc.mutation("execution.setTraceLogs", { enabled: true });
  return { off, offBefore, turnedOn, offLogs, on, turnedOff, onFinal, onLogs, ended, none };
}

/** retry: refused while active; a new execution reuses what succeeded and runs the rest. */
async function retry({ batch: trpc }) {
  const original = await start(trpc, COUNTED, { input: { n: 7 }, metadata: { who: "retry" } });
  await waitPaused(trpc, original);
  const early = await outcome(trpc.mutation("execution.retry", { executionId: original }));
  await trpc.mutation("execution.stop", { executionId: original });
  const originalEnded = brief(await statusOf(trpc, original));
  const retried = await trpc.mutation("execution.retry", { executionId: original });
  const retriedPaused = brief(await waitPaused(trpc, retried.executionId));
  await trpc.mutation("execution.continue", { executionId: retried.executionId });
  const retriedStatus = await waitEnded(trpc, retried.executionId);
  const retriedLogs = logLines(await allLogs(trpc, retried.executionId));
  const originalAfter = brief(await statusOf(trpc, original));

  const failing = await start(trpc, COUNTED_FAILING);
  const failed = brief(await waitEnded(trpc, failing));
  const failedRetry = await trpc.mutation("execution.retry", { executionId: failing });
  const failedAgain = brief(await waitEnded(trpc, failedRetry.executionId));
  return {
    original,
    early,
    originalEnded,
    retried,
    retriedPaused,
    retriedFinal: brief(retriedStatus),
    retriedMetadata: retriedStatus.metadata,
    retriedLogs,
    originalAfter,
    failing,
    failed,
    failedRetry,
    failedAgain,
  };
}

/** The same idempotencyKey gives the same execution; with another request, CONFLICT. */
async function idempotency({ batch: trpc, single }) {
  const created = await trpc.mutation("blueprint.create", { ...HELD, name: "e2e idempotent" });
  const blueprintId = created.blueprintId;
  const key = `e2e-${Date.now()}`;
  const request = { blueprintId, idempotencyKey: key, input: { n: 1 } };
  const first = await trpc.mutation("execution.executeBlueprintWithLogging", request);
  const again = await trpc.mutation("execution.executeBlueprintWithLogging", request);
  const conflict = await outcome(
    trpc.mutation("execution.executeBlueprintWithLogging", { ...request, input: { n: 2 } }),
  );
  const listedOnce = await trpc.query("execution.list", { blueprintId });
  // Separate requests at once, each with the same new key.
  const together = { blueprintId, idempotencyKey: `${key}-together`, input: { n: 3 } };
  const concurrent = await outcomes(
    [1, 2, 3].map(() => single.mutation("execution.executeBlueprintWithLogging", together)),
  );
  const listedTwice = await trpc.query("execution.list", { blueprintId });
  const ids = [...new Set([first, ...concurrent.map((o) => o.data)].map((s) => s?.executionId))];
  for (const executionId of ids.filter(Boolean)) {
    await trpc.mutation("execution.stop", { executionId });
  }
  return { first, again, conflict, listedOnce, concurrent, listedTwice };
}

/** Unknown ids (NOT_FOUND) and malformed inputs (BAD_REQUEST), each in one batch. */
async function badInput({ batch: trpc }) {
  const unknown = {
    stop: trpc.mutation("execution.stop", { executionId: UNKNOWN }),
    pause: trpc.mutation("execution.pause", { executionId: UNKNOWN }),
    continue: trpc.mutation("execution.continue", { executionId: UNKNOWN }),
    pauseControl: trpc.mutation("execution.pauseControl", {
      action: "skip",
      executionId: UNKNOWN,
    }),
    provideInput: trpc.mutation("execution.provideInput", { executionId: UNKNOWN, data: {} }),
    setTraceLogs: trpc.mutation("execution.setTraceLogs", { enabled: true, executionId: UNKNOWN }),
    retry: trpc.mutation("execution.retry", { executionId: UNKNOWN }),
    getLogs: trpc.query("execution.getLogs", { executionId: UNKNOWN }),
    batchGetStatus: trpc.query("batch.getStatus", { batchId: UNKNOWN_BATCH }),
    batchStop: trpc.mutation("batch.stop", { batchId: UNKNOWN_BATCH }),
  };
  const malformed = {
    stopBadId: trpc.mutation("execution.stop", { executionId: "exec-1" }),
    stopExtraField: trpc.mutation("execution.stop", { executionId: UNKNOWN, force: true }),
    pauseNoId: trpc.mutation("execution.pause", {}),
    pauseNoInput: trpc.mutation("execution.pause"),
    continueNumber: trpc.mutation("execution.continue", { executionId: 42 }),
    pauseControlAction: trpc.mutation("execution.pauseControl", {
      action: "jump",
      executionId: UNKNOWN,
    }),
    pauseControlNoAction: trpc.mutation("execution.pauseControl", { executionId: UNKNOWN }),
    provideInputNoId: trpc.mutation("execution.provideInput", { data: {} }),
    setTraceLogsNoEnabled: trpc.mutation("execution.setTraceLogs", { executionId: UNKNOWN }),
    setTraceLogsString: trpc.mutation("execution.setTraceLogs", { enabled: "yes" }),
    retryUpperCase: trpc.mutation("execution.retry", { executionId: "exec_1700000000000_ZZZZZ" }),
    statusBadId: trpc.query("execution.getExecutionStatus", { executionId: "nope" }),
    emptyKey: trpc.mutation("execution.executeBlueprintWithLogging", {
      blueprint: HELD,
      idempotencyKey: "",
    }),
    batchBadId: trpc.query("batch.getStatus", { batchId: "batch-1" }),
    batchSource: trpc.mutation("batch.start", { source: { type: "ftp", url: "x" } }),
    batchConcurrency: trpc.mutation("batch.start", {
      source: { type: "workflows", blueprintIds: ["bp_1700000000000_zzzzz"] },
      concurrency: 0,
    }),
  };
  const settle = async (calls) =>
    Object.fromEntries(
      await Promise.all(Object.entries(calls).map(async ([k, call]) => [k, await outcome(call)])),
    );
  const [unknownOutcomes, malformedOutcomes] = await Promise.all([
    settle(unknown),
    settle(malformed),
  ]);
  const unknownStatus = brief(await statusOf(trpc, UNKNOWN));
  return { unknown: unknownOutcomes, malformed: malformedOutcomes, unknownStatus };
}

await main("control.mjs", {
  stop,
  "stop-all": stopAll,
  pause,
  "continue-recent": continueRecent,
  breakpoints,
  input,
  trace,
  retry,
  idempotency,
  "bad-input": badInput,
});
