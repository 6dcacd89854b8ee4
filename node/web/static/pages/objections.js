/* Objections: file one against a record of my report or my published score, and
 * follow each step with its deadline (H15, N21; docs/adr/0500). */
"use strict";

(function () {
  const H = window.Huxin;
  const { el, t, term } = H;
  const SCORE = "__score__";
  let period = "";
  let records = [];

  function targetItems() {
    const items = records.map((c) => [
      JSON.stringify([c.source || "", c.record_id || ""]),
      `${c.category_name || c.category} · ${c.source} · ${c.recognised_on} · ${H.num(c.points) > 0 ? "+" : ""}${H.num(c.points)} (${c.record_id})`,
    ]);
    if (period) items.push([SCORE, t(`我 ${period} 月公布的信用分本身`, `My published score of ${period} itself`)]);
    return items;
  }

  //: the steps of an objection to a record's facts, in order (scoring/_objections.py)
  const RECORD_FLOW = ["forward", "source", "reply"];

  function deadlines(o) {
    const list = o.deadlines || [];
    if (!list.length) return null;
    const waiting = o.waiting_for || "";
    // a later step's deadline is counted in working days once the step before it is done
    const later = waiting && !o.about_score && !o.about_handling ? RECORD_FLOW.filter((s) => !list.some((d) => d.step === s)) : [];
    return el(
      "ol",
      { class: "steps" },
      list.map((d) =>
        el(
          "li",
          { class: d.step === waiting ? "current" : "" },
          el("span", { class: "step", text: term("step", d.step) }),
          " ",
          el("span", { text: t("期限：", "due ") }),
          el("time", { datetime: d.due, text: d.due }),
          d.step === waiting ? el("strong", { text: t("（当前步骤）", " (current step)") }) : null
        )
      ),
      later.map((s) =>
        el("li", { class: "later" }, el("span", { class: "step", text: term("step", s) }), " ", el("span", { class: "muted", text: t("期限在上一步完成后按工作日计算", "due date counted in working days once the step before is done") }))
      )
    );
  }

  function objectionItem(o) {
    const closed = !o.waiting_for;
    return el(
      "li",
      { class: "objection", "data-objection-id": o.objection_id },
      el(
        "h3",
        {},
        o.about_score ? t(`对 ${o.period} 月信用分的异议`, `Objection to the score of ${o.period}`) : t(`对记录 ${o.record_id} 的异议`, `Objection to record ${o.record_id}`),
        " ",
        el("span", { class: "badge" + (closed ? " ok" : ""), text: H.objectionState(o) })
      ),
      el(
        "dl",
        { class: "facts" },
        el("dt", { text: t("提交时间", "Filed") }),
        el("dd", { text: H.fmtTime(o.filed_at) }),
        el("dt", { text: t("处理部门", "Handled by") }),
        el("dd", { text: H.objectionHandler(o) }),
        el("dt", { text: t("您的理由", "Your reason") }),
        el("dd", { text: o.reason || "—" }),
        o.waiting_for
          ? [el("dt", { text: t("正在等待", "Waiting for") }), el("dd", {}, term("step", o.waiting_for), " · ", t("期限 ", "due "), el("strong", { class: "due", text: o.due || "—" }))]
          : null,
        o.outcome ? [el("dt", { text: t("结果", "Outcome") }), el("dd", { text: term("outcome", o.outcome) })] : null
      ),
      el("h4", { text: t("各步骤期限", "Deadline of each step") }),
      deadlines(o) || el("p", { class: "muted", text: "—" }),
      (o.history || []).length
        ? el(
            "details",
            {},
            el("summary", { text: t("处理经过", "History") }),
            el("ul", {}, (o.history || []).map((h) => el("li", {}, H.fmtTime(h.at), " · ", H.objectionState(o, h.state), h.note ? " · " + h.note : "")))
          )
        : null
    );
  }

  async function drawList() {
    const data = await H.api("GET", H.API.objections);
    const box = H.clear(document.getElementById("objection-list"));
    const list = data.objections || [];
    box.append(list.length ? el("ul", { class: "objections" }, list.map(objectionItem)) : el("p", { class: "muted", text: t("您没有提出过异议。", "You have filed no objection.") }));
  }

  async function file(ev) {
    ev.preventDefault();
    const f = ev.target;
    H.clearAlert(f);
    const btn = document.getElementById("file-btn");
    let body;
    if (f.record_id.value === SCORE) {
      body = { about_score: true, period, reason: f.reason.value };
    } else {
      const [source, record_id] = JSON.parse(f.record_id.value || '["",""]');
      body = { record_id, source, reason: f.reason.value, about_handling: f.about_handling.checked };
    }
    H.setBusy(btn, true);
    try {
      const o = await H.api("POST", H.API.objections, body);
      H.showNotice(t(`异议已受理（${o.objection_id}），当前步骤期限 ${o.due || "—"}。`, `Objection received (${o.objection_id}); the current step is due ${o.due || "—"}.`));
      f.reason.value = "";
      await drawList();
    } catch (e) {
      H.showError(e, f);
    } finally {
      H.setBusy(btn, false);
    }
  }

  let wired = false;
  H.page(async () => {
    const f = document.getElementById("objection-form");
    if (!wired) {
      wired = true;
      const score = await H.api("GET", H.API.score).catch(() => ({}));
      period = score.period || "";
      records = (score.result && score.result.contributions) || [];
      f.addEventListener("submit", file);
      // the record chosen on the score page, handed over in this tab's storage (not the URL), read once
      const want = sessionStorage.getItem("huxin.record-target");
      sessionStorage.removeItem("huxin.record-target");
      if (want) f.record_id.dataset.want = want;
    }
    H.options(f.record_id, targetItems(), f.record_id.value || f.record_id.dataset.want);
    await drawList();
  });
})();
