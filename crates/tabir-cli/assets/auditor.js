// The auditor page: fetches each panel's JSON from this machine's `tabir audit serve` and draws
// it. Plain JavaScript, no framework, no network but this page's own origin. Text from the
// server is only ever set as text (never parsed as HTML).
"use strict";

const TOKEN = document.querySelector('meta[name="tabir-token"]').content;
const SVG = "http://www.w3.org/2000/svg";
// Okabe-Ito: told apart with the common colour vision deficiencies.
const COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#F0E442"];
const PANELS = ["summary", "devices", "log", "escrow", "activity"];
const ERROR_TITLES = {
  server_unreachable: "The Tabir server is unreachable",
  server_busy: "The Tabir server is busy",
  refused: "The server refuses this auditor",
  log_invalid: "The audit log does not verify",
  domain_mismatch: "The key domain does not match this auditor bundle",
  bad_server_key: "The server names no valid audit key",
  bad_token: "This page is out of date",
  wrong_host: "Wrong address",
  service_down: "The auditor page service does not answer",
};

let labels = {};

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attributes, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, String(value));
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// replaceChildren without the parts left out (null, undefined, false).
function fill(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

function cosine(value) {
  return Number(value).toFixed(2);
}

function utc(time) {
  if (!time) return "—";
  return String(time).replace("T", " ").replace(/(\.\d+)?Z$/, " UTC");
}

function shortId(id) {
  return id ? id.slice(0, 16) + "…" : "—";
}

function deviceName(id) {
  return labels[id] ? `${labels[id]} (${shortId(id)})` : shortId(id);
}

function keyId(id) {
  return el("span", { class: "mono", title: id }, shortId(id));
}

function table(headers, rows, caption) {
  return el("table", {},
    caption ? el("caption", { class: "note" }, caption) : null,
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col", class: h.num ? "num" : null }, h.text || h)))),
    el("tbody", {}, rows));
}

function facts(pairs) {
  return el("dl", { class: "facts" }, pairs.flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]));
}

function errorPanel(error) {
  const title = ERROR_TITLES[error.code] || "This panel could not be read";
  return el("div", { class: "error-panel", role: "alert" }, title, el("p", {}, error.message || ""));
}

async function api(path, method) {
  let response;
  try {
    response = await fetch(path, { method: method || "GET", headers: { "x-tabir-auditor": TOKEN }, cache: "no-store" });
  } catch (e) {
    throw { code: "service_down", message: "Is `tabir audit serve` still running on this machine? Start it again, then reload this page." };
  }
  let body;
  try {
    body = await response.json();
  } catch (e) {
    throw { code: "bad_answer", message: `The auditor page service answered ${response.status} without JSON.` };
  }
  if (!response.ok) throw body.error || { code: "error", message: `HTTP ${response.status}` };
  return body;
}

function serverKeyNotice(key) {
  if (!key) return null;
  if (key.pinned && !key.matches_pinned) {
    return el("div", { class: "error-panel", role: "alert" }, "The server names another audit key than the one you gave",
      el("p", {}, "Given (--server-key): ", el("span", { class: "fingerprint" }, key.used)),
      el("p", {}, "Named by the server: ", el("span", { class: "fingerprint" }, key.named_by_server)));
  }
  if (!key.pinned) {
    return el("div", { class: "warn-panel" },
      el("strong", {}, "Compare the server's audit key with your records. "),
      "No --server-key was given: the log was checked under the key the server names, ",
      el("span", { class: "fingerprint" }, key.named_by_server),
      ". Check that it is the key recorded when the server first started, or restart this page with --server-key.");
  }
  return el("p", { class: "ok" }, "The log is checked under the audit key you gave (--server-key), and the server names the same key.");
}

function renderSummary(body, data) {
  const domains = data.domains.map((d) => el("div", { class: d.matches_bundle ? null : "error-panel" },
    el("h3", {}, `Key domain ${d.name}`),
    d.matches_bundle ? null : el("p", { role: "alert" }, "The server's fingerprint for this domain is NOT the one in this auditor bundle."),
    facts([
      ["Fingerprint", el("span", { class: "fingerprint" }, d.fingerprint)],
      ["Matches this bundle", d.name !== data.domain ? "(not this bundle's domain)" : d.matches_bundle ? el("span", { class: "ok" }, "yes") : el("span", { class: "bad" }, "NO")],
      ["Parameter set", el("span", { class: "mono" }, d.params)],
      ["Embedding dimension", d.dim],
      ["1:1 threshold (verify)", `cosine ${cosine(d.threshold_cosine)} (score ${d.threshold_score})`],
      ["1:N threshold (identify)", `cosine ${cosine(d.identify_threshold_cosine)} (score ${d.identify_threshold_score})`],
      ["Registered", utc(d.registered_at)],
    ])));
  fill(body,
    facts([
      ["Server", data.server],
      ["Server version", `${data.server_version} (protocol ${data.protocol})`],
      ["This bundle's domain", data.domain],
      ["This bundle's fingerprint", el("span", { class: "fingerprint" }, data.bundle_fingerprint)],
      ["Server audit key", el("span", { class: "fingerprint" }, data.server_key.used)],
      ["Read at", utc(data.taken_at)],
    ]),
    serverKeyNotice(data.server_key),
    data.domains.length === 0 ? el("p", { class: "bad" }, "The server lists no key domain for this auditor.") : domains);
}

