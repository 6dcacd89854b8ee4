/* 互信运营控制台 Huxin operator console (issue 19, docs/adr/0802).
 *
 * One script for every page: it reads the page's JSON from /console/api/... (the
 * operator's client certificate authenticates every request) and builds the page
 * with DOM calls only: text from the node is always set as textContent, never as
 * HTML, so a reason typed by a citizen cannot become markup.  Charts are Apache
 * ECharts, served by the node itself (vendor/echarts, its licence beside it).
 */
"use strict";

(function () {
  const PAGES = [
    ["grades", "/console/", "等级分布", "Grades"],
    ["model", "/console/model", "模型与发布", "Model & rollout"],
    ["rights", "/console/rights", "异议与修复", "Objections & repair"],
    ["review", "/console/review", "查询审查", "Query review"],
    ["federation", "/console/federation", "联邦", "Federation"],
  ];
  const STATES = {
    received: "已受理 received",
    forwarded: "已转交来源 forwarded",
    deemed_accepted: "视为成立 deemed accepted",
    answered: "已答复 answered",
    replied: "已回复本人 replied",
    pending: "待决定 pending",
    granted: "已准予 granted",
    refused: "已驳回 refused",
  };
  const KINDS = {
    record: "记录异议 record",
    handling: "处理异议 handling",
    score: "评分异议 score",
  };
  const FLAGS = {
    "purpose outside the consent": "超出同意用途",
    "requester not named in the consent": "请求方非同意对象",
  };
  const STEPS = {
    forward: "转交 forward",
    verify: "核实 verify",
    reply: "回复 reply",
    handle: "处理 handle",
  };
  const STAGES = [
    ["current_only", "仅现行版本", "current only"],
    ["evaluated", "已评估", "evaluated"],
    ["trial", "试运行", "trial"],
    ["scheduled", "已排期生效", "scheduled"],
  ];
  /* Grade i of n (best first): from green through amber to red, whatever the scheme's
   * number of grades, so "average" is never painted as "bad". */
  function gradeColour(i, n) {
    const t = n > 1 ? i / (n - 1) : 0;
    const hue = Math.round(130 * (1 - t));
    return "hsl(" + hue + ", 62%, " + (t > 0.75 ? 40 : 46) + "%)";
  }

  /* "2026-10-14T08:00:00+00:00" -> "2026-10-14 08:00 UTC" (every time the node sends is UTC) */
  function when(text) {
    if (!text) return "";
    const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})/.exec(String(text));
    return m ? m[1] + " " + m[2] + " UTC" : String(text);
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = String(v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function bilingual(zh, en) {
    return [zh, el("span", { class: "en", lang: "en", text: en })];
  }

  function status(text, kind) {
    const s = document.getElementById("status");
    s.textContent = text;
    s.className = kind || "";
  }

  async function api(path, options) {
    const response = await fetch(path, Object.assign({
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    }, options || {}));
    let body = null;
    try {
      body = await response.json();
    } catch (e) {
      body = null;
    }
    if (!response.ok) {
      const reason = body && body.reason ? body.reason : "HTTP " + response.status;
      const message = body && body.message ? body.message : "";
      const err = new Error(reason + (message ? ": " + message : ""));
      err.reason = reason;
      throw err;
    }
    return body;
  }

  /* A table: columns are [key, zh, en, options]; options.num right-aligns, options.cell
   * builds the cell's content from the row. */
  function table(captionZh, captionEn, columns, rows, rowClass) {
    const t = el("table");
    t.append(el("caption", {}, ...bilingual(captionZh, captionEn)));
    const head = el("tr");
    for (const [, zh, en, opt] of columns) {
      head.append(el("th", { scope: "col", class: opt && opt.num ? "num" : null }, ...bilingual(zh, en)));
    }
    t.append(el("thead", {}, head));
    const body = el("tbody");
    if (!rows.length) {
      body.append(el("tr", {}, el("td", { colspan: columns.length, class: "muted" }, "无 — none")));
    }
    for (const row of rows) {
      const tr = el("tr", { class: rowClass ? rowClass(row) : null });
      for (const [key, , , opt] of columns) {
        const content = opt && opt.cell ? opt.cell(row) : row[key];
        const td = el("td", { class: opt && opt.num ? "num" : (opt && opt.time) || key === "due" ? "time" : null });
        if (content instanceof Node) td.append(content);
        else td.textContent = content === null || content === undefined || content === "" ? "—" : String(content);
        tr.append(td);
      }
      body.append(tr);
    }
    t.append(body);
    return t;
  }

  function kv(target, pairs) {
    const dl = document.getElementById(target);
    dl.replaceChildren();
    for (const [zh, en, value] of pairs) {
      dl.append(el("dt", {}, ...bilingual(zh, en)));
      const dd = el("dd");
      if (value instanceof Node) dd.append(value);
      else dd.textContent = value === null || value === undefined || value === "" ? "—" : String(value);
      dl.append(dd);
    }
  }

  function deadlineBadge(item) {
    if (item.days_left === null || item.days_left === undefined) {
      return el("span", { class: "badge plain", text: "无期限 no deadline" });
    }
    if (item.overdue) {
      return el("span", { class: "badge bad", text: "逾期 " + -item.days_left + " 天 overdue " + -item.days_left + "d" });
    }
    if (item.days_left <= 2) {
      return el("span", { class: "badge warn", text: "剩 " + item.days_left + " 天 due in " + item.days_left + "d" });
    }
    return el("span", { class: "badge good", text: "剩 " + item.days_left + " 天 " + item.days_left + "d left" });
  }

  function expiryBadge(state) {
    const cls = state === "valid" ? "good" : state === "expires soon" ? "warn" : "bad";
    const zh = { valid: "有效", "expires soon": "即将到期", EXPIRED: "已过期", REVOKED: "已撤销", "not yet valid": "尚未生效" }[state] || "";
    return el("span", { class: "badge " + cls, text: (zh + " " + state).trim() });
  }

  function chart(id) {
    const node = document.getElementById(id);
    const existing = echarts.getInstanceByDom(node);
    const instance = existing || echarts.init(node, null, { renderer: "canvas" });
    window.addEventListener("resize", () => instance.resize());
    return instance;
  }

  function header(session) {
    const top = document.getElementById("top");
    const page = document.body.dataset.page;
    const list = el("ul");
    for (const [id, href, zh, en] of PAGES) {
      list.append(el("li", {}, el("a", { href: href, "aria-current": id === page ? "page" : null }, zh + " ", el("span", { lang: "en", text: en }))));
    }
    top.replaceChildren(
      el("div", { class: "brand" },
        el("strong", { text: "互信 运营控制台" }),
        el("span", { lang: "en", text: "Huxin operator console" }),
        el("span", { class: "who" }, "地区 region " + session.region + " · 运营方 operator " + session.operator + " · " + session.today)),
      el("nav", { "aria-label": "控制台页面 Console pages" }, list),
    );
  }

  /* -- pages ----------------------------------------------------------------------- */

  async function grades() {
    const months = new URLSearchParams(location.search).get("months") || "12";
    const doc = await api("/console/api/grades?months=" + encodeURIComponent(months));
    const periods = doc.months.map((m) => m.period);
    const series = doc.grades.map((g, i) => ({
      name: doc.labels[g] && doc.labels[g] !== g ? g + " " + doc.labels[g] : g,
      id: g,
      type: "bar",
      stack: "people",
      barMaxWidth: 120,
      emphasis: { focus: "series" },
      itemStyle: { color: g === "-" ? "#9e9e9e" : gradeColour(i, doc.grades.length - 1) },
      data: doc.months.map((m) => m.counts[g]),
    }));
    const c = chart("grades-chart");
    c.setOption({
      animation: false,
      title: { text: "各月等级人数 People per grade (" + doc.scheme + ")", left: "center", textStyle: { fontSize: 14 } },
      tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
      legend: { bottom: 0 },
      grid: { left: 60, right: 20, top: 40, bottom: 60 },
      xAxis: { type: "category", data: periods, name: "月份 month" },
      yAxis: { type: "value", name: "人数 people", minInterval: 1 },
      series: series,
    });
    const columns = [["period", "月份", "month"], ["scheme", "评分版本", "scheme"]];
    for (const g of doc.grades) columns.push([g, doc.labels[g] || g, g, { num: true, cell: (r) => r.counts[g] }]);
    columns.push(["people", "合计", "total", { num: true }]);
    document.getElementById("grades-table").replaceChildren(
      table("各月等级分布", "Grade counts by month", columns, doc.months.slice().reverse()));
    if (!doc.months.length) status("尚无已发布的月度等级 — No month published yet");
  }

  async function model() {
    const doc = await api("/console/api/model");
    const steps = document.getElementById("stages");
    steps.replaceChildren(...STAGES.map(([id, zh, en]) =>
      el("li", { class: id === doc.stage ? "now" : null, "aria-current": id === doc.stage ? "step" : null }, zh + " ", el("span", { lang: "en", text: en }))));
    kv("rollout", [
      ["评分方案", "scheme", doc.scheme],
      ["生效版本", "version in force", doc.version_in_force],
      ["现行版本", "current version", doc.current_version + " (" + doc.current_since + ")"],
      ["候选版本", "candidate", doc.candidate_version],
      ["试运行开始", "trial started", doc.trial_started],
      ["生效日期", "effective", doc.effective],
      ["影子评分版本", "shadow version", doc.shadow_version],
      ["需复审", "revision due", doc.revision_due ? "是 yes" : "否 no"],
    ]);
    const ev = doc.evaluation || {};
    const th = doc.thresholds;
    kv("evaluation", [
      ["评估人数", "people evaluated", ev.people],
      ["PSI（上限）", "PSI (ceiling)", ev.psi === undefined ? null : ev.psi.toFixed(4) + " (≤ " + th.max_psi + ")"],
      ["上升 / 下降", "moved up / down", ev.people === undefined ? null : ev.moved_up + " / " + ev.moved_down],
      ["AUC（下限）", "AUC (floor)", ev.auc === undefined || ev.auc === null ? null : ev.auc.toFixed(3) + (th.min_auc === null ? "" : " (≥ " + th.min_auc + ")")],
      ["KS（下限）", "KS (floor)", ev.ks === undefined || ev.ks === null ? null : ev.ks.toFixed(3) + (th.min_ks === null ? "" : " (≥ " + th.min_ks + ")")],
      ["月度 PSI 最大", "max monthly PSI", ev.monthly_psi === undefined || ev.monthly_psi === null ? null : ev.monthly_psi.toFixed(4)],
      ["最短试运行天数", "min trial days", th.min_trial_days],
    ]);
    const sh = doc.shadow;
    if (sh && sh.current_distribution && sh.candidate_distribution) {
      const gradesSeen = Array.from(new Set(Object.keys(sh.current_distribution).concat(Object.keys(sh.candidate_distribution))));
      chart("shadow-chart").setOption({
        animation: false,
        tooltip: { trigger: "axis" },
        legend: { bottom: 0 },
        xAxis: { type: "category", data: gradesSeen, name: "等级 grade" },
        yAxis: { type: "value", name: "人数 people" },
        series: [
          { name: "现行 " + sh.current, type: "bar", data: gradesSeen.map((g) => sh.current_distribution[g] || 0) },
          { name: "候选 " + sh.candidate, type: "bar", data: gradesSeen.map((g) => sh.candidate_distribution[g] || 0) },
        ],
      });
    } else {
      document.getElementById("shadow-chart").hidden = true;
      document.getElementById("shadow-none").hidden = false;
    }
    document.getElementById("runs").replaceChildren(table("最近的月度运行", "Latest monthly runs", [
      ["period", "月份", "month"],
      ["scheme", "版本", "scheme"],
      ["state", "状态", "state", { cell: (r) => el("span", { class: "badge " + (r.state === "finished" ? "good" : r.state === "failed" ? "bad" : "warn"), text: r.state }) }],
      ["progress", "进度", "progress", { cell: (r) => r.chunks_done + "/" + r.chunks + " · " + r.people_done + "/" + r.people }],
      ["attempts", "尝试", "attempts", { num: true }],
      ["started_at", "开始", "started", { time: true, cell: (r) => when(r.started_at) }],
      ["finished_at", "完成", "finished", { time: true, cell: (r) => when(r.finished_at) }],
      ["error", "错误", "error"],
    ], doc.runs));
  }

  function resolveForm(item) {
    const outcome = el("select", { name: "outcome", "aria-label": "处理结果 outcome for " + item.objection_id },
      el("option", { value: "upheld", text: "维持 upheld" }),
      el("option", { value: "corrected", text: "更正 corrected" }));
    const note = el("input", { type: "text", name: "note", maxlength: "512", placeholder: "说明 note (optional)", "aria-label": "说明 note for " + item.objection_id });
    const button = el("button", { type: "submit", "data-objection": item.objection_id }, "处理 Resolve");
    const form = el("form", { class: "resolve", "data-objection": item.objection_id }, outcome, note, button);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      button.disabled = true;
      try {
        const answered = await api("/console/api/objections/" + encodeURIComponent(item.objection_id) + "/resolve", {
          method: "POST",
          headers: { Accept: "application/json", "Content-Type": "application/json", "X-Requested-With": "huxin-console" },
          body: JSON.stringify({ outcome: outcome.value, note: note.value }),
        });
        status("异议 " + answered.objection_id + " 已处理：" + answered.outcome + "（" + (STATES[answered.state] || answered.state) + "） — Objection resolved", "ok");
        await rights(true);
      } catch (e) {
        status("未能处理 Not resolved: " + e.message, "error");
        button.disabled = false;
      }
    });
    return form;
  }

  /* What the operator can do about an objection: resolve it (its own handling or the
   * score itself, while it waits for the operator), or see who acts next. */
  function objectionAction(r) {
    if (r.operator_resolves) return resolveForm(r);
    const next = r.state === "answered" ? "已答复，待通知本人 the citizen is told next"
      : r.kind === "record" ? "由来源答复 the source answers"
      : "—";
    return el("span", { class: "muted", text: next });
  }

  async function rights(keepStatus) {
    const doc = await api("/console/api/rights");
    const objections = table("未结异议 " + doc.objections.length + "/" + doc.objections_total, "open objections (today " + doc.today + ")", [
      ["deadline", "期限", "deadline", { cell: deadlineBadge }],
      ["objection_id", "编号", "id", { cell: (r) => el("code", { text: r.objection_id }) }],
      ["kind", "类型", "kind", { cell: (r) => KINDS[r.kind] || r.kind }],
      ["subject", "对象", "about", { cell: (r) => r.kind === "score" ? "评分 score " + r.period : r.record_id }],
      ["source", "来源", "source"],
      ["state", "状态", "state", { cell: (r) => STATES[r.state] || r.state }],
      ["waiting_for", "当前步骤", "step", { cell: (r) => STEPS[r.waiting_for] || r.waiting_for }],
      ["deadlines", "各步骤期限", "every step", { time: true, cell: (r) => el("div", {}, ...Object.entries(r.deadlines).map(([s, d]) => el("div", { text: (STEPS[s] || s) + " " + d }))) }],
      ["filed_at", "受理时间", "filed", { time: true, cell: (r) => when(r.filed_at) }],
      ["reason", "理由", "reason"],
      ["action", "操作", "action", { cell: objectionAction }],
    ], doc.objections, (r) => r.overdue ? "overdue" : null);
    objections.id = "objections-table";
    document.getElementById("objections").replaceChildren(objections);
    document.getElementById("repairs").replaceChildren(table("修复申请（待决定 " + doc.repairs_pending + "）", "repair applications", [
      ["deadline", "期限", "deadline", { cell: (r) => r.state === "pending" ? deadlineBadge(r) : el("span", { class: "badge plain", text: STATES[r.state] || r.state }) }],
      ["application_id", "编号", "id", { cell: (r) => el("code", { text: r.application_id }) }],
      ["record_id", "记录", "record"],
      ["department", "部门", "department"],
      ["route", "修复方式", "route"],
      ["state", "状态", "state", { cell: (r) => STATES[r.state] || r.state }],
      ["due", "截止", "due"],
      ["escalated", "已提醒", "escalated", { cell: (r) => r.escalated ? "是 yes" : "否 no" }],
      ["filed_at", "申请时间", "filed", { time: true, cell: (r) => when(r.filed_at) }],
      ["decided_at", "决定时间", "decided", { time: true, cell: (r) => when(r.decided_at) }],
    ], doc.repairs, (r) => r.overdue ? "overdue" : null));
    if (!keepStatus) status("");
  }

  async function review() {
    const doc = await api("/console/api/review");
    document.getElementById("q-total").textContent = "登记查询总数 queries registered: " + doc.total_queries;
    document.getElementById("queries").replaceChildren(table("按请求方与用途", "by requester and purpose", [
      ["requester", "请求方", "requester"],
      ["purpose", "用途", "purpose"],
      ["issued", "已出具", "issued", { num: true }],
      ["refused", "已拒绝", "refused", { num: true }],
      ["refusals", "拒绝原因", "refusals", { cell: (r) => Object.entries(r.refusals).map(([k, v]) => k + " ×" + v).join(", ") }],
    ], doc.queries));
    document.getElementById("flagged").replaceChildren(table("超出同意范围 " + doc.flagged.length + "/" + doc.flagged_total, "outside the consent", [
      ["flag", "标记", "flag", { cell: (r) => el("span", { class: "badge bad", text: ((FLAGS[r.flag] || "") + " " + r.flag).trim() }) }],
      ["requester", "请求方", "requester"],
      ["purpose", "请求用途", "purpose asked"],
      ["consented_purpose", "同意用途", "purpose consented"],
      ["consent_id", "同意编号", "consent"],
      ["timestamp", "时间", "time", { time: true, cell: (r) => when(new Date(r.timestamp * 1000).toISOString()) }],
      ["outcome", "结果", "outcome"],
    ], doc.flagged));
    document.getElementById("sources").replaceChildren(table("各来源报送", "records per source", [
      ["source", "来源部门", "source"],
      ["records", "记录数", "records", { num: true }],
      ["late_records", "逾期报送（15个工作日）", "shared late (15 working days)", { num: true }],
      ["missed", "错过异议期限", "objection deadlines missed", { num: true, cell: (r) => (doc.late_sources.find((s) => s.source === r.source) || {}).missed_objection_deadlines || 0 }],
      ["last_submitted", "最近报送", "last shared", { time: true, cell: (r) => when(r.last_submitted) }],
    ], doc.sources));
    if (doc.sources.length) {
      chart("sources-chart").setOption({
        animation: false,
        tooltip: { trigger: "axis" },
        legend: { bottom: 0 },
        grid: { left: 60, right: 20, top: 20, bottom: 60 },
        xAxis: { type: "category", data: doc.sources.map((s) => s.source) },
        yAxis: { type: "value", minInterval: 1 },
        series: [
          { name: "按时 on time", type: "bar", stack: "r", barMaxWidth: 90, itemStyle: { color: "#4caf50" }, data: doc.sources.map((s) => s.records - s.late_records) },
          { name: "逾期 late", type: "bar", stack: "r", barMaxWidth: 90, itemStyle: { color: "#e53935" }, data: doc.sources.map((s) => s.late_records) },
        ],
      });
    } else {
      document.getElementById("sources-chart").hidden = true;
    }
    document.getElementById("objection-states").replaceChildren(table("异议状态", "objections by state", [
      ["state", "状态", "state", { cell: (r) => STATES[r.state] || r.state }],
      ["n", "数量", "count", { num: true }],
    ], Object.entries(doc.objections).map(([state, n]) => ({ state: state, n: n }))));
    document.getElementById("overdue-steps").replaceChildren(table("逾期步骤", "overdue steps", [
      ["objection_id", "异议", "objection"],
      ["source", "来源", "source"],
      ["waiting_for", "步骤", "step", { cell: (r) => STEPS[r.waiting_for] || r.waiting_for }],
      ["due", "截止", "due"],
    ], doc.overdue_objection_steps));
  }

  async function federation() {
    const doc = await api("/console/api/federation");
    const tl = doc.trust_list;
    if (tl.static_peers) {
      kv("trust", [["模式", "mode", "独立节点（静态对等） standalone, static peers"], ["对等节点", "peers", tl.static_peers.join(", ")]]);
    } else {
      kv("trust", [
        ["签发方", "issuer", tl.issuer],
        ["版本", "version", tl.version],
        ["到期", "expires", when(tl.expires_at)],
        ["状态", "state", expiryBadge(tl.expired ? "EXPIRED" : tl.days_left < 2 ? "expires soon" : "valid")],
        ["剩余天数", "days left", tl.days_left],
        ["接受时间", "accepted", when(tl.accepted_at)],
        ["地区数", "regions listed", tl.regions],
      ]);
    }
    const cert = doc.certificate;
    kv("cert", cert.error ? [["错误", "error", cert.error]] : [
      ["身份", "identity", cert.region],
      ["状态", "state", expiryBadge(cert.state)],
      ["有效期至", "valid until", when(cert.not_after)],
      ["剩余天数", "days left", cert.days_left],
    ]);
    const key = doc.signing_key;
    kv("key", key.error ? [["错误", "error", key.error]] : [
      ["密钥编号", "key id", key.key_id],
      ["密钥集版本", "key set version", key.key_set_version],
      ["状态", "state", expiryBadge(key.state)],
      ["有效期至", "valid until", when(key.not_after)],
      ["剩余天数", "days left", key.days_left],
    ]);
    document.getElementById("peers").replaceChildren(table("对等节点", "peers (" + doc.region + ", role " + doc.role + ", route " + doc.route + ")", [
      ["peer", "节点", "peer"],
      ["listed", "已列入", "listed", { cell: (r) => r.static ? el("span", { class: "badge plain", text: "静态 static" }) : el("span", { class: "badge " + (r.listed ? "good" : "bad"), text: r.listed ? "是 yes" : "否 no" }) }],
      ["endpoints", "地址", "endpoints", { cell: (r) => r.endpoints.join(", ") }],
      ["keys", "密钥集版本", "key set", { cell: (r) => r.keys ? "v" + r.keys.version : "—" }],
      ["key_expiry", "密钥到期", "key expiry", { cell: (r) => r.keys && r.keys.state ? el("span", {}, expiryBadge(r.keys.state), " " + when(r.keys.not_after)) : "—" }],
      ["last_success", "最近同步", "last sync", { time: true, cell: (r) => when(r.last_success) }],
      ["failures", "失败次数", "failures", { num: true }],
      ["next_attempt", "下次尝试", "next attempt", { time: true, cell: (r) => when(r.next_attempt) }],
      ["last_error", "最近错误", "last error"],
    ], doc.peers));
    document.getElementById("push").replaceChildren(table("推送游标", "push cursor", [
      ["hub", "枢纽", "hub"],
      ["cursor", "游标", "cursor", { num: true }],
      ["outbox_seq", "发件箱序号", "outbox seq", { num: true }],
      ["behind", "待推送", "behind", { num: true }],
      ["last_push", "最近推送", "last push", { time: true, cell: (r) => when(r.last_push) }],
      ["failures", "失败次数", "failures", { num: true }],
      ["last_error", "最近错误", "last error"],
    ], doc.push));
    document.getElementById("refusals").replaceChildren(table("最近拒绝", "latest refusals", [
      ["at", "时间", "at", { time: true, cell: (r) => when(r.at) }],
      ["source", "来源", "source"],
      ["version", "版本", "version", { num: true }],
      ["reason", "原因", "reason"],
    ], doc.trust_refusals));
  }

  const RENDER = { grades: grades, model: model, rights: rights, review: review, federation: federation };

  async function start() {
    const page = document.body.dataset.page;
    try {
      header(await api("/console/api/session"));
      status("加载中… Loading…");
      await RENDER[page]();
      if (document.getElementById("status").className === "") status("");
      document.body.dataset.ready = "1";
    } catch (e) {
      status("无法加载 Cannot load: " + e.message, "error");
      document.body.dataset.ready = "error";
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
