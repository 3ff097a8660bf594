// The dashboard end to end, in headless chromium against the real api, one worker, RabbitMQ and
// Postgres (started by run.sh). Each test tags its jobs with its own owner tag, so tests do not
// see each other's jobs where it matters.

import assert from "node:assert/strict";
import { copyFileSync, statSync } from "node:fs";
import { after, before, test } from "node:test";

import {
  acceptedJobId,
  BASE_URL,
  apiCall,
  eventually,
  fixture,
  fixtureBytes,
  JOB_TIMEOUT_MS,
  jobReaches,
  launch,
  openDashboard,
  screenshot,
  sql,
  uniqueUser,
  uploadViaApi,
} from "./harness.mjs";

let browser;

before(async () => {
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

/** Uploads `files` through the file picker as `user`; returns the result lines, newest first.
 * Each file is previewed first (the dashboard's default): the caller imports or discards it. */
async function uploadThroughPicker(page, user, files) {
  await page.fill("#upload-user", user);
  const chooser = page.waitForEvent("filechooser");
  await page.click("#pick-files");
  await (await chooser).setFiles(files);
  return page.locator("#upload-results > li");
}

/** Waits for the preview on `line` and chooses Import. */
async function importAfterPreview(line) {
  const button = line.locator(".preview-import");
  await button.waitFor({ timeout: JOB_TIMEOUT_MS });
  await button.click();
}

/** Mockaroo's default columns (lower case, `ip_address`, …), as the reference articles' files
 * have them, with `rows` people and one extra column the people profile does not use. */
function mockarooCsv(rows) {
  const lines = ["id,first_name,last_name,email,gender,ip_address,favourite_colour"];
  for (let i = 1; i <= rows; i++) {
    lines.push(`${i},Ada${i},Lovelace,ada${i}@example.com,Female,10.0.${Math.floor(i / 256)}.${i % 256},teal`);
  }
  return Buffer.from(lines.join("\r\n") + "\r\n");
}

test("an upload shows how its columns map and its first rows, and imports only when asked", async () => {
  const page = await openDashboard(browser);
  const user = uniqueUser("preview");
  const file = { name: "MOCK_DATA.csv", mimeType: "text/csv", buffer: mockarooCsv(30) };
  let results = await uploadThroughPicker(page, user, [file]);
  const line = results.first();
  const preview = line.locator(".preview");
  await preview.waitFor();
  assert.match(await line.locator(".outcome").textContent(), /sheet “csv”, header in row 1; 30 rows read, all valid/);
  const mapping = await preview.locator(".preview-mapping tbody tr").evaluateAll((rows) =>
    rows.map((row) => [...row.children].map((cell) => cell.textContent)),
  );
  assert.deepEqual(mapping, [
    // The table's columns, * marking the required ones, each with the header that feeds it.
    ["id *", "id", "A1"],
    ["first_name", "first_name", "B1"],
    ["last_name", "last_name", "C1"],
    ["email *", "email", "D1"],
    ["gender", "gender", "E1"],
    ["ip_address *", "ip_address", "F1"],
  ]);
  assert.match(await preview.locator(".preview-notes").textContent(), /Ignored headers: favourite_colour/);
  assert.equal(await preview.locator(".preview-sample tbody tr").count(), 20, "the first 20 rows");
  assert.deepEqual(await preview.locator(".preview-sample tbody tr").first().locator("td").allTextContents(), [
    "1",
    "Ada1",
    "Lovelace",
    "ada1@example.com",
    "Female",
    "10.0.0.1",
  ]);
  await screenshot(page, "00-upload-preview", { fullPage: true });
  // Nothing is stored while the user looks, nor after Discard.
  const jobsOf = async () => (await apiCall("GET", `/api/jobs?user_id=${user}`)).body.jobs.length;
  assert.equal(await jobsOf(), 0, "no job before the user decides");
  await line.locator(".preview-discard").click();
  await line.locator(".outcome", { hasText: "discarded" }).waitFor();
  assert.equal(await line.locator(".preview").count(), 0);
  assert.equal(await jobsOf(), 0, "no job after Discard");

  results = await uploadThroughPicker(page, user, [file]);
  await importAfterPreview(results.first());
  const id = await acceptedJobId(results.first());
  const job = await jobReaches(id, "succeeded", "failed");
  assert.equal(job.status, "succeeded", job.message);
  assert.equal(job.rows_imported, 30);
  assert.equal(await jobsOf(), 1);
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test("an uploaded workbook is imported live and its page shows the history", async () => {
  const page = await openDashboard(browser);
  const results = await uploadThroughPicker(page, uniqueUser("upload"), [fixture("MOCK_DATA_1.xlsx")]);
  await importAfterPreview(results.first());
  const id = await acceptedJobId(results.first());
  await assert.doesNotReject(results.first().locator("text=accepted").waitFor());

  const row = page.locator(`#jobs-body tr[data-id="${id}"]`);
  await row.locator(".pill-succeeded").waitFor({ timeout: JOB_TIMEOUT_MS });
  assert.equal(await row.locator(".cell-rows").textContent(), "200");
  assert.equal(await row.locator(".cell-attempts").textContent(), "1");
  assert.equal(await row.locator("progress").getAttribute("value"), "200", "a full progress bar");
  assert.match(await row.locator(".cell-run").textContent(), /\d+(\.\d+)? (ms|s)/);
  await screenshot(page, "01-jobs-after-upload");

  await row.locator("a.job-link").click();
  await page.waitForURL(`**/#/jobs/${id}`);
  await page.locator("#job-title", { hasText: "MOCK_DATA_1.xlsx" }).waitFor();
  const events = page.locator("#job-events tr");
  await eventually("three history entries", async () => (await events.count()) >= 3);
  assert.deepEqual(await page.locator("#job-events .pill").allTextContents(), ["queued", "processing", "succeeded"]);
  assert.match(await page.locator("#job-events").textContent(), /Imported 200 rows/);
  assert.match(await page.locator("#job-events").textContent(), /browser-worker/);
  assert.match(await page.locator("#job-facts").textContent(), /Rows imported200/);
  assert.ok(await page.locator("#job-retry").isHidden(), "no Retry on a succeeded job");
  assert.ok(await page.locator("#job-cancel").isHidden(), "no Cancel on a succeeded job");
  await screenshot(page, "02-job-detail-succeeded", { fullPage: true });
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test("several files dropped on the drop zone become one job each", async () => {
  const page = await openDashboard(browser);
  await page.fill("#upload-user", uniqueUser("drop"));
  const files = ["MOCK_DATA_2.xlsx", "MOCK_DATA_3.xlsx"].map((name) => ({
    name,
    bytes: [...fixtureBytes(name)],
  }));
  await page.evaluate((files) => {
    const transfer = new DataTransfer();
    for (const { name, bytes } of files) {
      transfer.items.add(new File([new Uint8Array(bytes)], name, { type: "application/octet-stream" }));
    }
    const zone = document.querySelector("#dropzone");
    for (const type of ["dragenter", "dragover", "drop"]) {
      zone.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: transfer }));
    }
  }, files);
  const results = page.locator("#upload-results > li");
  // Previewed one after the other, in the order dropped (the newest line is on top).
  await importAfterPreview(results.nth(1));
  await importAfterPreview(results.nth(0));
  const ids = [await acceptedJobId(results.nth(0)), await acceptedJobId(results.nth(1))];
  assert.notEqual(ids[0], ids[1]);
  for (const id of ids) {
    await page.locator(`#jobs-body tr[data-id="${id}"] .pill-succeeded`).waitFor({ timeout: JOB_TIMEOUT_MS });
  }
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test("a file that is not a spreadsheet is refused with the api's reason", async () => {
  const page = await openDashboard(browser);
  // Text would be read as CSV: a PDF is no spreadsheet by content, whatever its name.
  const results = await uploadThroughPicker(page, uniqueUser("refused"), [
    { name: "notes.xlsx", mimeType: "application/pdf", buffer: Buffer.from("%PDF-1.7\n%\xE2\xE3\n1 0 obj\n") },
  ]);
  const line = results.first();
  await line.locator(".outcome", { hasText: "415" }).waitFor();
  assert.match(await line.getAttribute("class"), /error/);
  assert.match(await line.textContent(), /notes\.xlsx.*415 Unsupported Media Type: the file is a PDF/s);
  await screenshot(page, "03-upload-refused");
  await page.context().close();
});

test("a failed import names row and column, and Retry runs it again", async () => {
  const page = await openDashboard(browser);
  const results = await uploadThroughPicker(page, uniqueUser("bad"), [fixture("bad_non_numeric_id.xlsx")]);
  // The preview already names the bad cell; imported anyway, the job fails with it.
  await results.first().locator(".preview-errors li", { hasText: "row 7, column Id (cell A7)" }).waitFor();
  await importAfterPreview(results.first());
  const id = await acceptedJobId(results.first());
  await page.locator(`#jobs-body tr[data-id="${id}"] .pill-failed`).waitFor({ timeout: JOB_TIMEOUT_MS });

  await page.click(`#jobs-body tr[data-id="${id}"] a.job-link`);
  const alert = page.locator("#job-alert");
  await alert.waitFor();
  assert.match(await alert.textContent(), /row 7, column Id/);
  await page.locator("#job-events .pill-failed").waitFor();
  assert.ok(await page.locator("#job-cancel").isHidden(), "no Cancel on a failed job");
  await screenshot(page, "04-job-failed", { fullPage: true });

  await page.click("#job-retry");
  await page.locator("#job-action-status", { hasText: "Retried" }).waitFor();
  // It runs again: a second attempt starts and fails the same way.
  await eventually("a second run", async () => (await page.locator("#job-events .pill-processing").count()) === 2);
  await eventually("a second failure", async () => (await page.locator("#job-events .pill-failed").count()) === 2);
  assert.match(await page.locator("#job-events").textContent(), /Retried on request/);
  await page.locator("#job-retry").waitFor();
  assert.match(await alert.textContent(), /row 7, column Id/);
  await screenshot(page, "05-job-failed-after-retry", { fullPage: true });
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test("the failures page groups failed jobs by error and retries a whole group", async () => {
  // Two more jobs with the same error, in other rows of the same file: one group.
  for (let i = 0; i < 2; i += 1) {
    const job = await uploadViaApi("bad_non_numeric_id.xlsx", uniqueUser("group"));
    await jobReaches(job.id, "failed");
  }
  const page = await openDashboard(browser, { hash: "#/failures" });
  const group = page.locator(".group", { hasText: "column Id (cell" });
  await group.waitFor();
  assert.match(await group.locator(".group-error").textContent(), /row #, column Id \(cell A#\)/);
  const count = Number((await group.locator(".group-count").textContent()).match(/\d+/)[0]);
  assert.ok(count >= 2, `the group counts every failed job (${count})`);
  assert.match(await page.locator("#dlq-size").textContent(), /\d+ messages?/);
  await page.click(".group summary");
  assert.equal(await group.locator(".group-jobs li").count(), count);
  await screenshot(page, "06-failures", { fullPage: true });

  await group.locator(".group-retry").click();
  await page.locator("#failures-status", { hasText: `Retried ${count} of ${count}` }).waitFor();
  // They fail again, and the group comes back with the same count.
  await eventually("the group to fail again", async () => {
    const { body } = await apiCall("GET", "/api/failures");
    const again = body.groups.find((g) => g.error.includes("column Id (cell"));
    return again?.count === count;
  });
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test("a queued job is cancelled from its page", async () => {
  const runAt = new Date(Date.now() + 60_000).toISOString();
  const { status, body: job } = await apiCall("POST", "/api/jobs", {
    kind: "sleep",
    payload: { ms: 20_000 },
    run_at: runAt,
    user_id: uniqueUser("cancel"),
  });
  assert.equal(status, 202);
  const page = await openDashboard(browser, { hash: `#/jobs/${job.id}` });
  await page.locator("#job-sub .pill-queued").waitFor();
  assert.ok(await page.locator("#job-retry").isHidden(), "no Retry on a queued job");
  await page.click("#job-cancel");
  await page.locator("#job-action-status", { hasText: "Cancelled." }).waitFor();
  await page.locator("#job-sub .pill-cancelled").waitFor();
  await page.locator("#job-retry").waitFor();
  assert.ok(await page.locator("#job-cancel").isHidden());
  assert.equal((await apiCall("GET", `/api/jobs/${job.id}`)).body.status, "cancelled");
  await screenshot(page, "07-job-cancelled", { fullPage: true });
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test("a job waiting for another shows its parent, and the parent its child", async () => {
  const user = uniqueUser("workflow");
  const runAt = new Date(Date.now() + 60_000).toISOString();
  const { body: parent } = await apiCall("POST", "/api/jobs", { kind: "noop", run_at: runAt, user_id: user });
  const { status, body: child } = await apiCall("POST", "/api/jobs", { kind: "noop", depends_on: [parent.id], user_id: user });
  assert.equal(status, 202);
  assert.equal(child.status, "awaiting");
  const page = await openDashboard(browser, { hash: `#/jobs/${child.id}` });
  await page.locator("#job-sub .pill-awaiting").waitFor();
  const parentLink = page.locator(`#job-facts .relatives a[href="#/jobs/${parent.id}"]`);
  await parentLink.waitFor();
  await parentLink.click();
  await page.locator(`#job-facts .relatives a[href="#/jobs/${child.id}"]`).waitFor();
  // Cancelling the parent cancels the child, with the reason on its page.
  await page.click("#job-cancel");
  await page.locator("#job-sub .pill-cancelled").waitFor();
  await page.goto(page.url().replace(/#.*$/, `#/jobs/${child.id}`));
  await page.locator("#job-sub .pill-cancelled").waitFor({ timeout: JOB_TIMEOUT_MS });
  await page.locator("#job-events", { hasText: `parent ${parent.id} ended cancelled` }).waitFor();
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test("a batch's page shows its members ending, its callback and filters members by status", async () => {
  const user = uniqueUser("batch");
  const { status, body } = await apiCall("POST", "/api/batches", {
    jobs: [{ kind: "sleep", payload: { ms: 1500 }, user_id: user }, ...Array.from({ length: 3 }, () => ({ kind: "noop", user_id: user }))],
    on_complete: { kind: "noop", user_id: user },
    description: `four members of ${user}`,
    user_id: user,
  });
  assert.equal(status, 202);
  // From a member's page, its Batch fact links the batch's page.
  const page = await openDashboard(browser, { hash: `#/jobs/${body.job_ids[1]}` });
  const link = page.locator(`#job-facts a[href="#/batches/${body.batch.id}"]`);
  await link.waitFor();
  await link.click();
  await page.locator("#batch-title", { hasText: `four members of ${user}` }).waitFor();
  await page.locator("#batch-sub .pill-succeeded").waitFor({ timeout: JOB_TIMEOUT_MS });
  await page.locator("#batch-progress", { hasText: "4 of 4 members ended" }).waitFor();
  const onCompleteLink = `a[href="#/jobs/${body.batch.on_complete}"]`;
  const onComplete = page.locator(`#batch-facts ${onCompleteLink}`);
  await page.locator("#batch-facts dd", { has: page.locator(onCompleteLink) }).locator(".pill-succeeded").waitFor({ timeout: JOB_TIMEOUT_MS });
  await eventually("four members listed", async () => (await page.locator("#batch-members tr").count()) === 4);
  await screenshot(page, "09-batch");
  // The count of a status filters the member list; pressing it again shows all.
  const chip = page.locator('#batch-chips .chip[data-status="succeeded"]');
  await chip.click();
  await page.locator('#batch-chips .chip[data-status="succeeded"][aria-pressed="true"]').waitFor();
  await page.locator("#batch-members-title", { hasText: "Members: succeeded" }).waitFor();
  assert.equal(await page.locator("#batch-members .pill-succeeded").count(), 4);
  await onComplete.click();
  await page.locator("#job-sub .pill-succeeded").waitFor();
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test("a running job shows its progress and stops when cancelled", async () => {
  const { body: job } = await apiCall("POST", "/api/jobs", {
    kind: "sleep",
    payload: { ms: 20_000 },
    user_id: uniqueUser("running"),
  });
  const page = await openDashboard(browser, { hash: `#/jobs/${job.id}` });
  await page.locator("#job-sub .pill-processing").waitFor({ timeout: JOB_TIMEOUT_MS });
  const bar = page.locator("#job-progress progress");
  await eventually("progress", async () => Number(await bar.getAttribute("value")) > 0);
  await screenshot(page, "08-job-running");
  await page.click("#job-cancel");
  await page.locator("#job-sub .pill-cancelled").waitFor({ timeout: JOB_TIMEOUT_MS });
  assert.deepEqual(
    (await page.locator("#job-events td:nth-child(2)").allTextContents()).map((t) => t.trim()),
    ["queued", "processing", "cancel requested", "cancelled"],
  );
  await page.context().close();
});

test("filters by owner tag and status, and pages through the jobs", async () => {
  const user = uniqueUser("pages");
  const { status, body } = await apiCall("POST", "/api/jobs/batch", {
    jobs: Array.from({ length: 30 }, () => ({ kind: "noop", user_id: user })),
  });
  assert.equal(status, 202);
  await eventually("30 noop jobs to succeed", async () => {
    const { body: page } = await apiCall("GET", `/api/jobs?user_id=${user}&status=succeeded&limit=200`);
    return page.jobs.length === 30;
  });
  const page = await openDashboard(browser);
  await page.fill("#filter-user", user);
  await page.press("#filter-user", "Enter");
  const rows = page.locator("#jobs-body tr");
  await eventually("a full first page", async () => (await rows.count()) === 25);
  assert.equal(await page.locator("#page-label").textContent(), "Page 1");
  assert.ok(await page.locator("#page-newer").isDisabled());
  const firstPage = await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.id));
  const listed = (await apiCall("GET", `/api/jobs?user_id=${user}&limit=200`)).body.jobs;
  assert.deepEqual(new Set(listed.map((j) => j.id)), new Set(body.jobs.map((j) => j.id)));
  const newestFirst = listed.map((j) => j.id);
  assert.deepEqual(firstPage, newestFirst.slice(0, 25), "the api's order, newest first");

  await page.click("#page-older");
  await eventually("the second page", async () => (await rows.count()) === 5);
  assert.equal(await page.locator("#page-label").textContent(), "Page 2");
  assert.ok(await page.locator("#page-older").isDisabled());
  assert.deepEqual(await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.id)), newestFirst.slice(25));
  await page.click("#page-newer");
  await eventually("the first page again", async () => (await rows.count()) === 25);

  await page.selectOption("#filter-status", "failed");
  await page.locator("#jobs-empty").waitFor();
  assert.equal(await rows.count(), 0);
  await page.click("#filter-clear");
  assert.equal(await page.inputValue("#filter-user"), "");
  await page.context().close();
});

test("the overview shows the queues, in-flight jobs and the throughput chart", async () => {
  const page = await openDashboard(browser);
  await eventually("the stats", async () => (await page.locator("#stat-consumers").textContent()) === "1");
  assert.match(await page.locator("#stat-queue").textContent(), /^\d+$/);
  assert.match(await page.locator("#stat-inflight").textContent(), /^\d+$/);
  assert.match(await page.locator("#stat-dlq").textContent(), /^\d+$/);
  assert.ok((await page.locator("#throughput-chart rect.bar-succeeded").count()) >= 1, "bars for this minute");
  assert.match(await page.locator("#chart-desc").textContent(), /jobs? completed in the last 15 minutes/);
  const succeeded = page.locator("#status-chips .chip[data-status=succeeded]");
  assert.ok(Number(await succeeded.locator(".chip-count").textContent()) >= 3);
  await succeeded.click();
  assert.equal(await succeeded.getAttribute("aria-pressed"), "true");
  assert.equal(await page.inputValue("#filter-status"), "succeeded");
  await page.locator("#jobs-body tr").first().waitFor();
  assert.equal(await page.locator("#jobs-body .pill").evaluateAll((p) => p.every((x) => x.textContent === "succeeded")), true);
  await page.context().close();
});

test("the overview's flow control shows caps, rate limits and each tenant's backlog", async () => {
  // Kinds no worker runs, so nothing of them ever runs or waits: the figures stay as set.
  const capKind = uniqueUser("capped");
  const rateKind = uniqueUser("limited");
  sql(
    `INSERT INTO kind_caps (kind, cap, updated_by) VALUES (:'cap_kind', 2, 'browser-test');
     INSERT INTO kind_rate_limits (kind, rate, period_ms, burst, updated_by)
       VALUES (:'rate_kind', 10, 1000, 5, 'browser-test');`,
    { cap_kind: capKind, rate_kind: rateKind },
  );
  const user = uniqueUser("tenant");
  const runAt = new Date(Date.now() + 10 * 60_000).toISOString();
  const jobs = [];
  for (let i = 0; i < 3; i++) {
    const { status, body } = await apiCall("POST", "/api/jobs", { kind: "noop", run_at: runAt, user_id: user });
    assert.equal(status, 202);
    jobs.push(body.id);
  }
  try {
    const page = await openDashboard(browser);
    const capRow = page.locator("#flow-caps tbody tr", { hasText: capKind });
    await capRow.waitFor();
    assert.deepEqual(await capRow.locator("td").allTextContents(), [capKind, "0 / 2", "0"]);
    assert.equal(await capRow.locator("progress").getAttribute("aria-label"), `${capKind}: 0 of 2 slots in use`);
    const rateRow = page.locator("#flow-rates tbody tr", { hasText: rateKind });
    await rateRow.waitFor();
    assert.deepEqual(await rateRow.locator("td").allTextContents(), [rateKind, "10 per second, burst 5", "0", "0"]);
    const tenantRow = page.locator("#flow-tenants tbody tr", { hasText: user });
    await tenantRow.waitFor();
    assert.deepEqual(await tenantRow.locator("td").allTextContents(), [user, "3", "0"]);
    assert.ok(await page.locator("#flow-caps-empty").isHidden());
    assert.ok(await page.locator("#flow-rates-empty").isHidden());
    await page.locator("#flow").scrollIntoViewIfNeeded();
    await screenshot(page, "11-flow-control");

    // Once the limits are gone and the jobs cancelled, the panel says so instead of a table.
    sql(`DELETE FROM kind_caps WHERE kind = :'cap_kind'; DELETE FROM kind_rate_limits WHERE kind = :'rate_kind';`, {
      cap_kind: capKind,
      rate_kind: rateKind,
    });
    for (const id of jobs) await apiCall("POST", `/api/jobs/${id}/cancel`);
    await tenantRow.waitFor({ state: "detached" });
    await capRow.waitFor({ state: "detached" });
    await rateRow.waitFor({ state: "detached" });
    // No other test sets a cap or a rate limit, and run.sh's worker declares none.
    await page.locator("#flow-caps-empty").waitFor();
    await page.locator("#flow-rates-empty").waitFor();
    assert.deepEqual(page.problems, []);
    await page.context().close();
  } finally {
    sql(`DELETE FROM kind_caps WHERE kind = :'cap_kind'; DELETE FROM kind_rate_limits WHERE kind = :'rate_kind';`, {
      cap_kind: capKind,
      rate_kind: rateKind,
    });
  }
});

test("the page works from the keyboard", async () => {
  const page = await openDashboard(browser);
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.textContent), "Skip to content");
  // Tab reaches the file picker button, with a visible focus style.
  await eventually("focus on the file picker", async () => {
    await page.keyboard.press("Tab");
    return page.evaluate(() => document.activeElement.id === "pick-files");
  }, 5000);
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.equal(outline, "solid", "a visible focus ring");
  // Enter on a job link opens its page and moves focus to its heading.
  await page.locator("#jobs-body a.job-link").first().focus();
  await page.keyboard.press("Enter");
  await page.locator("#view-job").waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), "job-title");
  // Every control has an accessible name.
  const unnamed = await page.evaluate(() =>
    [...document.querySelectorAll("button, a[href], input:not([aria-hidden]), select")]
      .filter((el) => el.offsetParent !== null)
      .filter((el) => !(el.getAttribute("aria-label") || el.labels?.length || el.textContent.trim()))
      .map((el) => el.outerHTML),
  );
  assert.deepEqual(unnamed, []);
  await page.context().close();
});

test("on a phone the layout stacks and nothing overflows sideways", async () => {
  const page = await openDashboard(browser, { viewport: { width: 390, height: 844 } });
  await page.locator("#jobs-body tr").first().waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no horizontal scrolling (${overflow}px too wide)`);
  assert.equal(await page.locator("#jobs-table thead").evaluate((el) => getComputedStyle(el).display), "none");
  await screenshot(page, "09-phone-jobs", { fullPage: true });
  await page.locator("#jobs-title").scrollIntoViewIfNeeded();
  await page.evaluate(() => document.querySelector("#jobs-title").scrollIntoView());
  await screenshot(page, "09-phone-jobs-table");
  await page.goto(`${BASE_URL}/#/failures`);
  await page.locator(".group").first().waitFor();
  await screenshot(page, "10-phone-failures");
  await page.context().close();
});

test("screenshot of the dashboard at work", async () => {
  // A realistic mix on top: imports that succeeded and one that failed, one job waiting for its
  // run_at, and two running.
  const ended = [];
  for (const name of ["MOCK_DATA_4.xlsx", "MOCK_DATA_5.xlsx", "bad_missing_column.xlsx", "MOCK_DATA_2.xlsx"]) {
    ended.push((await uploadViaApi(name, "alice")).id);
  }
  for (const id of ended) await jobReaches(id, "succeeded", "failed");
  const later = new Date(Date.now() + 10 * 60_000).toISOString();
  await apiCall("POST", "/api/jobs", { kind: "sleep", payload: { ms: 1000 }, run_at: later, user_id: "bob" });
  for (const ms of [6000, 9000]) {
    await apiCall("POST", "/api/jobs", { kind: "sleep", payload: { ms }, user_id: "bob" });
  }
  const page = await openDashboard(browser, { viewport: { width: 1280, height: 1000 } });
  await eventually("two jobs processing", async () => (await page.locator("#jobs-body .pill-processing").count()) === 2);
  await eventually("progress on both", async () =>
    page.locator("#jobs-body tr:has(.pill-processing) progress").evaluateAll((bars) => bars.every((b) => b.value > 0.25 * b.max)),
  );
  await page.mouse.move(0, 0);
  const file = await screenshot(page, "00-dashboard");
  if (process.env.UPDATE_SCREENSHOT === "1") {
    copyFileSync(file, process.env.SCREENSHOT_PATH);
    assert.ok(statSync(process.env.SCREENSHOT_PATH).size < 300 * 1024, "the committed screenshot stays under 300 KB");
  }
  await page.context().close();
});
