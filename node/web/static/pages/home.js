/* My score, grade and the explained report: every record with its points and reason (H12). */
"use strict";

(function () {
  const H = window.Huxin;
  const { el, t, term } = H;
  const TARGET_KEY = "huxin.record-target"; // read once by objections.js and repair.js

  // The record's number and department ride in sessionStorage, never in the link: a URL
  // lands in the browser's history and in logs, this tab's storage dies with the tab (finding 10).
  function recordLink(path, c, text) {
    const target = JSON.stringify([c.source || "", c.record_id || ""]);
    return el("a", { href: path, text, onclick: () => sessionStorage.setItem(TARGET_KEY, target) });
  }

  function recordsTable(caption, rows) {
    const head = [
      t("类别", "Category"),
      t("来源部门", "Source"),
      t("认定日期", "Recognised"),
      t("有效期至", "Valid until"),
      t("分值", "Points"),
      t("状态", "Status"),
      t("原因", "Reason"),
      t("操作", "Actions"),
    ];
    const table = el(
      "table",
      { class: "stack" },
      el("caption", { text: caption }),
      el("thead", {}, el("tr", {}, head.map((h) => el("th", { scope: "col", text: h }))))
    );
    const body = el("tbody");
    for (const c of rows) {
      const points = H.num(c.points);
      const nominal = H.num(c.nominal_points);
      const pts = (points > 0 ? "+" : "") + points + (nominal !== points ? ` (${t("原值", "nominal")} ${nominal > 0 ? "+" : ""}${nominal})` : "");
      const actions = el(
        "span",
        { class: "row-actions" },
        recordLink("/objections", c, t("异议", "Object")),
        c.polarity === "negative" ? recordLink("/repair", c, t("修复", "Repair")) : null
      );
      const cells = [
        el("span", {}, c.category_name || c.category, el("br"), el("small", { class: "muted", text: c.record_id })),
        c.source,
        c.recognised_on,
        c.valid_until || "—",
        el("span", { class: points < 0 ? "neg" : points > 0 ? "pos" : "" , text: pts }),
        term("status", c.status),
        c.reason,
        actions,
      ];
      body.append(el("tr", {}, cells.map((v, i) => el(i === 0 ? "th" : "td", i === 0 ? { scope: "row", "data-label": head[i] } : { "data-label": head[i] }, v))));
    }
    table.append(body);
    return el("div", { class: "table-wrap" }, table);
  }

  function scoreBox(data) {
    const r = data.result || {};
    if (data.opted_out) {
      return el(
        "div",
        { class: "notice" },
        el("p", { text: t(`您已于 ${H.fmtTime(data.opted_out_at)} 选择不参与评分，因此没有分数。您的记录仍然保留。`, `You opted out of being scored on ${H.fmtTime(data.opted_out_at)}, so there is no score. Your records are kept.`) }),
        el("a", { href: "/account", text: t("重新参与评分", "Be scored again") })
      );
    }
    if (!r.eligible) {
      return el("p", { class: "notice", text: t("本月没有分数：", "No score this month: ") + (r.ineligible_reason || "") });
    }
    return el(
      "div",
      { class: "score-grid" },
      el(
        "p",
        { class: "big" },
        el("span", { class: "label", text: t("信用分", "Score") }),
        el("span", { class: "value", id: "score-value", text: String(H.num(r.score)) })
      ),
      el(
        "p",
        { class: "big" },
        el("span", { class: "label", text: t("信用等级", "Grade") }),
        el("span", { class: "value grade", id: "grade-value", text: r.grade || "—" })
      ),
      el(
        "p",
        { class: "sum" },
        t(
          `基础分 ${H.num(r.base_score)} ＋ 加分 ${H.num(r.added)} － 减分 ${H.num(r.deducted)} ＝ ${H.num(r.score)}`,
          `Base ${H.num(r.base_score)} + added ${H.num(r.added)} − deducted ${H.num(r.deducted)} = ${H.num(r.score)}`
        )
      ),
      el(
        "p",
        { class: "muted" },
        t(`${data.period} 月公布 · 评分方案 ${r.scheme_id}@${r.scheme_version} · 截至 ${r.as_of}`, `Published for ${data.period} · scheme ${r.scheme_id}@${r.scheme_version} · as of ${r.as_of}`),
        r.clean_record ? el("span", { class: "badge", text: t("无失信记录", "clean record") }) : null
      )
    );
  }

  H.page(async () => {
    const data = await H.api("GET", H.API.score);
    H.clear(document.getElementById("score-box")).append(scoreBox(data));
    const records = H.clear(document.getElementById("records"));
    const all = (data.result && data.result.contributions) || [];
    if (!all.length) {
      records.append(el("p", { class: "muted", text: t("没有记录。", "No records.") }));
      return;
    }
    const pos = all.filter((c) => c.polarity !== "negative");
    const neg = all.filter((c) => c.polarity === "negative");
    if (pos.length) records.append(recordsTable(t("守信激励记录（加分）", "Positive records (points added)"), pos));
    if (neg.length) records.append(recordsTable(t("失信记录（减分）", "Negative records (points deducted)"), neg));
  });
})();
