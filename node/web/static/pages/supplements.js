/* Supplements (N9): personal supplementary information, verified by a department. */
"use strict";

(function () {
  const H = window.Huxin;
  const { el, t, term } = H;

  function item(s) {
    return el(
      "li",
      { class: "supplement" },
      el("h3", {}, `${s.category}${s.level ? " · " + s.level : ""} · ${s.act_id}`, " ", el("span", { class: "badge" + (s.state === "verified" ? " ok" : ""), text: term("supplement", s.state) })),
      el(
        "dl",
        { class: "facts" },
        el("dt", { text: t("认定日期", "Recognised") }),
        el("dd", { text: s.recognised_on }),
        el("dt", { text: t("核实部门", "Verifier") }),
        el("dd", { text: s.verifier }),
        el("dt", { text: t("提交时间", "Submitted") }),
        el("dd", { text: H.fmtTime(s.submitted_at) }),
        s.description ? [el("dt", { text: t("说明", "Description") }), el("dd", { text: s.description })] : null,
        s.reason ? [el("dt", { text: t("未通过原因", "Why rejected") }), el("dd", { text: s.reason })] : null,
        s.record_id ? [el("dt", { text: t("生成的记录", "Record") }), el("dd", { text: s.record_id })] : null
      )
    );
  }

  async function drawList() {
    const data = await H.api("GET", H.API.supplements);
    const list = data.supplements || [];
    H.clear(document.getElementById("supplement-list")).append(
      list.length ? el("ul", { class: "supplements" }, list.map(item)) : el("p", { class: "muted", text: t("您没有补充信息。", "You have added no supplement.") })
    );
  }

  async function submit(ev) {
    ev.preventDefault();
    const f = ev.target;
    H.clearAlert(f);
    if (!f.authorise_verification.checked) {
      H.showError(new H.ApiError(400, { reason: "NOT_CONFIRMED", field: "authorise_verification", message: t("需要授权核实。", "Verification must be authorised.") }), f);
      return;
    }
    const file = f.proof_sha256.files && f.proof_sha256.files[0];
    if (!file) {
      H.showError(new H.ApiError(400, { reason: "INVALID_FIELD", field: "proof_sha256", message: t("请选择证明材料。", "Choose the proof document.") }), f);
      return;
    }
    const btn = document.getElementById("supplement-btn");
    H.setBusy(btn, true);
    try {
      const digest = await H.sha256(new Uint8Array(await file.arrayBuffer()));
      const s = await H.api("POST", H.API.supplements, {
        category: f.category.value.trim(),
        level: f.level.value.trim(),
        act_id: f.act_id.value.trim(),
        recognised_on: f.recognised_on.value,
        verifier: f.verifier.value.trim(),
        proof_sha256: H.b64encode(digest),
        description: f.description.value,
        authorise_verification: true,
      });
      H.showNotice(t(`已提交（${s.supplement_id}），等待 ${s.verifier} 核实。`, `Submitted (${s.supplement_id}); waiting for ${s.verifier} to verify it.`));
      f.reset();
      await drawList();
    } catch (e) {
      H.showError(e, f);
    } finally {
      H.setBusy(btn, false);
    }
  }

  let wired = false;
  H.page(async () => {
    if (!wired) {
      wired = true;
      document.getElementById("supplement-form").addEventListener("submit", submit);
      const score = await H.api("GET", H.API.score).catch(() => ({}));
      const cats = new Map();
      for (const c of (score.result && score.result.contributions) || []) if (c.polarity !== "negative") cats.set(c.category, c.category_name);
      const list = document.getElementById("categories");
      for (const [id, name] of cats) list.append(el("option", { value: id, text: name }));
    }
    await drawList();
  });
})();