function renderDevices(body, data) {
  const check = data.check;
  const findings = [];
  if (check.registrations_in_log !== check.registry_keys) {
    findings.push(`The log records ${check.registrations_in_log} key registrations; the registry lists ${check.registry_keys} keys.`);
  }
  if (check.revocations_in_log !== check.registry_revoked) {
    findings.push(`The log records ${check.revocations_in_log} revocations; the registry lists ${check.registry_revoked} revoked keys.`);
  }
  for (const id of check.unknown_actors) findings.push(`Key ${id} acts in the log but the registry does not list it.`);
  for (const row of data.devices) {
    if (row.log.outside_validity.length) {
      findings.push(`Key ${row.label} (${shortId(row.key_id)}) acted outside its registered period: audit entries ${row.log.outside_validity.join(", ")}.`);
    }
  }
  const verdict = check.agrees
    ? el("div", { class: "ok-panel" }, `The registry agrees with the verified log: ${check.registry_keys} keys issued, ${check.registry_revoked} revoked.`)
    : el("div", { class: "error-panel", role: "alert" }, "The registry and the verified log disagree", findings.map((f) => el("p", {}, f)));
  const rows = data.devices.map((d) => el("tr", { class: d.revoked_at ? "revoked" : d.log.outside_validity.length ? "finding" : null },
    el("td", {}, d.label),
    el("td", {}, d.role),
    el("td", { class: "fingerprint" }, d.key_id),
    el("td", {}, utc(d.registered_at)),
    el("td", {}, d.revoked_at ? el("span", { class: "bad" }, utc(d.revoked_at)) : "not revoked"),
    el("td", {}, d.holds_share ? "yes" : "no (deleted)"),
    el("td", { class: "num" }, d.log.entries),
    el("td", {}, d.log.first ? `${utc(d.log.first)} to ${utc(d.log.last)}` : "—")));
  fill(body, 
    verdict,
    data.partial ? el("p", { class: "bad" }, `The log breaks after entry ${data.verified_through}: the log columns count entries up to it only.`) : null,
    table(["Label", "Role", "Key id", "Share issued", "Revoked", "Server holds its share half", { text: "Log entries", num: true }, "Active in the log"], rows,
      `${data.devices.length} keys. Devices and auditors each hold their own share; revoking a key deletes the server's half at once.`));
}

function renderLog(body, data) {
  const verdict = data.valid
    ? el("div", { class: "ok-panel" },
      `The audit log verifies: ${data.entries} entries, up to entry ${data.last_seq}; it extends the checkpoint at entry ${data.checkpoint.seq}.`)
    : el("div", { class: "error-panel", role: "alert" }, "The audit log does NOT verify",
      el("p", {}, data.error),
      data.bad_entry ? el("p", {}, el("strong", {}, `First bad entry: ${data.bad_entry}. `),
        `Tables and charts on this page use the entries before it only (up to entry ${data.verified_through}).`) : null);
  fill(body, 
    verdict,
    serverKeyNotice(data.server_key),
    facts([
      ["Entries", data.entries],
      ["Of this domain (whole)", data.own_domain_entries],
      ["Of other domains (redacted)", data.redacted],
      ["Checkpoint", `entry ${data.checkpoint.seq}, signed ${utc(data.checkpoint.time)}`],
      ["Checked under the audit key", el("span", { class: "fingerprint" }, data.server_key.used)],
      ["Read at", utc(data.taken_at)],
    ]));
}

function findingRows(findings) {
  return findings.map((f) => el("tr", { class: "finding" },
    el("td", { class: "num" }, f.seq),
    el("td", {}, deviceName(f.device)),
    el("td", {}, f.action),
    el("td", {}, f.reported || "nothing"),
    el("td", {}, f.escrowed)));
}

