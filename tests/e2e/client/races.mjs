// Commands that race, fired at once from the official tRPC client: through httpLink (one HTTP
// request per call, so the server really receives them concurrently) and, once, through
// httpBatchLink (one request carrying both). Each scenario reports every answer and the
// execution's status after all of them, and waits until the execution ends or settles.
//
//   node races.mjs <baseUrl> <scenario>
import { ASK, HELD, HELD_THEN_LONG, LONG, QUICK, SHORT } from "./blueprints.mjs";
import {
  brief,
  main,
  note,
  outcome,
  outcomes,
  sleep,
  start,
  statusOf,
  waitEnded,
  waitPaused,
  waitRunning,
} from "./lib.mjs";

/** Two continues of one paused execution, as two requests (or one batch) at once. */
async function twoContinues(trpc, submit) {
  const id = await start(trpc, HELD);
  await waitPaused(trpc, id);
  const answers = await outcomes([
    submit.mutation("execution.continue", { executionId: id }),
    submit.mutation("execution.continue", { executionId: id }),
  ]);
  const after = brief(await statusOf(trpc, id));
  const final = await waitEnded(trpc, id);
  const hold = final.steps.find((step) => step.nodeId === "hold");
  return { id, answers, after, final: brief(final), holdAttempts: hold.attempts.length };
}

/** Stop and continue of one paused execution at once: whichever comes first, it ends cancelled. */
async function stopAndContinue({ batch: trpc, single }) {
  const id = await start(trpc, HELD_THEN_LONG);
  await waitPaused(trpc, id);
  const [stopped, continued] = await outcomes([
    single.mutation("execution.stop", { executionId: id }),
    single.mutation("execution.continue", { executionId: id }),
  ]);
  const after = brief(await statusOf(trpc, id));
  const active = await trpc.query("execution.listActive");
  return { id, stopped, continued, after, active };
}

/** Two manual pauses of a running execution at once; then stop it. */
async function twoPauses({ batch: trpc, single }) {
  const id = await start(trpc, LONG);
  await waitRunning(trpc, id, "wait");
  const answers = await outcomes([
    single.mutation("execution.pause", { executionId: id }),
    single.mutation("execution.pause", { executionId: id }),
  ]);
  const after = brief(await statusOf(trpc, id));
  const stopped = await trpc.mutation("execution.stop", { executionId: id });
  const final = brief(await statusOf(trpc, id));
  return { id, answers, after, stopped, final };
}

/** Stops sent around the moment the only step ends: each is applied before the end
 * (cancelled) or refused after it (completed), never both and never stuck. */
async function stopWhileFinishing({ batch: trpc, single }) {
  const trials = [];
  for (const offsetMs of [150, 230, 250, 270, 350]) {
    const id = await start(trpc, SHORT);
    const running = await waitRunning(trpc, id, "last");
    const startedAt = Date.parse(running.steps[0].startedAt);
    await sleep(Math.max(0, startedAt + offsetMs - Date.now()));
    const answer = await outcome(single.mutation("execution.stop", { executionId: id }));
    const after = await statusOf(trpc, id);
    const final = await waitEnded(trpc, id);
    trials.push(
      note("trial", {
        id,
        offsetMs,
        answer,
        after: brief(after),
        afterStep: after.steps[0],
        final: brief(final),
      }),
    );
  }
  return { trials };
}

/** provideInput to executions that are not waiting for it, all at once. */
async function inputNotWaiting({ batch: trpc, single }) {
  const running = await start(trpc, LONG);
  const held = await start(trpc, HELD);
  const asking = await start(trpc, ASK);
  const done = await start(trpc, QUICK);
  await waitRunning(trpc, running, "wait");
  await Promise.all([waitPaused(trpc, held), waitPaused(trpc, asking), waitEnded(trpc, done)]);
  const data = { ok: true, count: 1 };
  const before = await Promise.all(
    [running, held, asking, done].map(async (id) => brief(await statusOf(trpc, id))),
  );
  const [toRunning, toHeld, toOtherNode, toDone] = await outcomes([
    single.mutation("execution.provideInput", { executionId: running, data }),
    single.mutation("execution.provideInput", { executionId: held, data }),
    single.mutation("execution.provideInput", { executionId: asking, nodeId: "other", data }),
    single.mutation("execution.provideInput", { executionId: done, data }),
  ]);
  const after = await Promise.all(
    [running, held, asking, done].map(async (id) => brief(await statusOf(trpc, id))),
  );
  for (const id of [running, held, asking]) {
    await trpc.mutation("execution.stop", { executionId: id });
  }
  return { before, toRunning, toHeld, toOtherNode, toDone, after };
}

