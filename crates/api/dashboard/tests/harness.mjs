// What the browser tests share: the api's address (set by run.sh), headless Debian chromium,
// screenshots into target/browser-artifacts/, small JSON api helpers and polling.

import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import path from "node:path";

import { chromium } from "playwright-core";

export const BASE_URL = required("BASE_URL");
export const FIXTURES_DIR = required("FIXTURES_DIR");
export const ARTIFACTS_DIR = required("ARTIFACTS_DIR");

/**
 * Longest wait for a job to reach a state. Imports take about a second with run.sh's pacing;
 * the margin covers a RabbitMQ restart by the fault-injection suite (workers reconnect).
 */
export const JOB_TIMEOUT_MS = 60_000;

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the tests through run.sh`);
  return value;
}

/** Headless chromium from Debian's package, isolated from any profile and from the network. */
export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    // Playwright gives each launch a fresh, temporary --user-data-dir of its own.
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/**
 * A page on the dashboard at a laptop size (or `viewport`). Console errors and failed
 * requests are collected in `page.problems`, so a test can assert the page ran cleanly.
 */
export async function openDashboard(browser, { viewport = { width: 1280, height: 900 }, hash = "" } = {}) {
  const context = await browser.newContext({ viewport, reducedMotion: "reduce" });
  const page = await context.newPage();
  page.problems = [];
  page.on("console", (message) => {
    if (message.type() === "error") page.problems.push(`console: ${message.text()}`);
  });
  page.on("pageerror", (error) => page.problems.push(`page error: ${error.message}`));
  await page.goto(`${BASE_URL}/${hash}`);
  await page.locator("#live[data-state=live]").waitFor();
  return page;
}

/** Saves a screenshot of `page` as target/browser-artifacts/<name>.png; returns its path. */
export async function screenshot(page, name, options = {}) {
  mkdirSync(ARTIFACTS_DIR, { recursive: true });
  const file = path.join(ARTIFACTS_DIR, `${name}.png`);
  await page.screenshot({ path: file, ...options });
  return file;
}

export function fixture(name) {
  return path.join(FIXTURES_DIR, name);
}

export function fixtureBytes(name) {
  return readFileSync(fixture(name));
}

/** An owner tag no other test uses, to find a test's own jobs. */
export function uniqueUser(label) {
  return `${label}-${randomUUID().slice(0, 8)}`;
}

/** Uploads a fixture through the api (not the page); returns the job. */
export async function uploadViaApi(name, userId) {
  const form = new FormData();
  if (userId) form.append("user_id", userId);
  form.append("file", new Blob([fixtureBytes(name)]), name);
  const response = await fetch(`${BASE_URL}/api/jobs`, { method: "POST", body: form });
  if (response.status !== 202) throw new Error(`upload of ${name}: ${response.status}`);
  return response.json();
}

/** Calls the JSON api; returns `{ status, body }`. */
export async function apiCall(method, urlPath, json) {
  const response = await fetch(`${BASE_URL}${urlPath}`, {
    method,
    headers: json === undefined ? {} : { "content-type": "application/json" },
    body: json === undefined ? undefined : JSON.stringify(json),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

/**
 * Runs `statement` on the test database with psql (run.sh's DATABASE_URL), for state the api
 * does not set: the cluster-wide caps and rate limits that workers declare. Values are passed
 * as psql variables (`:'name'` in the statement), never spliced into the text.
 */
export function sql(statement, variables = {}) {
  const args = [required("DATABASE_URL"), "-X", "-q", "-v", "ON_ERROR_STOP=1"];
  for (const [name, value] of Object.entries(variables)) args.push("-v", `${name}=${value}`);
  // psql expands variables only in statements it reads (stdin), not in -c.
  execFileSync("psql", args, { input: statement, stdio: ["pipe", "ignore", "inherit"] });
}

/** Polls `probe` until it returns a truthy value, failing after `timeout` ms with `what`. */
export async function eventually(what, probe, timeout = JOB_TIMEOUT_MS) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Waits until the job's status (through the api) is one of `statuses`; returns the job. */
export function jobReaches(id, ...statuses) {
  return eventually(`job ${id} to be ${statuses.join(" or ")}`, async () => {
    const { body } = await apiCall("GET", `/api/jobs/${id}`);
    return statuses.includes(body?.status) ? body : null;
  });
}

/** The job id an upload result line links to (`#/jobs/<id>`), once the upload was accepted. */
export async function acceptedJobId(resultLine) {
  const link = resultLine.locator("a[href^='#/jobs/']");
  await link.waitFor({ timeout: JOB_TIMEOUT_MS });
  return (await link.getAttribute("href")).slice("#/jobs/".length);
}