function renderEscrow(body, data) {
  const headers = [{ text: "Audit entry", num: true }, "Device", "Action", "Reported", "Escrowed result"];
  const verdict = data.clean
    ? el("div", { class: "ok-panel" },
      `Every escrowed result in entries ${data.from} to ${data.to} was reported and matches: ${data.checked} checked, ${data.matching} matching.`)
    : el("div", { class: "error-panel", role: "alert" }, "Reported decisions do not all match the escrow",
      el("p", {}, `${data.mismatched.length} mismatched, ${data.unreported.length} unreported, ${data.missing_escrow.length} missing from the escrow.`));
  fill(body, 
    verdict,
    table([{ text: "Checked", num: true }, { text: "Matching", num: true }, { text: "Mismatched", num: true },
      { text: "Unreported", num: true }, { text: "Missing escrow", num: true }],
    [el("tr", {},
      el("td", { class: "num" }, data.checked), el("td", { class: "num" }, data.matching),
      el("td", { class: data.mismatched.length ? "num bad" : "num" }, data.mismatched.length),
      el("td", { class: data.unreported.length ? "num bad" : "num" }, data.unreported.length),
      el("td", { class: data.missing_escrow.length ? "num bad" : "num" }, data.missing_escrow.length))],
    `Audit entries ${data.from} to ${data.to}.`),
    data.mismatched.length ? el("h3", {}, "Mismatched: the device reported something else than it read") : null,
    data.mismatched.length ? table(headers, findingRows(data.mismatched)) : null,
    data.unreported.length ? el("h3", {}, "Unreported: the device never reported its decision") : null,
    data.unreported.length ? table(headers, findingRows(data.unreported)) : null,
    data.missing_escrow.length ? el("p", { class: "bad" },
      `The log records results the server did not escrow, at audit entries ${data.missing_escrow.join(", ")}.`) : null,
    el("p", { class: "note" }, `The server recorded this check as audit entr${data.request_entries.length === 1 ? "y" : "ies"} ${data.request_entries.join(", ")}.`));
}

const METRICS = [
  ["verifications", "Verifications per day", "verifications"],
  ["identifications", "Identifications per day", "identifications"],
  ["refusals", "Refusals per day (quota hits apart)", "refusals"],
  ["quota_hits", "Quota hits per day", "quota hits"],
];

function chart(id, metric, title, word, data) {
  const values = new Map();
  let max = 0;
  let total = 0;
  for (const row of data.rows) {
    values.set(`${row.day}|${row.device}`, row[metric]);
    max = Math.max(max, row[metric]);
    total += row[metric];
  }
  const devices = data.devices;
  const left = 40, right = 12, top = 12, bottom = 36, plotHeight = 150;
  // Bars as wide as fits about 1000 pixels (3 to 18 each); past that the figure scrolls.
  const fit = Math.floor((1000 - left - right) / data.days.length);
  const bar = Math.max(3, Math.min(18, Math.floor((fit - 8) / devices.length)));
  const group = devices.length * bar + 8;
  const width = Math.max(420, left + right + data.days.length * group);
  const height = top + plotHeight + bottom;
  const step = Math.max(1, Math.ceil(max / 4));
  const ceiling = Math.max(step, Math.ceil(max / step) * step);
  const y = (v) => top + plotHeight - (v / ceiling) * plotHeight;
  const titleId = `${id}-title`, descId = `${id}-desc`;
  const first = data.days[0], last = data.days[data.days.length - 1];
  const root = svg("svg", { class: "chart", role: "img", width, height, viewBox: `0 0 ${width} ${height}`, "aria-labelledby": `${titleId} ${descId}` },
    svg("title", { id: titleId }, title),
    svg("desc", { id: descId }, `${total} ${word} in all, from ${first} to ${last} (UTC), for ${devices.length} device${devices.length === 1 ? "" : "s"}; the table below gives every number.`));
  for (let v = 0; v <= ceiling; v += step) {
    root.append(svg("line", { class: v === 0 ? "axis" : "grid", x1: left, x2: width - right, y1: y(v), y2: y(v) }),
      svg("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end" }, v));
  }
  const labelEvery = Math.max(1, Math.ceil(data.days.length / Math.max(1, Math.floor((width - left - right) / 46))));
  data.days.forEach((day, i) => {
    const x0 = left + i * group + 4;
    devices.forEach((device, j) => {
      const v = values.get(`${day}|${device}`) || 0;
      if (v > 0) {
        root.append(svg("rect", { class: "bar", x: x0 + j * bar, y: y(v), width: bar - 2, height: y(0) - y(v), fill: COLOURS[j % COLOURS.length] },
          svg("title", {}, `${day}, ${deviceName(device)}: ${v} ${word}`)));
      }
    });
    if (i % labelEvery === 0) {
      root.append(svg("text", { x: x0 + (devices.length * bar) / 2, y: top + plotHeight + 16, "text-anchor": "middle" }, day.slice(5)));
    }
  });
  root.append(svg("text", { x: left, y: height - 4 }, `UTC days, ${first.slice(0, 4)}${first.slice(0, 4) === last.slice(0, 4) ? "" : "–" + last.slice(0, 4)}`));
  // Focusable, so a chart wider than the page scrolls with the keyboard.
  return el("figure", { id, tabindex: 0, "aria-label": title }, el("figcaption", {}, title), root);
}