/** Three valid answers and one invalid one to the same input node at once. */
async function concurrentInputs({ batch: trpc, single }) {
  const id = await start(trpc, ASK);
  await waitPaused(trpc, id);
  const data = [1, 2, 3].map((count) => ({ ok: true, count }));
  const answers = await outcomes([
    ...data.map((d) => single.mutation("execution.provideInput", { executionId: id, data: d })),
    single.mutation("execution.provideInput", { executionId: id, data: { ok: "yes" } }),
  ]);
  const final = brief(await waitEnded(trpc, id));
  return { id, data, answers, final };
}

/** Commands that do not fit the state, several at once: refused, nothing changes. */
async function refusals({ batch: trpc, single }) {
  const done = await start(trpc, QUICK);
  const doneBefore = brief(await waitEnded(trpc, done));
  const running = await start(trpc, LONG);
  await waitRunning(trpc, running, "wait");
  const held = await start(trpc, HELD);
  await waitPaused(trpc, held);
  const ask = (path, input) => single.mutation(path, input);
  const [stopDone, pauseDone, continueDone, skipDone] = await outcomes([
    ask("execution.stop", { executionId: done }),
    ask("execution.pause", { executionId: done }),
    ask("execution.continue", { executionId: done }),
    ask("execution.pauseControl", { action: "skip", executionId: done }),
  ]);
  const [skipRunning, unbreakRunning, continueRunning, skipHeld, unbreakHeld, pauseHeld] =
    await outcomes([
      ask("execution.pauseControl", { action: "skip", executionId: running }),
      ask("execution.pauseControl", { action: "continueWithoutBreakpoint", executionId: running }),
      ask("execution.continue", { executionId: running }),
      ask("execution.pauseControl", { action: "skip", executionId: held }),
      ask("execution.pauseControl", { action: "continueWithoutBreakpoint", executionId: held }),
      ask("execution.pause", { executionId: held }),
    ]);
  const after = {
    done: brief(await statusOf(trpc, done)),
    running: brief(await statusOf(trpc, running)),
    held: brief(await statusOf(trpc, held)),
  };
  await trpc.mutation("execution.stop", { executionId: running });
  await trpc.mutation("execution.stop", { executionId: held });
  return {
    doneBefore,
    stopDone,
    pauseDone,
    continueDone,
    skipDone,
    skipRunning,
    unbreakRunning,
    continueRunning,
    skipHeld,
    unbreakHeld,
    pauseHeld,
    after,
  };
}

/** Executes with one idempotencyKey at once: the same request gives one execution; two
 * different requests give one execution and one CONFLICT. */
async function sameKey({ batch: trpc, single }) {
  const created = await trpc.mutation("blueprint.create", { ...HELD, name: "e2e same key" });
  const blueprintId = created.blueprintId;
  const key = `e2e-race-${Date.now()}`;
  const same = await outcomes(
    [1, 2, 3, 4].map(() =>
      single.mutation("execution.executeBlueprintWithLogging", {
        blueprintId,
        idempotencyKey: key,
        input: { n: 1 },
      }),
    ),
  );
  const different = await outcomes(
    [1, 2].map((n) =>
      single.mutation("execution.executeBlueprintWithLogging", {
        blueprintId,
        idempotencyKey: `${key}-different`,
        input: { n },
      }),
    ),
  );
  const listed = await trpc.query("execution.list", { blueprintId });
  for (const { executionId } of listed.executions) {
    await trpc.mutation("execution.stop", { executionId });
  }
  return { same, different, listed };
}

await main("races.mjs", {
  "two-continues": ({ batch, single }) => twoContinues(batch, single),
  "two-continues-batched": ({ batch }) => twoContinues(batch, batch),
  "stop-and-continue": stopAndContinue,
  "two-pauses": twoPauses,
  "stop-while-finishing": stopWhileFinishing,
  "input-not-waiting": inputNotWaiting,
  "concurrent-inputs": concurrentInputs,
  refusals,
  "same-key": sameKey,
});
