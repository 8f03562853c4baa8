// The console in a real browser (Debian's chromium driven by playwright-core; no browser
// download), against the app as `make up` runs it (scripts/console-browser-test.sh starts
// it on a free port and sets CONSOLE_URL). Phone-sized contexts: a rider requests a ride on
// the map, a driver accepts and completes it in a second context, the rider sees Completed
// and the receipt, an operator sees the ride and its events; a cancel shows the refund.
// Screenshots of each view go to SCREENSHOT_DIR (target/console-screenshots/).

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const BASE = process.env.CONSOLE_URL;
const SHOTS = process.env.SCREENSHOT_DIR;
const PHONE = { width: 390, height: 844 };
const WAIT = { timeout: 30_000 };

let browser;
const problems = []; // console errors (CSP violations among them) and page errors, per page

before(async () => {
  assert.ok(BASE, "CONSOLE_URL must name the running app");
  assert.ok(SHOTS, "SCREENSHOT_DIR must be set");
  mkdirSync(SHOTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
});

after(async () => {
  await browser?.close();
});

async function person() {
  const ctx = await browser.newContext({ viewport: PHONE, deviceScaleFactor: 1, locale: "en-US" });
  const page = await ctx.newPage();
  page.on("console", (m) => {
    // A refused API call (a 404 for a taxi not registered yet, a 409) logs a network error
    // the view handles or shows in words; anything else (a CSP violation, a script error)
    // is a failure.
    if (m.type() === "error" && !/^Failed to load resource: the server responded with a status of 4\d\d/.test(m.text())) {
      problems.push(m.text());
    }
  });
  page.on("pageerror", (e) => problems.push(String(e)));
  return page;
}

async function signIn(page, role, who) {
  await page.goto(`${BASE}/console/`);
  await page.selectOption("#role", role);
  if (role === "rider") await page.fill("#phone", who);
  if (role === "driver") await page.fill("#taxi-id", who);
  await page.click("form[aria-label='Dev sign-in'] button[type=submit]");
  await page.waitForSelector(`.view.${role === "operator" ? "ops" : role}`, WAIT);
}

/** Click the map at a coordinate (the SVG names the box it draws in data-bbox). */
async function clickMap(page, p) {
  const map = page.locator("svg.map");
  const [west, south, east, north] = (await map.getAttribute("data-bbox")).split(",").map(Number);
  const box = await map.boundingBox();
  await page.mouse.click(
    box.x + ((p.lng - west) / (east - west)) * box.width,
    box.y + ((north - p.lat) / (north - south)) * box.height,
  );
}

const rand = (lo, hi) => lo + Math.random() * (hi - lo);
const digits = (n) => Array.from({ length: n }, () => Math.floor(Math.random() * 10)).join("");
/** A spot no earlier run's taxi is at: allocation takes the nearest taxi, ours is at the pickup. */
const spot = () => ({ lat: rand(37.5, 37.6), lng: rand(126.9, 127.08) });
const shot = (page, name) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });

async function driverWithTaxi(plate, at) {
  const page = await person();
  await signIn(page, "driver", crypto.randomUUID());
  await page.waitForSelector("#register", WAIT);
  await page.fill("#plate", plate);
  await clickMap(page, at);
  await page.click("#register");
  await page.waitForSelector("#taxi-status", WAIT);
  assert.equal(await page.textContent("#taxi-status"), "Available");
  return page;
}

async function riderRequests(phone, from, to, screenshot) {
  const page = await person();
  await signIn(page, "rider", phone);
  if (screenshot) await shot(page, "rider-signed-in");
  await clickMap(page, from);
  await clickMap(page, to);
  await page.waitForSelector("#request:not([disabled])", WAIT);
  assert.match(await page.textContent("#fare"), /KRW/);
  if (screenshot) {
    // The available taxis around the pickup are dots on the rider's map (ours is at the pickup).
    await page.waitForSelector("svg.map g.marker[data-kind=taxi]", WAIT);
    await shot(page, "rider-pickup-and-destination");
  }
  await page.click("#request");
  return page;
}

test("sign-in page, served under a strict policy", async () => {
  const resp = await fetch(`${BASE}/console/`);
  assert.equal(resp.status, 200);
  assert.match(resp.headers.get("content-security-policy"), /default-src 'self'.*frame-ancestors 'none'/);
  assert.equal(resp.headers.get("cache-control"), "no-cache");
  const page = await person();
  await page.goto(`${BASE}/console/`);
  await page.waitForSelector("form[aria-label='Dev sign-in']");
  await shot(page, "sign-in");
  await page.context().close();
});

