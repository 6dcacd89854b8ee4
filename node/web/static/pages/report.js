/* The printable credit report (信用报告), laid out like the national personal public
 * credit report: basic information, score and grade, records by category with
 * their status, objection notes, query records.  Printed by the browser (report.css). */
"use strict";

(function () {
  const H = window.Huxin;
  const { el, t, term } = H;
  const QUERY_KINDS = new Set(["attestation_issued", "request_refused"]);

  function kv(pairs) {
    return el(
      "table",
      { class: "kv" },
      el("tbody", {}, pairs.filter(Boolean).map(([k, v]) => el("tr", {}, el("th", { scope: "row", text: k }), el("td", {}, v))))
    );
  }

  function grid(caption, head, rows, empty) {
    if (!rows.length) return el("p", { class: "muted", text: empty });
    return el(
      "div",
      { class: "grid-wrap", tabindex: "0", role: "region", "aria-label": caption || head.join(" ") },
      el(
      "table",
      { class: "grid" },
      caption ? el("caption", { text: caption }) : null,
      el("thead", {}, el("tr", {}, head.map((h) => el("th", { scope: "col", text: h })))),
      el("tbody", {}, rows.map((r) => el("tr", {}, r.map((v) => el("td", {}, v)))))
      )
    );
  }

  async function queryRows() {
    const out = [];
    let start = 0;
    for (let page = 0; page < 20; page++) {
      const q = new URLSearchParams({ start_index: String(start), page_size: "100" });
      const data = await H.api("GET", H.API.queryLog + "?" + q.toString());
      const cp = H.pb.checkpointOf(data.checkpoint);
      for (const item of data.entries || []) {
        const bytes = H.b64decode(item.entry);
        const p = item.proof || {};
        let e = null;
        let ok = false;
        try {
          e = H.pb.logEntry(bytes);
          ok = H.num(p.tree_size) === cp.tree_size && (await H.verifyInclusion(bytes, H.num(p.leaf_index), H.num(p.tree_size), (p.hashes || []).map(H.b64decode), cp.root_hash));
        } catch (err) {
          ok = false;
        }
        if (e && QUERY_KINDS.has(e.kind)) out.push([e, ok]);
      }
      if (!data.more) break;
      start = H.num(data.next_start_index);
    }
    return out;
  }

  H.page(async (session) => {
    const [score, objections, queries] = await Promise.all([
      H.api("GET", H.API.score),
      H.api("GET", H.API.objections).catch(() => ({})),
      queryRows(),
    ]);
    const r = score.result || {};
    const now = new Date();
    H.clear(document.getElementById("report-meta")).append(
      el("dt", { text: t("报告时间", "Made") }),
      el("dd", { id: "made-at", text: H.fmtTime(Math.floor(now.getTime() / 1000)) }),
      el("dt", { text: t("信用周期", "Period") }),
      el("dd", { text: score.period || "—" }),
      el("dt", { text: t("评分方案", "Scheme") }),
      el("dd", { text: r.scheme_id ? `${r.scheme_id}@${r.scheme_version}` : "—" })
    );
    H.clear(document.getElementById("basic")).append(
      kv([
        [t("化名", "Pseudonym"), el("code", { text: (session && session.pseudonym) || "—" })],
        session && session.region ? [t("地区节点", "Region node"), session.region] : null,
        [t("评分状态", "Scoring"), score.opted_out ? t("本人已选择不参与评分", "opted out by the person") : t("参与评分", "scored")],
        [t("证件信息", "ID document"), t("不在本报告中显示", "not shown in this report")],
      ])
    );
    H.clear(document.getElementById("grade")).append(
      score.opted_out || !r.eligible
        ? el("p", { text: score.opted_out ? t("本人已选择不参与评分，无分数。", "Opted out: no score.") : t("本期无分数：", "No score this period: ") + (r.ineligible_reason || "") })
        : kv([
            [t("信用分", "Score"), el("strong", { id: "report-score", text: String(H.num(r.score)) })],
            [t("信用等级", "Grade"), el("strong", { id: "report-grade", text: r.grade || "—" })],
            [t("基础分", "Base"), String(H.num(r.base_score))],
            [t("加分合计", "Added"), "+" + H.num(r.added)],
            [t("减分合计", "Deducted"), "−" + H.num(r.deducted)],
            [t("评价截至", "As of"), r.as_of || "—"],
          ])
    );
    const byCategory = new Map();
    for (const c of r.contributions || []) {
      const key = `${c.polarity}|${c.category_name || c.category}`;
      if (!byCategory.has(key)) byCategory.set(key, []);
      byCategory.get(key).push(c);
    }
    const records = H.clear(document.getElementById("records"));
    if (!byCategory.size) records.append(el("p", { class: "muted", text: t("无记录。", "No records.") }));
    const head = [t("记录编号", "Record"), t("来源部门", "Source"), t("认定日期", "Recognised"), t("有效期至", "Valid until"), t("分值", "Points"), t("状态", "Status")];
    const keys = [...byCategory.keys()].sort((a, b) => (a.startsWith("negative") ? 1 : 0) - (b.startsWith("negative") ? 1 : 0));
    for (const key of keys) {
      const [polarity, name] = key.split("|");
      const rows = byCategory.get(key).map((c) => [c.record_id, c.source, c.recognised_on, c.valid_until || "—", (H.num(c.points) > 0 ? "+" : "") + H.num(c.points), term("status", c.status)]);
      records.append(el("h3", {}, `${term("polarity", polarity)} · ${name}`), grid(null, head, rows, ""));
    }
    const objs = objections.objections || [];
    H.clear(document.getElementById("objections")).append(
      grid(
        null,
        [t("异议对象", "About"), t("提交时间", "Filed"), t("处理部门", "Handled by"), t("状态", "State"), t("结果", "Outcome")],
        objs.map((o) => [o.about_score ? t(`${o.period} 月信用分`, `score of ${o.period}`) : o.record_id, H.fmtDate(o.filed_at), H.objectionHandler(o), H.objectionState(o) + (o.waiting_for ? t(`（${term("step", o.waiting_for)}期限 ${o.due}）`, ` (${term("step", o.waiting_for)} due ${o.due})`) : ""), o.outcome ? term("outcome", o.outcome) : "—"]),
        t("无异议。", "No objections.")
      )
    );
    H.clear(document.getElementById("queries")).append(
      grid(
        null,
        [t("查询时间", "When"), t("查询方", "Who"), t("场景", "Scenario"), t("结果", "Result"), t("日志核验", "Log proof")],
        queries.map(([e, ok]) => [H.fmtTime(e.timestamp), e.requester || "—", e.purpose || "—", e.kind === "attestation_issued" ? t("已出具证明", "attestation issued") : t("拒绝", "refused") + (e.reason ? ` (${e.reason})` : ""), ok ? t("已核验", "checked") : t("核验失败", "failed")]),
        t("无查询记录。", "No queries.")
      )
    );
  });

  document.addEventListener("DOMContentLoaded", () => {
    document.getElementById("print-btn").addEventListener("click", () => window.print());
  });
})();
