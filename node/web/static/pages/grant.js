/* Granting a consent: a preview of exactly what the relying party sees (nothing is
 * stored by a preview), then the grant, handed over as a QR code and as text. */
"use strict";

(function () {
  const H = window.Huxin;
  const { el, t, term } = H;
  const SVG = "http://www.w3.org/2000/svg";
  //: The text a relying party receives: this prefix, then the ConsentToken (token,
  //: consent id, binding salt) as base64url protocol-buffer bytes (docs/adr/0801).
  const HANDOVER_PREFIX = "HUXIN-CONSENT-1:";
  const SCOPES = ["threshold", "grade", "grade_and_score"];

  let request = null; // the request the shown preview is of: the grant repeats it exactly
  let granted = null;

  function form() {
    return document.getElementById("grant-form");
  }

  function readForm() {
    const f = form();
    return {
      purpose: f.purpose.value,
      audience: f.audience.value.trim(),
      scope: f.scope.value,
      valid_days: Number(f.valid_days.value || 0),
      max_uses: Number(f.max_uses.value || 0),
    };
  }

  // The node's sentence is English; in Chinese the same facts are said from the
  // preview's fields (what is disclosed is decided by the node, never here).
  function statement(p) {
    if (H.lang() === "en") return p.statement || "";
    const who = p.audience || "";
    const what = `「${p.title || p.scenario}」（${p.scenario}，要求 ${p.min_tier} 级及以上）`;
    const mapped = p.mapping ? `您的等级按互认对照表 ${p.mapping} 换算为 ${p.scheme_id} 的等级。` : "";
    if (p.disclosure === "grade_and_score") return `${who} 将得知您符合${what}，以及您的信用等级和分数。${mapped}`;
    if (p.disclosure === "grade") return `${who} 将得知您符合${what}，以及您的信用等级；不会得知您的分数。${mapped}`;
    return `${who} 只会得知您符合${what}；不会得知您的等级和分数。${mapped}`;
  }

  function previewBody(p) {
    // each field in words, with the name the attestation gives it (exactly what is sent)
    const item = (f) => el("li", {}, term("field", f), " ", el("code", { class: "muted", text: f }));
    const disclosed = (p.disclosed_fields || []).map(item);
    const withheld = (p.withheld_fields || []).map(item);
    return [
      el("p", { class: "statement", id: "preview-statement", text: statement(p) }),
      el(
        "dl",
        { class: "facts" },
        el("dt", { text: t("场景", "Scenario") }),
        el("dd", { text: `${p.title || ""} (${p.scenario || ""})` }),
        el("dt", { text: t("办理单位", "Relying party") }),
        el("dd", {}, el("strong", { id: "preview-audience", text: p.audience || "" })),
        el("dt", { text: t("披露方式", "Disclosure") }),
        el("dd", { text: term("disclosure", p.disclosure) }),
        el("dt", { text: t("要求等级", "Required grade") }),
        el("dd", { text: p.min_tier || "—" }),
        el("dt", { text: t("有效期至", "Valid until") }),
        el("dd", { text: H.fmtTime(p.not_after) }),
        el("dt", { text: t("最多使用", "Uses at most") }),
        el("dd", { text: String(H.num(p.max_uses)) }),
        p.mapping ? [el("dt", { text: t("互认对照表", "Mapping table") }), el("dd", { text: p.mapping })] : null
      ),
      el("h3", { text: t("对方能看到", "They will see") }),
      el("ul", { class: "fields yes", id: "disclosed" }, disclosed.length ? disclosed : el("li", { text: "—" })),
      el("h3", { text: t("对方看不到", "They will never see") }),
      el("ul", { class: "fields no", id: "withheld" }, withheld.length ? withheld : el("li", { text: "—" })),
    ];
  }

  function qrSvg(text) {
    const qr = window.qrcode(0, "M");
    qr.addData(text, "Byte");
    qr.make();
    const n = qr.getModuleCount();
    const quiet = 4;
    const size = n + 2 * quiet;
    let d = "";
    for (let r = 0; r < n; r++) {
      for (let c = 0; c < n; c++) {
        if (qr.isDark(r, c)) d += `M${c + quiet} ${r + quiet}h1v1h-1z`;
      }
    }
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", `0 0 ${size} ${size}`);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", t("授权二维码", "QR code of the consent"));
    svg.setAttribute("shape-rendering", "crispEdges");
    svg.id = "qr-svg";
    const bg = document.createElementNS(SVG, "rect");
    bg.setAttribute("width", String(size));
    bg.setAttribute("height", String(size));
    bg.setAttribute("fill", "#fff");
    const path = document.createElementNS(SVG, "path");
    path.setAttribute("d", d);
    path.setAttribute("fill", "#000");
    svg.append(bg, path);
    return { svg, modules: n };
  }

  function handoverText(token) {
    if (token.handover) return token.handover;
    return HANDOVER_PREFIX + H.b64encode(H.pb.consentTokenBytes(token), true);
  }

  function showHandover() {
    if (!granted) return;
    const text = handoverText(granted);
    document.getElementById("token-text").value = text;
    const { svg, modules } = qrSvg(text);
    H.clear(document.getElementById("qr")).append(svg);
    document.getElementById("qr-caption").textContent = t(
      `授权编号 ${granted.consent_id}（${modules}×${modules}）`,
      `Consent ${granted.consent_id} (${modules}×${modules})`
    );
    const box = document.getElementById("handover");
    box.hidden = false;
  }

  async function fillScenarios() {
    const f = form();
    const wanted = new URLSearchParams(location.search).get("scenario") || f.purpose.value;
    const [mine, catalogue] = await Promise.all([H.api("GET", H.API.incentives), H.api("GET", H.API.catalogue)]);
    // what my grade qualifies for, here and through recognition, then the rest of
    // my region's catalogue (a grant the node would refuse says why)
    const items = [];
    const seen = new Set();
    const label = (e) => (H.lang() === "en" && e.title_en ? e.title_en : e.title) + " · " + e.ref;
    for (const r of mine.regions || []) {
      for (const e of r.scenarios || []) {
        if (!e.ref || seen.has(e.ref)) continue;
        seen.add(e.ref);
        items.push([e.ref, label(e)]);
      }
    }
    for (const e of catalogue.entries || []) {
      if (!e.ref || seen.has(e.ref)) continue;
      seen.add(e.ref);
      items.push([e.ref, label(e) + t("（暂不符合）", " (not yet)")]);
    }
    H.options(f.purpose, items, wanted);
    const scope = f.scope.value || "threshold";
    H.options(
      f.scope,
      SCOPES.map((s) => [s, term("disclosure", s)]),
      scope
    );
  }

  async function preview(ev) {
    ev.preventDefault();
    const f = form();
    H.clearAlert(f);
    const btn = document.getElementById("preview-btn");
    H.setBusy(btn, true);
    try {
      request = readForm();
      const answer = await H.api("POST", H.API.consents, { ...request, preview_only: true });
      H.clear(document.getElementById("preview-body")).append(...previewBody(answer.preview || {}));
      document.getElementById("preview").hidden = false;
      document.getElementById("handover").hidden = true;
      document.getElementById("preview-h").focus();
    } catch (e) {
      H.showError(e, f);
    } finally {
      H.setBusy(btn, false);
    }
  }

  async function grant() {
    const btn = document.getElementById("grant-btn");
    H.clearAlert(form());
    H.setBusy(btn, true);
    try {
      granted = await H.api("POST", H.API.consents, { ...request, preview_only: false });
      showHandover();
      H.showNotice(t("授权成功。", "Consent granted."));
      document.getElementById("handover-h").focus();
    } catch (e) {
      H.showError(e, form());
    } finally {
      H.setBusy(btn, false);
    }
  }

  async function copy() {
    const area = document.getElementById("token-text");
    const status = document.getElementById("copy-status");
    try {
      await navigator.clipboard.writeText(area.value);
      status.textContent = t("已复制。", "Copied.");
    } catch (e) {
      area.select(); // the citizen copies it by hand
      status.textContent = t("请手动复制已选中的文本。", "Copy the selected text by hand.");
    }
  }

  let wired = false;
  H.page(async () => {
    await fillScenarios();
    if (!wired) {
      wired = true;
      form().addEventListener("submit", preview);
      document.getElementById("grant-btn").addEventListener("click", grant);
      document.getElementById("copy-btn").addEventListener("click", copy);
    }
    if (request && !document.getElementById("preview").hidden) {
      // redrawn in the new language
      const answer = await H.api("POST", H.API.consents, { ...request, preview_only: true });
      H.clear(document.getElementById("preview-body")).append(...previewBody(answer.preview || {}));
    }
    showHandover();
  });
})();