function renderActivity(body, data) {
  if (!data.rows.length) {
    fill(body, el("p", {}, "No verification, identification, refusal or quota hit by a device in the verified log yet."));
    return;
  }
  const legend = el("ul", { class: "legend", "aria-label": "Devices" }, data.devices.map((device, j) =>
    el("li", {}, svg("svg", { width: 14, height: 14, "aria-hidden": "true" }, svg("rect", { width: 14, height: 14, fill: COLOURS[j % COLOURS.length] })),
      deviceName(device))));
  const rows = data.rows.map((r) => el("tr", {},
    el("td", {}, r.day), el("td", {}, deviceName(r.device)),
    el("td", { class: "num" }, r.verifications), el("td", { class: "num" }, r.identifications),
    el("td", { class: "num" }, r.refusals), el("td", { class: "num" }, r.quota_hits)));
  fill(body, 
    data.partial ? el("p", { class: "bad" }, `The log breaks after entry ${data.verified_through}: these counts stop there.`) : null,
    legend,
    el("div", { class: "charts" }, METRICS.map(([metric, title, word]) => chart(`chart-${metric}`, metric, title, word, data))),
    el("details", {}, el("summary", {}, "The numbers, as a table"),
      table(["Day (UTC)", "Device", { text: "Verifications", num: true }, { text: "Identifications", num: true },
        { text: "Refusals", num: true }, { text: "Quota hits", num: true }], rows)),
    data.undated ? el("p", { class: "warn" }, `${data.undated} entries have a time that could not be read and are not drawn.`) : null);
}

const RENDER = { summary: renderSummary, devices: renderDevices, log: renderLog, escrow: renderEscrow, activity: renderActivity };

async function load(refresh) {
  const button = document.getElementById("refresh");
  const status = document.getElementById("status");
  const global = document.getElementById("global-error");
  button.disabled = true;
  status.className = "status";
  status.textContent = refresh ? "Reading the server again…" : "Reading the server…";
  for (const name of PANELS) document.getElementById(`panel-${name}`).setAttribute("aria-busy", "true");
  try {
    if (refresh) await api("/api/refresh", "POST");
    const answers = await Promise.allSettled(PANELS.map((name) => api(`/api/${name}`)));
    const devices = answers[PANELS.indexOf("devices")];
    labels = {};
    if (devices.status === "fulfilled") for (const d of devices.value.devices) labels[d.key_id] = d.label;
    const failures = answers.filter((a) => a.status === "rejected").map((a) => a.reason);
    PANELS.forEach((name, i) => {
      const section = document.getElementById(`panel-${name}`);
      const body = section.querySelector(".body");
      const answer = answers[i];
      try {
        if (answer.status === "fulfilled") RENDER[name](body, answer.value);
        else fill(body, errorPanel(answer.reason));
      } catch (e) {
        fill(body, errorPanel({ code: "error", message: `The page could not draw this panel: ${e}` }));
      }
      section.setAttribute("aria-busy", "false");
    });
    const everyPanel = failures.length === PANELS.length;
    if (everyPanel) {
      fill(global, errorPanel(failures[0]).firstChild, el("p", {}, failures[0].message || ""));
      global.hidden = false;
    } else {
      global.hidden = true;
    }
    const log = answers[PANELS.indexOf("log")];
    const invalid = log.status === "fulfilled" && !log.value.valid;
    const taken = answers.find((a) => a.status === "fulfilled");
    if (everyPanel) {
      status.className = "status bad";
      status.textContent = `${ERROR_TITLES[failures[0].code] || "Could not read the server"}.`;
    } else if (invalid) {
      status.className = "status bad";
      status.textContent = `The audit log does NOT verify (entry ${log.value.bad_entry || "?"}). Read at ${utc(taken.value.taken_at)}.`;
    } else {
      status.textContent = `Read at ${utc(taken.value.taken_at)}${failures.length ? `; ${failures.length} panel(s) failed` : ""}.`;
      if (failures.length) status.className = "status bad";
    }
  } catch (error) {
    fill(global, errorPanel(error).firstChild, el("p", {}, error.message || ""));
    global.hidden = false;
    status.className = "status bad";
    status.textContent = ERROR_TITLES[error.code] || "Could not refresh.";
    for (const name of PANELS) document.getElementById(`panel-${name}`).setAttribute("aria-busy", "false");
  } finally {
    button.disabled = false;
  }
}

document.getElementById("refresh").addEventListener("click", () => load(true));
document.addEventListener("keydown", (event) => {
  if ((event.key === "r" || event.key === "R") && !event.ctrlKey && !event.metaKey && !event.altKey) {
    const target = event.target;
    if (target && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName))) return;
    event.preventDefault();
    if (!document.getElementById("refresh").disabled) load(true);
  }
});
load(false);
