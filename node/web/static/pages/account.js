/* Notices, opt-out and opt-in (N3), deregistration (N4): each action first says what happens. */
"use strict";

(function () {
  const H = window.Huxin;
  const { el, t, term } = H;

  async function drawNotices() {
    const data = await H.api("GET", H.API.notifications);
    const list = data.notifications || [];
    H.clear(document.getElementById("notices")).append(
      list.length
        ? el("ul", { class: "notices" }, [...list].reverse().map((n) => el("li", {}, el("time", { text: H.fmtTime(n.at) }), " ", el("span", { class: "badge", text: term("kind", n.kind) }), " ", el("span", { class: "message", lang: "en", text: n.message }))))
        : el("p", { class: "muted", text: t("没有通知。", "No notices.") })
    );
  }

  async function drawOptOut() {
    const score = await H.api("GET", H.API.score).catch(() => ({}));
    const out = Boolean(score.opted_out);
    document.getElementById("optout-btn").hidden = out;
    document.getElementById("optin-btn").hidden = !out;
    document.getElementById("optout-state").textContent = out
      ? t(`您已于 ${H.fmtTime(score.opted_out_at)} 选择不参与评分。`, `You opted out on ${H.fmtTime(score.opted_out_at)}.`)
      : t("您目前参与评分。", "You are being scored.");
  }

  async function optOut() {
    const ok = await H.confirmDialog({
      title: t("确定不参与评分？", "Opt out of being scored?"),
      body: [
        t("您将没有分数，所有有效授权立即终止，已出具的证明被撤销。", "You will have no score; every active consent ends now and the attestations issued with them are revoked."),
        t("您的记录会保留。您可以随时在本页重新参与评分。", "Your records are kept. You can be scored again on this page at any time."),
      ],
      confirmLabel: t("确定不参与", "Opt out"),
      danger: true,
    });
    if (!ok) return;
    try {
      const r = await H.api("POST", H.API.optOut, { confirm: true });
      H.showNotice(t(`已不参与评分：终止授权 ${H.num(r.consents_ended)} 项，撤销证明 ${H.num(r.attestations_revoked)} 份。`, `Opted out: ${H.num(r.consents_ended)} consents ended, ${H.num(r.attestations_revoked)} attestations revoked.`));
      await drawOptOut();
    } catch (e) {
      H.showError(e);
    }
  }

  async function optIn() {
    try {
      await H.api("POST", H.API.optIn, {});
      H.showNotice(t("已重新参与评分，下次公布时将有分数。", "You are scored again from the next publication."));
      await drawOptOut();
    } catch (e) {
      H.showError(e);
    }
  }

  async function deregister() {
    const word = t("注销", "DELETE");
    const ok = await H.confirmDialog({
      title: t("注销并删除全部数据？", "Deregister and delete everything?"),
      body: [
        t("本节点保存的关于您的记录、授权、异议、补充信息和通知将全部删除。", "Your records, consents, objections, supplements and notices held by this node are all deleted."),
        t("已出具的证明会被撤销；此后部门报送的关于您的记录会被拒收，直到您重新登记。此操作不可恢复。", "Attestations issued about you are revoked; records about you are refused until you register again. This cannot be undone."),
      ],
      confirmLabel: t("注销", "Deregister"),
      danger: true,
      typeToConfirm: word,
    });
    if (!ok) return;
    try {
      const r = await H.api("POST", H.API.deregister, { confirm: true });
      document.getElementById("dereg-result").textContent = t(
        `已注销：删除记录 ${H.num(r.records_deleted)} 条、授权 ${H.num(r.consents_deleted)} 项，撤销证明 ${H.num(r.attestations_revoked)} 份${r.hub_notified ? "，已通知省级枢纽" : ""}。`,
        `Deregistered: ${H.num(r.records_deleted)} records and ${H.num(r.consents_deleted)} consents deleted, ${H.num(r.attestations_revoked)} attestations revoked${r.hub_notified ? ", the hub is told" : ""}.`
      );
      // the node ends every session of a deregistered person: registering again
      // signs in first, and the sign-in brings them back here with the button shown
      history.replaceState(null, "", "/account?again=1");
      document.getElementById("register-btn").hidden = false;
    } catch (e) {
      H.showError(e);
    }
  }

  async function register() {
    try {
      await H.api("POST", H.API.register, {});
      document.getElementById("register-btn").hidden = true;
      history.replaceState(null, "", "/account");
      H.showNotice(t("已重新登记：部门报送的关于您的记录将重新被接收。", "Registered again: records about you are accepted again."));
    } catch (e) {
      H.showError(e);
    }
  }

  let wired = false;
  H.page(async () => {
    if (!wired) {
      wired = true;
      document.getElementById("optout-btn").addEventListener("click", optOut);
      document.getElementById("optin-btn").addEventListener("click", optIn);
      document.getElementById("dereg-btn").addEventListener("click", deregister);
      document.getElementById("register-btn").addEventListener("click", register);
    }
    if (new URLSearchParams(location.search).get("again") === "1") {
      document.getElementById("register-btn").hidden = false;
    }
    await Promise.all([drawNotices(), drawOptOut()]);
  });
})();
