// The counter app's page: camera, live guidance, liveness prompt, result. Everything biometric
// is done by the local service this page came from; the page only moves camera frames to it
// and shows its answers. Nothing is stored in the browser except the chosen language.
"use strict";

const TOKEN = document.querySelector('meta[name="tabir-token"]').content;
const MAX_FPS = 15;

const TEXT = {
  id: {
    title: "— Loket verifikasi bansos",
    choose: "Pilih layanan",
    enrol: "Daftar", enrol_hint: "Rekam wajah penerima baru",
    verify: "Verifikasi", verify_hint: "Cocokkan wajah dengan NIK",
    identify: "Identifikasi", identify_hint: "Cari wajah di semua penerima",
    nik_label: "NIK penerima (16 angka)",
    nik_title_enrol: "Daftar: masukkan NIK", nik_title_verify: "Verifikasi: masukkan NIK",
    nik_invalid: "NIK tidak valid: 16 angka, dengan kode wilayah dan tanggal lahir yang benar.",
    start_camera: "mulai kamera", back: "kembali", cancel: "batal",
    next_recipient: "penerima berikutnya", retake: "ulangi",
    online: "Server terhubung", offline: "Server tidak terjangkau", checking: "Memeriksa server…",
    refused: "Perangkat ditolak server", fixed_prompt: "Arah menoleh tetap: hanya untuk uji/pelatihan",
    queue_count: (n) => `Antrean: ${n}`,
    queue_title: "Pendaftaran yang menunggu server",
    queue_explain: "Pendaftaran yang dibuat saat server tidak terjangkau disimpan terkunci di komputer ini dan dikirim otomatis saat server kembali.",
    queue_nik: "NIK", queue_time: "Waktu", queue_state: "Status", queue_send: "Kirim sekarang",
    state_queued: "menunggu", state_refused: "ditolak server", state_damaged: "rusak", remove: "hapus", retry: "kirim ulang",
    keys_help: "Tombol: 1 Daftar · 2 Verifikasi · 3 Identifikasi · L bahasa · Q antrean · Esc kembali",
    look_straight: "Minta penerima melihat lurus ke kamera",
    hold_still: "Tahan… wajah terbaca",
    turn_left: "Minta penerima menoleh pelan ke KIRI (kiri penerima)", turn_right: "Minta penerima menoleh pelan ke KANAN (kanan penerima)",
    turn_short_left: "menoleh ke kiri", turn_short_right: "menoleh ke kanan",
    wrong_way: "Arah salah — menoleh ke sisi lain",
    deciding: "Memproses… wajah dienkripsi dan dicocokkan",
    camera_unavailable: "Kamera tidak tersedia: izinkan akses kamera, lalu muat ulang halaman.",
    gate_no_face: "Wajah tidak terlihat: minta penerima menghadap kamera",
    gate_multiple_faces: "Lebih dari satu wajah: hanya penerima yang boleh terlihat",
    gate_face_too_small: "Wajah terlalu kecil: minta penerima mendekat",
    gate_low_detection_score: "Wajah kurang jelas: periksa fokus dan cahaya",
    gate_head_turned: "Kepala menoleh: minta penerima melihat lurus",
    gate_too_dark: "Terlalu gelap: tambah cahaya",
    gate_overexposed: "Terlalu terang: kurangi cahaya langsung",
    gate_too_blurry: "Buram: minta penerima diam sejenak",
    verdict_match: "COCOK", verdict_no_match: "TIDAK COCOK", verdict_retake: "ULANGI",
    verdict_enrolled: "TERDAFTAR", verdict_replaced: "TERDAFTAR ULANG", verdict_queued: "DIANTREKAN",
    verdict_error: "GAGAL",
    next_match: "Identitas terverifikasi. Lanjutkan penyaluran bantuan.",
    next_no_match: "Wajah tidak cocok dengan NIK ini. Jangan salurkan; periksa dokumen dan hubungi supervisor.",
    next_identify_match: "Wajah ini sudah terdaftar di wilayah ini (kemungkinan pendaftaran ganda). Hubungi supervisor.",
    next_identify_no_match: "Wajah ini belum terdaftar di wilayah ini.",
    next_enrolled: "Penerima terdaftar. Template wajah terenkripsi tersimpan di server.",
    next_replaced: "Pendaftaran lama NIK ini diganti dengan yang baru.",
    next_queued: "Server tidak terjangkau. Pendaftaran disimpan terkunci di komputer ini dan dikirim otomatis saat server kembali.",
    reason_no_turn: "Kepala tidak menoleh sesuai arahan tepat waktu (foto diam tidak lolos). Ulangi dan minta penerima menoleh jelas.",
    reason_flat_picture: "Wajah bergerak seperti gambar datar (foto cetak atau layar). Penerima harus hadir sendiri.",
    reason_face_lost: "Wajah hilang, melompat, atau ada wajah lain saat menoleh. Ulangi; hanya penerima di depan kamera.",
    reason_wrong_way: "Penerima menoleh ke arah yang salah. Ulangi dan ikuti arah yang diminta.",
    reason_no_gradual_turn: "Wajah berpindah ke posisi menoleh tanpa gerakan menoleh (kemungkinan foto ditukar). Ulangi; penerima harus menoleh sendiri.",
    reason_different_face: "Wajah yang menoleh berbeda dengan wajah yang menghadap depan. Ulangi.",
    error_network: "Server tidak terjangkau. Verifikasi memerlukan server; coba lagi nanti.",
    error_unknown_subject: "NIK ini belum terdaftar. Daftarkan dulu.",
    error_generic: "Terjadi kesalahan. Catat alasan di bawah untuk dukungan teknis.",
    d_subject: "NIK", d_audit: "Catatan audit", d_request: "ID permintaan", d_queue: "ID antrean",
    d_timings: "Waktu (ms)", d_browser: "Sampai hasil (peramban)", d_reason: "Alasan",
    t_face: "wajah", t_encrypt: "enkripsi", t_server: "server", t_decrypt: "dekripsi", t_total: "total",
    fps: (f) => `${f.toFixed(1)} fps`,
  },
  en: {
    title: "— Social assistance counter",
    choose: "Choose a service",
    enrol: "Enrol", enrol_hint: "Record a new recipient's face",
    verify: "Verify", verify_hint: "Match a face with a NIK",
    identify: "Identify", identify_hint: "Search a face among all recipients",
    nik_label: "Recipient's NIK (16 digits)",
    nik_title_enrol: "Enrol: enter the NIK", nik_title_verify: "Verify: enter the NIK",
    nik_invalid: "Not a valid NIK: 16 digits, with a valid region code and birth date.",
    start_camera: "start the camera", back: "back", cancel: "cancel",
    next_recipient: "next recipient", retake: "retake",
    online: "Server connected", offline: "Server unreachable", checking: "Checking the server…",
    refused: "Device refused by the server", fixed_prompt: "Fixed turn direction: tests and training only",
    queue_count: (n) => `Queue: ${n}`,
    queue_title: "Enrolments waiting for the server",
    queue_explain: "Enrolments made while the server is unreachable are kept sealed on this computer and sent automatically when it returns.",
    queue_nik: "NIK", queue_time: "Time", queue_state: "State", queue_send: "Send now",
    state_queued: "waiting", state_refused: "refused by the server", state_damaged: "damaged", remove: "remove", retry: "send again",
    keys_help: "Keys: 1 Enrol · 2 Verify · 3 Identify · L language · Q queue · Esc back",
    look_straight: "Ask the recipient to look straight at the camera",
    hold_still: "Hold still… face found",
    turn_left: "Ask the recipient to turn their head slowly LEFT (their own left)", turn_right: "Ask the recipient to turn their head slowly RIGHT (their own right)",
    turn_short_left: "turn left", turn_short_right: "turn right",
    wrong_way: "Wrong way — turn to the other side",
    deciding: "Working… the face is encrypted and matched",
    camera_unavailable: "No camera: allow camera access, then reload the page.",
    gate_no_face: "No face: ask the recipient to face the camera",
    gate_multiple_faces: "More than one face: only the recipient may be in view",
    gate_face_too_small: "Face too small: ask the recipient to come closer",
    gate_low_detection_score: "Face unclear: check focus and lighting",
    gate_head_turned: "Head turned: ask the recipient to look straight",
    gate_too_dark: "Too dark: add light",
    gate_overexposed: "Too bright: reduce direct light",
    gate_too_blurry: "Blurry: ask the recipient to keep still",
    verdict_match: "MATCH", verdict_no_match: "NO MATCH", verdict_retake: "RETAKE",
    verdict_enrolled: "ENROLLED", verdict_replaced: "RE-ENROLLED", verdict_queued: "QUEUED",
    verdict_error: "FAILED",
    next_match: "Identity verified. Continue with the disbursement.",
    next_no_match: "The face does not match this NIK. Do not disburse; check the documents and call a supervisor.",
    next_identify_match: "This face is already enrolled in this domain (a possible double enrolment). Call a supervisor.",
    next_identify_no_match: "This face is not enrolled in this domain.",
    next_enrolled: "Recipient enrolled. The encrypted face template is on the server.",
    next_replaced: "This NIK's earlier enrolment was replaced with the new one.",
    next_queued: "The server is unreachable. The enrolment is kept sealed on this computer and sent automatically when it returns.",
    reason_no_turn: "The head did not turn as asked in time (a still photo fails here). Retake and ask for a clear turn.",
    reason_flat_picture: "The face moved like a flat picture (a print or a screen). The recipient must be present in person.",
    reason_face_lost: "The face left the camera, jumped, or another face appeared during the turn. Retake with only the recipient in view.",
    reason_wrong_way: "The recipient turned the wrong way. Retake and follow the direction asked.",
    reason_no_gradual_turn: "The face reached the turned pose without turning (a photo swapped in?). Retake; the recipient must turn their own head.",
    reason_different_face: "The face that turned is not the face that looked straight. Retake.",
    error_network: "The server is unreachable. Verification needs the server; try again later.",
    error_unknown_subject: "This NIK is not enrolled. Enrol it first.",
    error_generic: "Something failed. Note the reason below for support.",
    d_subject: "NIK", d_audit: "Audit entry", d_request: "Request id", d_queue: "Queue id",
    d_timings: "Time (ms)", d_browser: "To result (browser)", d_reason: "Reason",
    t_face: "face", t_encrypt: "encrypt", t_server: "server", t_decrypt: "decrypt", t_total: "total",
    fps: (f) => `${f.toFixed(1)} fps`,
  },
};

