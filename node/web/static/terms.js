/* Huxin citizen pages: the words for the domain's codes, Chinese and English.
 * term(kind, code) gives the word in the current language, or the code itself
 * when there is none (a new code still shows, never an empty cell).
 */
"use strict";

(function () {
  const TERMS = {
    status: {
      counted: ["已计入", "counted"],
      superseded: ["同一行为只计一次", "same act counted once"],
      expired: ["已过有效期", "expired"],
      not_yet_valid: ["尚未生效", "not yet valid"],
      masked: ["异议期间暂不计入", "masked during an objection"],
      repaired: ["已修复", "repaired"],
      revoked: ["已被来源部门撤销", "revoked by the source"],
      excluded_by_rule: ["按规则不计入", "excluded by a rule"],
      capped: ["已达加分上限", "capped"],
    },
    polarity: {
      positive: ["守信激励", "positive"],
      negative: ["失信记录", "negative"],
    },
    objection: {
      received: ["已受理", "received"],
      forwarded: ["已转交来源部门", "forwarded to the source"],
      deemed_accepted: ["来源部门逾期，视为认可异议", "source late: deemed accepted"],
      answered: ["来源部门已答复", "answered by the source department"],
      answered_by_operator: ["运营方已答复", "answered by the operator"],
      replied: ["已答复您", "replied to you"],
    },
    step: {
      handle: ["受理", "handle"],
      forward: ["转交来源部门", "forward to the source"],
      source: ["来源部门核查", "source checks"],
      reply: ["答复本人", "reply to you"],
    },
    outcome: {
      upheld: ["维持原记录", "record upheld"],
      corrected: ["已更正", "corrected"],
    },
    route: {
      commitment: ["信用承诺", "credit commitment"],
      rectification: ["整改纠正", "rectification"],
      verification: ["核实更正", "verification"],
      credit_report: ["提交信用报告", "credit report"],
      charity: ["公益服务", "public-interest service"],
    },
    repair: {
      pending: ["待决定", "pending"],
      granted: ["已准予", "granted"],
      refused: ["未准予", "refused"],
    },
    supplement: {
      pending: ["待核实", "pending"],
      verified: ["已核实并计入", "verified"],
      rejected: ["未通过核实", "rejected"],
    },
    consent: {
      active: ["有效", "active"],
      withdrawn: ["已撤回", "withdrawn"],
      expired: ["已过期", "expired"],
      exhausted: ["次数已用完", "used up"],
      unspecified: ["未知", "unknown"],
    },
    disclosure: {
      threshold: ["仅告知是否达到要求", "only whether you meet it"],
      grade: ["信用等级", "your grade"],
      grade_and_score: ["信用等级和分数", "your grade and score"],
      unspecified: ["仅告知是否达到要求", "only whether you meet it"],
    },
    logkind: {
      consent_granted: ["授权", "consent granted"],
      consent_withdrawn: ["撤回授权", "consent withdrawn"],
      attestation_issued: ["被查询并出具证明", "queried: attestation issued"],
      request_refused: ["查询被拒绝", "query refused"],
      objection_received: ["异议已受理", "objection received"],
      objection_forwarded: ["异议已转交", "objection forwarded"],
      objection_deemed_accepted: ["异议视为认可", "objection deemed accepted"],
      objection_answered: ["异议已答复", "objection answered"],
      objection_replied: ["异议已回复本人", "objection replied"],
      record_repaired: ["记录已修复", "record repaired"],
      supplement_submitted: ["提交补充信息", "supplement submitted"],
      supplement_verified: ["补充信息已核实", "supplement verified"],
      supplement_rejected: ["补充信息未通过", "supplement rejected"],
      deregistered: ["注销", "deregistered"],
      consents_ended: ["授权终止", "consents ended"],
    },
    sector: {
      government_services: ["政务服务", "government services"],
      public_funding: ["财政补贴、项目扶持", "public funding"],
      employment: ["招聘录用、评先评优", "employment"],
      honours: ["荣誉评选", "honours"],
      media: ["媒体推介", "media"],
      transport: ["交通出行", "transport"],
      finance: ["信贷", "finance"],
      insurance: ["保险", "insurance"],
      tourism: ["旅游", "tourism"],
      healthcare: ["医疗", "healthcare"],
      rental: ["租借", "rental"],
      hospitality: ["住宿", "hospitality"],
      vehicles: ["机动车服务", "vehicles"],
      entrepreneurship: ["招商引资、创业", "entrepreneurship"],
      commerce: ["惠民优惠", "commerce"],
      public_service: ["公共服务", "public service"],
      market: ["市场服务", "market"],
      other: ["其他", "other"],
    },
    effect: {
      convenience: ["便利", "convenience"],
      fast_lane: ["绿色通道", "fast lane"],
      priority: ["优先办理", "priority"],
      discount: ["优惠", "discount"],
      deposit_waiver: ["免押金", "deposit waived"],
      credit_terms: ["信贷优惠", "credit terms"],
      recognition: ["表彰", "recognition"],
    },
    field: {
      attestation_id: ["证明编号", "attestation id"],
      audience: ["办理单位", "relying party"],
      consent_id: ["授权编号", "consent id"],
      consent_sha256: ["授权的摘要", "digest of the consent"],
      disclosure: ["披露方式", "disclosure"],
      expires_at: ["证明有效期", "expiry"],
      grade: ["信用等级", "grade"],
      score: ["信用分数", "score"],
      issued_at: ["出具时间", "time issued"],
      issuer_region: ["出具地区", "issuing region"],
      model_version: ["评分模型版本", "model version"],
      nonce: ["对方的一次性随机数", "the relying party's nonce"],
      period: ["信用周期", "period"],
      purpose: ["用途（场景）", "purpose (scenario)"],
      scenario: ["场景", "scenario"],
      scheme_id: ["评分方案", "scheme"],
      scheme_version: ["评分方案版本", "scheme version"],
      "status.index": ["证明的状态编号（用于查验是否撤销）", "status index (to check revocation)"],
      "status.list_id": ["状态列表", "status list"],
      subject_binding: ["与您身份绑定的校验值（不含身份证号）", "a binding to you (no ID number)"],
      "threshold.min_tier": ["场景要求的等级", "the scenario's required grade"],
      "threshold.scheme_id": ["场景所属评分方案", "the scenario's scheme"],
      "threshold.scheme_version": ["场景所属方案版本", "the scenario's scheme version"],
      contributions: ["每一分的来历", "the explained report"],
      id_number: ["身份证号码", "ID number"],
    },
    kind: {
      objection: ["异议", "objection"],
      grade: ["等级变化", "grade"],
      supplement: ["补充信息", "supplement"],
      deregistration: ["注销", "deregistration"],
      consent: ["授权", "consent"],
      repair: ["信用修复", "repair"],
    },
  };

  window.Huxin.term = function term(kind, code) {
    const key = String(code || "");
    const entry = (TERMS[kind] || {})[key];
    if (!entry) return key || "—";
    return window.Huxin.t(entry[0], entry[1]);
  };

  // Who answers an objection (H15, N21): the operator one about a published score or
  // about its own handling (ResolveObjection), the source department one about a
  // record's facts (AnswerObjection); the state "answered" alone does not say which.
  window.Huxin.byOperator = function byOperator(o) {
    return Boolean(o.about_score || o.about_handling);
  };

  // The word for objection ``o`` in ``state`` (its current one when not given).
  window.Huxin.objectionState = function objectionState(o, state) {
    const s = state === undefined ? o.state : state;
    return window.Huxin.term("objection", s === "answered" && window.Huxin.byOperator(o) ? "answered_by_operator" : s);
  };

  // Who handles objection ``o``: the operator, or the department it is forwarded to.
  window.Huxin.objectionHandler = function objectionHandler(o) {
    return window.Huxin.byOperator(o) ? window.Huxin.t("运营方", "the operator") : o.source || "—";
  };
})();