test("a rider rides, a driver accepts and completes, an operator sees the saga", async () => {
  const pickup = spot();
  const destination = { lat: 37.4979, lng: 127.0276 }; // Gangnam Station
  const plate = `서울${digits(2)}가${digits(4)}`;
  const phone = `010-${digits(4)}-${digits(4)}`;

  const driver = await driverWithTaxi(plate, pickup);
  await shot(driver, "driver-waiting");

  // The same plate again is refused, and the refusal is shown in words.
  const other = await person();
  await signIn(other, "driver", crypto.randomUUID());
  await other.waitForSelector("#register", WAIT);
  await other.fill("#plate", plate);
  await clickMap(other, pickup);
  await other.click("#register");
  const alert = other.locator("[role=alert]:not([hidden])").first();
  await alert.waitFor(WAIT);
  assert.match(await alert.textContent(), /Conflict/);
  await other.context().close();

  const rider = await riderRequests(phone, pickup, destination, true);
  // Paid, and offered to the nearest taxi (ours, at the pickup): its driver has a deadline.
  await rider.waitForSelector("#ride-status[data-status=Paid]", WAIT);
  await driver.waitForSelector("#accept", WAIT);
  assert.match(await driver.textContent("#offer-deadline"), /Answer within \d+ s/);
  await shot(driver, "driver-offer");
  await driver.click("#accept");
  await rider.waitForSelector("#ride-status[data-status=Allocated]", WAIT);
  assert.match(await rider.textContent("#ride"), new RegExp(plate));
  await shot(rider, "rider-allocated");

  // Accepted: the driver is told where to take the rider, picks them up, drops them off.
  await driver.waitForSelector("#offer-message", WAIT);
  assert.match(await driver.textContent("#offer-message"), /take them to Gangnam Station/);
  await driver.click("#pickup");
  await driver.waitForSelector("#complete", WAIT);
  await rider.waitForSelector("#ride-status[data-status=RideStarted]", WAIT);
  assert.equal(await rider.locator("#cancel").count(), 0, "no cancel once the ride started");
  await driver.click("#complete");
  await driver.waitForSelector("#no-offer", WAIT);

  await rider.waitForSelector("#ride-status[data-status=Completed]", WAIT);
  await rider.waitForSelector("#receipt", WAIT);
  assert.match(await rider.textContent("#receipt"), /Receipt: your ride in .* is complete\. Fare charged: [\d,]+ KRW/);
  await shot(rider, "rider-completed");
  await driver.waitForSelector("#driver-notifications li[data-kind=PickupAssigned]", WAIT);
  await shot(driver, "driver-completed");

  const ops = await person();
  await signIn(ops, "operator");
  await ops.fill("#filter-text", phone);
  const row = ops.locator("#rides button[data-grab]");
  await row.first().waitFor(WAIT);
  assert.equal(await row.count(), 1, "the filter leaves this rider's one ride");
  await row.first().click();
  await ops.waitForSelector("#events li[data-type=RideCompleted]", WAIT);
  const events = await ops.locator("#events li").evaluateAll((ls) => ls.map((l) => l.dataset.type));
  for (const t of ["GrabRequested", "PaymentApproved", "TaxiOffered", "TaxiAllocated", "RideStarted", "RideCompleted"]) {
    assert.ok(events.includes(t), `${t} in ${events}`);
  }
  assert.match(await ops.textContent("#health li[data-component=grab]"), /pay breaker closed/);
  assert.match(await ops.textContent("#taxi-counts"), /Available/);
  await shot(ops, "operations");

  for (const p of [rider, driver, ops]) await p.context().close();
});

test("a rider cancels before the driver accepts and sees the refund", async () => {
  const pickup = spot();
  const driver = await driverWithTaxi(`서울${digits(2)}나${digits(4)}`, pickup);
  const rider = await riderRequests(`010-${digits(4)}-${digits(4)}`, pickup, { lat: 37.5665, lng: 126.978 }, false);
  // The offer reached the driver; the rider cancels before it is answered: it is withdrawn.
  await driver.waitForSelector("#accept", WAIT);
  await rider.waitForSelector("#ride-status[data-status=Paid]", WAIT);
  await rider.click("#cancel");
  await rider.waitForSelector("#ride-status[data-status=Cancelled]", WAIT);
  await rider.waitForSelector("#refund", WAIT);
  assert.match(await rider.textContent("#refund"), /refund/i);
  assert.match(await rider.textContent("#ride"), /Refunded/);
  await shot(rider, "rider-cancelled-refund");
  // The taxi is released: no offer left for the driver.
  await driver.waitForSelector("#no-offer", WAIT);
  for (const p of [rider, driver]) await p.context().close();
});

test("a driver declines: the ride goes to the next nearest taxi; off duty, no offers", async () => {
  const pickup = spot();
  const near = await driverWithTaxi(`서울${digits(2)}다${digits(4)}`, pickup);
  const nextPlate = `서울${digits(2)}라${digits(4)}`;
  // ~330 m north: a few pixels on the map (at 0.0003°, 30 m, both taxis could land on the
  // pickup's pixel, and the tie went to whichever plate sorts first).
  const next = await driverWithTaxi(nextPlate, { lat: pickup.lat + 0.003, lng: pickup.lng });
  const rider = await riderRequests(`010-${digits(4)}-${digits(4)}`, pickup, { lat: 37.5665, lng: 126.978 }, false);
  await near.waitForSelector("#decline", WAIT);
  await near.click("#decline");
  await near.waitForSelector("#no-offer", WAIT);
  await next.waitForSelector("#accept", WAIT);
  await shot(next, "driver-second-offer");
  await next.click("#accept");
  await rider.waitForSelector("#ride-status[data-status=Allocated]", WAIT);
  assert.match(await rider.textContent("#ride"), new RegExp(nextPlate), "the second-nearest taxi took it");
  // The first driver goes off duty: the console says so and the API agrees.
  await near.click("#duty");
  await near.waitForSelector("#duty[data-duty=OffDuty]", WAIT);
  await shot(near, "driver-off-duty");
  for (const p of [near, next, rider]) await p.context().close();
});

test("nothing the console loaded broke its policy or threw", () => {
  assert.deepEqual(problems, []);
});