const $ = (id) => document.getElementById(id);
const state = {
  language: localStorage.getItem("tabir-language") || document.querySelector('meta[name="tabir-language"]').content || "id",
  screen: "home",
  action: null,
  nik: "",
  capture: null,       // {id, prompt}
  pumping: false,
  lastFeedback: null,
  lastResult: null,
  status: null,
  frameTimes: [],
};
// What tests and support read: live figures, nothing personal.
window.tabir = { fps: 0, framesSent: 0, yawSeen: [0, 0], prompt: null, decideMs: null, captureMs: null, phase: null, outcome: null, reason: null };

function t(key, ...args) {
  const value = (TEXT[state.language] || TEXT.id)[key];
  if (typeof value === "function") return value(...args);
  return value === undefined ? key : value;
}

function applyLanguage() {
  document.documentElement.lang = state.language;
  document.querySelectorAll("[data-t]").forEach((el) => { el.textContent = t(el.dataset.t); });
  $("language").textContent = state.language === "id" ? "English" : "Bahasa Indonesia";
  renderStatus();
  if (state.screen === "nik") $("nik-title").textContent = t(`nik_title_${state.action}`);
  if (state.lastFeedback && state.screen === "capture") renderFeedback(state.lastFeedback);
  if (state.lastResult && state.screen === "result") renderResult(state.lastResult);
}

