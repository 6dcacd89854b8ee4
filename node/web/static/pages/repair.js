/* Credit repair (N22): apply for a negative record, follow the department's decision. */
"use strict";

(function () {
  const H = window.Huxin;
  const { el, t, term } = H;
  const ROUTES = ["commitment", "rectification", "verification", "credit_report", "charity"];
  let negatives = [];

  async function fileHash(input) {
    const file = input.files && input.files[0];
    if (!file) return undefined;
    return H.b64encode(await H.sha256(new Uint8Array(await file.arrayBuffer())));
  }

  function item(a) {
    const g = a.grade || {};
    return el(
      "li",
      { class: "application" },
      el("h3", {}, t(`记录 ${a.record_id}`, `Record ${a.record_id}`), " ", el("span", { class: "badge" + (a.state === "granted" ? " ok" : ""), text: term("repair", a.state) }), a.overdue ? el("span", { class: "badge warn", text: t("已逾期，已上报", "overdue: escalated") }) : null),
      el(
        "dl",
        { class: "facts" },
        el("dt", { text: t("修复方式", "Route") }),
        el("dd", { text: term("route", a.route) }),
        el("dt", { text: t("决定部门", "Decided by") }),
        el("dd", { text: a.source }),
        el("dt", { text: t("提交时间", "Filed") }),
        el("dd", { text: H.fmtTime(a.filed_at) }),
        el("dt", { text: t("决定期限", "Decision due") }),
        el("dd", {}, el("time", { datetime: a.due, text: a.due || "—" })),
        a.decided_at ? [el("dt", { text: t("决定时间", "Decided") }), el("dd", { text: H.fmtTime(a.decided_at) })] : null,
        a.reason ? [el("dt", { text: t("部门理由", "Reason") }), el("dd", { text: a.reason })] : null,
        g.changed ? [el("dt", { text: t("等级变化", "Grade") }), el("dd", { text: `${g.grade_before} → ${g.grade_after}` })] : null
      )
    );
  }

  async function drawList() {
    const data = await H.api("GET", H.API.repairs);
    const list = data.applications || [];
    H.clear(document.getElementById("repair-list")).append(
      list.length ? el("ul", { class: "applications" }, list.map(item)) : el("p", { class: "muted", text: t("您没有修复申请。", "You have no repair application.") })
    );
  }

  async function apply(ev) {
    ev.preventDefault();
    const f = ev.target;
    H.clearAlert(f);
    const btn = document.getElementById("repair-btn");
    H.setBusy(btn, true);
    try {
      const [source, record_id] = JSON.parse(f.record_id.value || '["",""]');
      const a = await H.api("POST", H.API.repairs, {
        record_id,
        source,
        route: f.route.value,
        statement: f.statement.value,
        evidence_sha256: await fileHash(f.evidence_sha256),
      });
      H.showNotice(t(`申请已提交，${a.source} 将在 ${a.due} 前决定。`, `Application filed; ${a.source} decides by ${a.due}.`));
      f.statement.value = "";
      await drawList();
    } catch (e) {
      H.showError(e, f);
    } finally {
      H.setBusy(btn, false);
    }
  }

  let wired = false;
  H.page(async () => {
    const f = document.getElementById("repair-form");
    if (!wired) {
      wired = true;
      const score = await H.api("GET", H.API.score).catch(() => ({}));
      negatives = ((score.result && score.result.contributions) || []).filter((c) => c.polarity === "negative");
      f.addEventListener("submit", apply);
      // the record chosen on the score page, handed over in this tab's storage (not the URL), read once
      const want = sessionStorage.getItem("huxin.record-target");
      sessionStorage.removeItem("huxin.record-target");
      if (want) f.record_id.dataset.want = want;
    }
    H.options(
      f.record_id,
      negatives.map((c) => [JSON.stringify([c.source || "", c.record_id || ""]), `${c.category_name || c.category} · ${c.source} · ${c.recognised_on} · ${H.num(c.points)} (${c.record_id})`]),
      f.record_id.value || f.record_id.dataset.want
    );
    if (!negatives.length) f.record_id.append(el("option", { value: "", text: t("没有失信记录", "No negative record") }));
    H.options(f.route, ROUTES.map((r) => [r, term("route", r)]), f.route.value);
    await drawList();
  });
})();
