/* Huxin citizen pages: what every page shares (issue 19).
 *
 * - language: every text is Chinese in the HTML with its English in data-en; the
 *   switch swaps them in place and remembers the choice (localStorage "huxin.lang");
 *   texts made by script use t(zh, en) and are redrawn on a switch;
 * - the JSON API: api(method, path, body) sends the session cookie, turns the one
 *   error body {code, reason, field, message} into an ApiError, and sends a
 *   signed-out citizen to the sign-in page;
 * - el(): every element made by script is built node by node (text, never HTML),
 *   so nothing the API returns can inject markup;
 * - confirmDialog(): the one confirmation of an action that cannot be undone.
 * No ID number is ever shown: the citizen is named by the API's pseudonym.
 */
"use strict";

(function () {
  const LANG_KEY = "huxin.lang";

  //: The citizen JSON API of node/http (one place to read when a path changes).
  const API = {
    session: "/auth/session",
    signout: "/auth/sign-out",
    signin: "/signin",
    score: "/api/v1/me/score",
    incentives: "/api/v1/me/incentives",
    catalogue: "/api/v1/catalogue",
    consents: "/api/v1/me/consents",
    withdraw: "/api/v1/me/consents/withdraw",
    queryLog: "/api/v1/me/query-log",
    objections: "/api/v1/me/objections",
    repairs: "/api/v1/me/repair-applications",
    supplements: "/api/v1/me/supplements",
    notifications: "/api/v1/me/notifications",
    optOut: "/api/v1/me/opt-out",
    optIn: "/api/v1/me/opt-in",
    deregister: "/api/v1/me/deregister",
    register: "/api/v1/me/register",
  };
  const CSRF_COOKIE = "huxin_csrf";
  const CSRF_HEADER = "X-CSRF-Token";

  // ------------------------------------------------------------------ language
  function lang() {
    const q = new URLSearchParams(location.search).get("lang");
    if (q === "en" || q === "zh") return q;
    try {
      return localStorage.getItem(LANG_KEY) === "en" ? "en" : "zh";
    } catch (e) {
      return "zh";
    }
  }

  function t(zh, en) {
    return lang() === "en" ? en : zh;
  }

  const ATTRS = ["aria-label", "placeholder", "title", "alt"];

  function applyLang(root) {
    const en = lang() === "en";
    document.documentElement.lang = en ? "en" : "zh-CN";
    (root || document).querySelectorAll("[data-en]").forEach((node) => {
      if (!node.hasAttribute("data-zh")) node.setAttribute("data-zh", node.textContent);
      node.textContent = en ? node.getAttribute("data-en") : node.getAttribute("data-zh");
    });
    for (const a of ATTRS) {
      (root || document).querySelectorAll("[data-en-" + a + "]").forEach((node) => {
        if (!node.hasAttribute("data-zh-" + a)) node.setAttribute("data-zh-" + a, node.getAttribute(a) || "");
        node.setAttribute(a, en ? node.getAttribute("data-en-" + a) : node.getAttribute("data-zh-" + a));
      });
    }
    const sw = document.getElementById("lang-switch");
    if (sw) {
      sw.textContent = en ? "中文" : "English";
      sw.lang = en ? "zh-CN" : "en";
      sw.setAttribute("aria-label", en ? "切换到中文" : "Switch to English");
    }
    const title = document.querySelector("main h1");
    if (title) document.title = title.textContent + (en ? " · Huxin" : " · 互信");
  }

  function switchLang() {
    const next = lang() === "en" ? "zh" : "en";
    try {
      localStorage.setItem(LANG_KEY, next);
    } catch (e) {
      /* private mode: the switch holds for this page only */
    }
    const url = new URL(location.href);
    if (url.searchParams.has("lang")) {
      url.searchParams.set("lang", next);
      history.replaceState(null, "", url);
    }
    applyLang();
    document.dispatchEvent(new CustomEvent("huxin:lang"));
  }

  // ------------------------------------------------------------------ DOM
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  // ------------------------------------------------------------------ values
  // The API may name fields in snake_case or lowerCamelCase (protobuf JSON); pages read snake_case.
  function snake(value) {
    if (Array.isArray(value)) return value.map(snake);
    if (value && typeof value === "object") {
      const out = {};
      for (const [k, v] of Object.entries(value)) {
        out[k.replace(/[A-Z]/g, (c) => "_" + c.toLowerCase())] = snake(v);
      }
      return out;
    }
    return value;
  }

  // "CONSENT_STATE_ACTIVE" and "active" both read "active"
  function enumName(value, prefix) {
    if (value === undefined || value === null || value === "") return "";
    const s = String(value);
    return (s.startsWith(prefix) ? s.slice(prefix.length) : s).toLowerCase();
  }

  function num(value) {
    const n = Number(value || 0);
    return Number.isFinite(n) ? n : 0;
  }

  function pad(n) {
    return String(n).padStart(2, "0");
  }

  // Beijing time, the time of the schemes' working days
  function fmtTime(value) {
    if (value === undefined || value === null || value === "" || value === 0 || value === "0") return "—";
    const d = typeof value === "string" && !/^\d+$/.test(value) ? new Date(value) : new Date(num(value) * 1000);
    if (isNaN(d.getTime())) return String(value);
    const b = new Date(d.getTime() + 8 * 3600 * 1000);
    return `${b.getUTCFullYear()}-${pad(b.getUTCMonth() + 1)}-${pad(b.getUTCDate())} ${pad(b.getUTCHours())}:${pad(b.getUTCMinutes())}`;
  }

  function fmtDate(value) {
    const s = fmtTime(value);
    return s.length > 10 ? s.slice(0, 10) : s;
  }

  function b64decode(s) {
    if (!s) return new Uint8Array(0);
    const std = String(s).replace(/-/g, "+").replace(/_/g, "/");
    const bin = atob(std + "===".slice((std.length + 3) % 4));
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function b64encode(bytes, url) {
    let bin = "";
    for (const b of bytes) bin += String.fromCharCode(b);
    const s = btoa(bin);
    return url ? s.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "") : s;
  }

  function hex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  async function sha256(bytes) {
    return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  }

  // ------------------------------------------------------------------ API
  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.message) || "HTTP " + status);
      this.status = status;
      this.code = (body && body.code) || "";
      this.reason = (body && body.reason) || "HTTP_" + status;
      this.field = (body && body.field) || "";
    }
  }

  function cookie(name) {
    for (const part of document.cookie.split(";")) {
      const [k, ...v] = part.trim().split("=");
      if (k === name) return decodeURIComponent(v.join("="));
    }
    return "";
  }

  async function api(method, path, body) {
    const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    // the session cookie alone authenticates nothing: the readable CSRF cookie is echoed
    const csrf = cookie(CSRF_COOKIE);
    if (csrf) init.headers[CSRF_HEADER] = csrf;
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, { reason: "NETWORK", message: String(e) });
    }
    let data = null;
    const text = await resp.text();
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (e) {
        data = { message: text.slice(0, 200) };
      }
    }
    if (resp.status === 401 && document.body.dataset.page !== "signin") {
      const next = location.pathname + location.search;
      location.assign(API.signin + "?next=" + encodeURIComponent(next));
      throw new ApiError(401, snake(data));
    }
    if (!resp.ok) throw new ApiError(resp.status, snake(data));
    return snake(data);
  }

  // Reasons a citizen meets, in words; any other shows the server's message and its code.
  const REASONS = {
    NETWORK: ["无法连接到服务，请稍后再试。", "The service cannot be reached; please try again later."],
    CONSENT_RATE_EXCEEDED: ["授权过于频繁，请稍后再试。", "Too many consents in a short time; please try again later."],
    TOO_MANY_ACTIVE_CONSENTS: ["有效授权已达上限，请先撤回不需要的授权。", "You hold the most active consents allowed; withdraw one you do not need."],
    SUBJECT_OPTED_OUT: ["您已选择不参与评分，不能授权。", "You opted out of being scored, so you cannot grant a consent."],
    DISCLOSURE_NOT_ALLOWED: ["该场景不允许披露这么多信息。", "This scenario does not allow that much to be disclosed."],
    UNKNOWN_SCENARIO: ["没有这个激励场景。", "There is no such incentive scenario."],
    SCENARIO_NOT_MET: ["您的信用等级尚未达到该场景的要求。", "Your grade does not meet this scenario yet."],
    AUDIENCE_NOT_TRUSTED: ["这个办理单位不在本地区的信任列表中，请核对标识。", "This relying party is not in the region's trust list; check its identity."],
    NOT_CONFIRMED: ["请先确认。", "Please confirm first."],
    CONSENT_NOT_FOUND: ["没有这项授权。", "There is no such consent."],
    CONSENT_WITHDRAWN: ["这项授权已经撤回。", "This consent is already withdrawn."],
    RECORD_AMBIGUOUS: ["两个部门有同一编号的记录，请选择部门。", "Two departments hold a record with this number; choose the department."],
    RECORD_NOT_FOUND: ["没有这条记录。", "There is no such record."],
    SUBJECT_UNKNOWN: ["本节点没有您的信用记录。", "This node holds no records about you."],
    INVALID_FIELD: ["填写有误。", "A field is not valid."],
    ID_NUMBER_IN_TEXT: ["请不要填写身份证号码。", "Please do not write an ID number."],
  };

  function reasonText(err) {
    const known = REASONS[err.reason];
    const words = known ? t(known[0], known[1]) : err.message;
    return words + (err.reason ? ` (${err.reason}${err.field ? " · " + err.field : ""})` : "");
  }

  function showError(err, form) {
    const box = document.getElementById("alert");
    const text = err instanceof ApiError ? reasonText(err) : String(err && err.message ? err.message : err);
    box.className = "alert error";
    clear(box).append(el("strong", { text: t("未能完成：", "Not done: ") }), text);
    box.hidden = false;
    if (form && err && err.field) {
      const input = form.querySelector(`[name="${CSS.escape(err.field)}"]`);
      if (input) {
        input.setAttribute("aria-invalid", "true");
        input.setAttribute("aria-describedby", "alert");
        input.focus();
        return;
      }
    }
    box.setAttribute("tabindex", "-1");
    box.focus();
  }

  function showNotice(text) {
    const box = document.getElementById("alert");
    box.className = "alert ok";
    clear(box).append(text);
    box.hidden = false;
  }

  function clearAlert(form) {
    const box = document.getElementById("alert");
    box.hidden = true;
    if (form) form.querySelectorAll("[aria-invalid]").forEach((n) => n.removeAttribute("aria-invalid"));
  }

  // ------------------------------------------------------------------ confirm
  // body: paragraphs (strings or nodes) saying exactly what happens.
  function confirmDialog({ title, body, confirmLabel, danger, typeToConfirm }) {
    return new Promise((resolve) => {
      const input = typeToConfirm
        ? el("input", { id: "confirm-word", name: "confirm_word", autocomplete: "off", required: true })
        : null;
      const ok = el("button", { type: "submit", class: danger ? "danger" : "primary", text: confirmLabel });
      const cancel = el("button", { type: "button", class: "secondary", text: t("取消", "Cancel") });
      const form = el(
        "form",
        { method: "dialog" },
        el("h2", { id: "dialog-title", text: title }),
        ...body.map((p) => (p instanceof Node ? p : el("p", { text: p }))),
        input
          ? el(
              "p",
              {},
              el("label", { for: "confirm-word", text: t(`请输入“${typeToConfirm}”以确认：`, `Type "${typeToConfirm}" to confirm:`) }),
              input
            )
          : null,
        el("div", { class: "actions" }, cancel, ok)
      );
      const dlg = el("dialog", { class: "confirm", "aria-labelledby": "dialog-title" }, form);
      const opener = document.activeElement;
      let answered = false;
      function done(value) {
        if (answered) return;
        answered = true;
        dlg.close();
        dlg.remove();
        if (opener && opener.focus) opener.focus();
        resolve(value);
      }
      cancel.addEventListener("click", () => done(false));
      dlg.addEventListener("cancel", () => done(false));
      form.addEventListener("submit", (ev) => {
        ev.preventDefault();
        if (input && input.value.trim() !== typeToConfirm) {
          input.setAttribute("aria-invalid", "true");
          input.focus();
          return;
        }
        done(true);
      });
      document.body.append(dlg);
      dlg.showModal();
      (input || cancel).focus();
    });
  }

  // ------------------------------------------------------------------ session and pages
  let session = null;

  async function whoami() {
    session = await api("GET", API.session);
    const who = document.getElementById("whoami");
    if (who && session && session.pseudonym) {
      const name = session.pseudonym || "";
      clear(who).append(
        el("span", { text: t("化名：", "Pseudonym: ") }),
        el("code", { text: name }),
        session.region ? el("span", { text: " · " + t("地区：", "Region: ") + session.region }) : null
      );
      who.hidden = false;
    }
    const out = document.getElementById("sign-out");
    if (out) out.hidden = false;
    return session;
  }

  async function signOut() {
    try {
      await fetch(API.signout, { method: "POST", credentials: "same-origin", redirect: "manual" });
    } finally {
      location.assign(API.signin);
    }
  }

  // A page script calls page(render): render(session) runs after the sign-in is
  // checked and again when the language switches (a render replaces what it drew).
  function page(render, { public: isPublic } = {}) {
    document.addEventListener("DOMContentLoaded", async () => {
      applyLang();
      // on a phone the menu scrolls sideways: show where this page is in it (the
      // menu's own scroll, not scrollIntoView, which would move where Tab starts)
      const menu = document.querySelector(".menu");
      const here = menu && menu.querySelector("[aria-current='page']");
      if (here) menu.scrollLeft = here.offsetLeft - (menu.clientWidth - here.offsetWidth) / 2;
      const sw = document.getElementById("lang-switch");
      if (sw) sw.addEventListener("click", switchLang);
      const out = document.getElementById("sign-out");
      if (out) out.addEventListener("click", signOut);
      let s = null;
      try {
        if (!isPublic) s = await whoami();
      } catch (e) {
        if (!(e instanceof ApiError && e.status === 401)) showError(e);
        return;
      }
      const run = async () => {
        try {
          await render(s);
          applyLang(document.querySelector("main"));
        } catch (e) {
          showError(e);
        }
      };
      document.addEventListener("huxin:lang", () => {
        if (s) whoami().catch(showError);
        run();
      });
      await run();
      document.body.dataset.ready = "true";
    });
  }

  function setBusy(button, busy) {
    button.disabled = busy;
    button.setAttribute("aria-busy", busy ? "true" : "false");
  }

  // One <select> option per value, labelled in the current language.
  function options(select, items, current) {
    clear(select);
    for (const [value, label] of items) {
      select.append(el("option", { value, selected: value === current ? true : null, text: label }));
    }
  }

  window.Huxin = {
    API,
    ApiError,
    api,
    applyLang,
    b64decode,
    b64encode,
    clear,
    clearAlert,
    confirmDialog,
    el,
    enumName,
    fmtDate,
    fmtTime,
    hex,
    lang,
    num,
    options,
    page,
    reasonText,
    session: () => session,
    setBusy,
    sha256,
    showError,
    showNotice,
    t,
  };
})();