function show(screen) {
  state.screen = screen;
  document.body.dataset.screen = screen;
  for (const name of ["home", "nik", "capture", "result"]) $(`screen-${name}`).hidden = name !== screen;
  const camera = screen === "nik" || screen === "capture";
  if (camera && !state.pumping) pump();
  if (screen === "home") { state.nik = ""; $("nik").value = ""; document.querySelector(".action").focus(); }
  if (screen === "nik") { $("nik-title").textContent = t(`nik_title_${state.action}`); $("nik-error").textContent = ""; $("nik").focus(); }
}

async function api(method, path, body, type) {
  const headers = { "x-tabir-counter": TOKEN };
  if (type) headers["content-type"] = type;
  const response = await fetch(path, { method, headers, body });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = { error: { code: "bad_answer", message: text } }; }
  if (!response.ok) {
    const error = new Error((data && data.error && data.error.message) || response.statusText);
    error.code = (data && data.error && data.error.code) || "http_" + response.status;
    error.status = response.status;
    throw error;
  }
  return data;
}

// ---- camera and frames -------------------------------------------------------------------

let stream = null;
async function startCamera() {
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
    $("video").srcObject = stream;
    await $("video").play().catch(() => {});
    $("camera-state").textContent = "";
  } catch (e) {
    $("camera-state").textContent = t("camera_unavailable");
  }
}

function grabFrame() {
  const video = $("video");
  if (!video.videoWidth) return Promise.resolve(null);
  const canvas = $("grab");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.85));
}

// One frame in flight at a time, at most MAX_FPS: the service's answer paces the camera.
async function pump() {
  state.pumping = true;
  while (state.screen === "nik" || state.screen === "capture") {
    const started = performance.now();
    const frame = await grabFrame();
    if (frame) {
      const capture = state.capture;
      const path = capture ? `/api/captures/${capture.id}/frames` : "/api/frames";
      try {
        const feedback = await api("POST", path, frame, "image/jpeg");
        window.tabir.framesSent++;
        window.tabir.roundTripMs = performance.now() - started;
        window.tabir.processMs = feedback.process_ms;
        countFrame();
        if (state.capture === capture) {
          state.lastFeedback = feedback;
          renderFeedback(feedback);
          if (capture) await onCapturePhase(capture, feedback.phase);
        }
      } catch (e) {
        if (e.code === "unknown_capture" && state.capture === capture) { state.capture = null; }
      }
    }
    const wait = 1000 / MAX_FPS - (performance.now() - started);
    await new Promise((r) => setTimeout(r, Math.max(wait, frame ? 0 : 100)));
  }
  state.pumping = false;
}

function countFrame() {
  const now = performance.now();
  state.frameTimes.push(now);
  while (state.frameTimes.length && now - state.frameTimes[0] > 3000) state.frameTimes.shift();
  if (state.frameTimes.length > 1) {
    const span = (state.frameTimes[state.frameTimes.length - 1] - state.frameTimes[0]) / 1000;
    window.tabir.fps = (state.frameTimes.length - 1) / span;
    $("fps").textContent = t("fps", window.tabir.fps);
  }
}

function renderFeedback(feedback) {
  const overlay = $("overlay");
  overlay.width = feedback.width;
  overlay.height = feedback.height;
  const g = overlay.getContext("2d");
  g.clearRect(0, 0, overlay.width, overlay.height);
  const phase = feedback.phase;
  window.tabir.phase = phase.phase;
  // The yaw range seen in this capture (support: "did the head turn at all?").
  if (state.capture && typeof feedback.yaw === "number") {
    const seen = window.tabir.yawSeen;
    window.tabir.yawSeen = [Math.min(seen[0], feedback.yaw), Math.max(seen[1], feedback.yaw)];
  }
  if (feedback.box) {
    const [x, y, w, h] = feedback.box;
    g.lineWidth = 4;
    g.strokeStyle = feedback.gate ? "#f5a524" : "#22c55e";
    g.strokeRect(x, y, w, h);
  }
  const instruction = $("instruction");
  instruction.className = "instruction";
  const prompt = $("prompt");
  prompt.hidden = true;
  let fill = 0;
  if (!state.capture || phase.phase === "frontal") {
    if (feedback.gate) { instruction.textContent = t(`gate_${feedback.gate}`); instruction.classList.add("bad"); }
    else { instruction.textContent = state.capture ? t("hold_still") : t("look_straight"); instruction.classList.add("good"); }
  } else if (phase.phase === "turn") {
    instruction.textContent = feedback.wrong_way ? t("wrong_way") : t(`turn_${phase.prompt}`);
    if (feedback.wrong_way) instruction.classList.add("bad");
    prompt.hidden = false;
    // The preview is a mirror: the recipient's left is the screen's left.
    $("prompt-arrow").textContent = phase.prompt === "left" ? "⬅" : "➡";
    $("prompt-text").textContent = t(`turn_short_${phase.prompt}`);
    fill = feedback.turn_frames / Math.max(1, feedback.turn_frames_needed);
  } else if (phase.phase === "passed") {
    instruction.textContent = t("deciding");
    instruction.classList.add("good");
    fill = 1;
  }
  $("meter-fill").style.width = `${Math.round(fill * 100)}%`;
}

async function onCapturePhase(capture, phase) {
  if (phase.phase === "passed" || phase.phase === "failed") {
    state.capture = null;
    await decide(capture);
  }
}

// ---- flows -------------------------------------------------------------------------------

function choose(action) {
  state.action = action;
  state.lastResult = null;
  if (action === "identify") startCapture();
  else show("nik");
}

async function startCapture() {
  try {
    const started = await api("POST", "/api/captures", JSON.stringify({ action: state.action, nik: state.nik || null }), "application/json");
    state.capture = started;
    state.captureStarted = performance.now();
    window.tabir.yawSeen = [0, 0];
    window.tabir.prompt = started.prompt;
    state.lastFeedback = null;
    $("instruction").textContent = t("look_straight");
    show("capture");
  } catch (e) {
    if (e.code === "invalid_nik") { show("nik"); $("nik-error").textContent = t("nik_invalid"); }
    else showResult({ outcome: "error", reason: e.code, message: e.message });
  }
}

async function decide(capture) {
  const started = performance.now();
  state.deciding = true;
  try {
    const result = await api("POST", `/api/captures/${capture.id}/decide`, null, null);
    result.decide_ms = performance.now() - started;
    result.capture_ms = performance.now() - state.captureStarted;
    showResult(result);
  } catch (e) {
    showResult({ outcome: "error", reason: e.code, message: e.message, decide_ms: performance.now() - started });
  } finally {
    state.deciding = false;
  }
}

function showResult(result) {
  state.lastResult = result;
  window.tabir.outcome = result.outcome;
  window.tabir.reason = result.reason || null;
  window.tabir.decideMs = result.decide_ms || null;
  window.tabir.captureMs = result.capture_ms || null;
  show("result");
  renderResult(result);
  refreshStatus();
}

function renderResult(result) {
  const verdict = $("verdict");
  verdict.className = `verdict ${result.outcome}`;
  verdict.textContent = t(`verdict_${result.outcome}`);
  document.body.dataset.outcome = result.outcome;
  let next;
  if (result.outcome === "retake") next = t(`reason_${result.reason}`);
  else if (result.outcome === "error") next = result.reason === "network" || result.reason === "overloaded" ? t("error_network") : result.reason === "unknown_subject" ? t("error_unknown_subject") : t("error_generic");
  else if (state.action === "identify") next = t(`next_identify_${result.outcome}`);
  else next = t(`next_${result.outcome}`);
  $("next").textContent = next;
  const details = $("details");
  details.textContent = "";
  const add = (label, value) => {
    if (value === undefined || value === null || value === "") return;
    const dt = document.createElement("dt"); dt.textContent = t(label);
    const dd = document.createElement("dd"); dd.textContent = value;
    details.append(dt, dd);
  };
  add("d_subject", result.subject);
  add("d_audit", result.audit_seq && `#${result.audit_seq}`);
  add("d_request", result.request_id);
  add("d_queue", result.queue_id);
  if (result.outcome === "error") add("d_reason", `${result.reason}: ${result.message}`);
  if (result.timings) {
    const tm = result.timings;
    const r = (v) => Math.round(v);
    add("d_timings", `${t("t_face")} ${r(tm.face_ms)} · ${t("t_encrypt")} ${r(tm.encrypt_ms)} · ${t("t_server")} ${r(tm.server_ms)} · ${t("t_decrypt")} ${r(tm.decrypt_ms)} · ${t("t_total")} ${r(tm.total_ms)}`);
  }
  if (result.decide_ms) add("d_browser", `${Math.round(result.decide_ms)} ms`);
}

// ---- server link and queue ---------------------------------------------------------------

async function refreshStatus() {
  try { state.status = await api("GET", "/api/status"); } catch (e) { state.status = null; }
  renderStatus();
}

function renderStatus() {
  const link = $("link");
  const s = state.status;
  link.className = "pill";
  if (!s || s.online === null) link.textContent = t("checking");
  else if (s.online) { link.textContent = t("online"); link.classList.add("online"); }
  else { link.textContent = t(s.refused ? "refused" : "offline"); link.classList.add("offline"); link.title = s.problem || ""; }
  const banner = $("fixed-prompt");
  banner.hidden = !(s && s.fixed_prompt);
  banner.textContent = t("fixed_prompt");
  document.body.dataset.online = s && s.online !== null ? String(s.online) : "unknown";
  const queue = s ? s.queue : [];
  const waiting = queue.filter((e) => e.state === "queued").length;
  $("queue-button").textContent = t("queue_count", waiting);
  document.body.dataset.queued = String(waiting);
  const rows = $("queue-rows");
  rows.textContent = "";
  for (const entry of queue) {
    const tr = document.createElement("tr");
    const when = entry.queued_at ? new Date(entry.queued_at * 1000).toLocaleString(state.language === "id" ? "id-ID" : "en-GB") : "";
    for (const text of [entry.subject, when, t(`state_${entry.state}`) + (entry.reason ? `: ${entry.reason}` : "")]) {
      const td = document.createElement("td"); td.textContent = text; tr.append(td);
    }
    const td = document.createElement("td");
    if (entry.state === "refused") {
      const retry = document.createElement("button");
      retry.type = "button"; retry.textContent = t("retry");
      retry.addEventListener("click", async () => { await api("POST", `/api/queue/${entry.id}/retry`).catch(() => {}); refreshStatus(); });
      td.append(retry, " ");
    }
    if (entry.state !== "queued") {
      const button = document.createElement("button");
      button.type = "button"; button.textContent = t("remove");
      button.addEventListener("click", async () => { await api("DELETE", `/api/queue/${entry.id}`).catch(() => {}); refreshStatus(); });
      td.append(button);
    }
    tr.append(td);
    rows.append(tr);
  }
}

// ---- keyboard ----------------------------------------------------------------------------

document.addEventListener("keydown", (event) => {
  const typing = event.target && event.target.id === "nik";
  // While a decision is on its way nothing moves: its result belongs to this recipient.
  if (state.deciding) { event.preventDefault(); return; }
  if (event.key === "Escape") {
    event.preventDefault();
    if (state.capture) api("DELETE", `/api/captures/${state.capture.id}`).catch(() => {});
    state.capture = null;
    show("home");
    return;
  }
  if (typing) return;
  const key = event.key.toLowerCase();
  if (key === "l") { state.language = state.language === "id" ? "en" : "id"; localStorage.setItem("tabir-language", state.language); applyLanguage(); return; }
  if (key === "q") { $("queue-panel").hidden = !$("queue-panel").hidden; return; }
  if (state.screen === "home" && ["1", "2", "3"].includes(key)) { event.preventDefault(); choose(["enrol", "verify", "identify"][Number(key) - 1]); return; }
  if (state.screen === "result") {
    if (key === "enter") { event.preventDefault(); show("home"); }
    else if (key === "r") { event.preventDefault(); startCapture(); }
  }
});

$("nik-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const nik = $("nik").value.trim();
  if (!/^[0-9]{16}$/.test(nik)) { $("nik-error").textContent = t("nik_invalid"); return; }
  state.nik = nik;
  startCapture();
});
$("nik").addEventListener("input", () => { $("nik").value = $("nik").value.replace(/[^0-9]/g, "").slice(0, 16); });
document.querySelectorAll(".action").forEach((b) => b.addEventListener("click", () => choose(b.dataset.action)));
$("language").addEventListener("click", () => { state.language = state.language === "id" ? "en" : "id"; localStorage.setItem("tabir-language", state.language); applyLanguage(); });
$("queue-button").addEventListener("click", () => { $("queue-panel").hidden = !$("queue-panel").hidden; });
$("queue-send").addEventListener("click", async () => { await api("POST", "/api/queue/send").catch(() => {}); refreshStatus(); });

applyLanguage();
show("home");
startCamera();
refreshStatus();
setInterval(refreshStatus, 2000);
