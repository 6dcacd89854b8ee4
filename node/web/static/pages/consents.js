/* My consents and withdrawing one (a withdrawal is final and logged). */
"use strict";

(function () {
  const H = window.Huxin;
  const { el, t, term } = H;

  async function withdraw(info) {
    const g = info.grant || {};
    const ok = await H.confirmDialog({
      title: t("撤回这项授权？", "Withdraw this consent?"),
      body: [
        t(`${g.audience} 将不能再用这项授权查询您（${g.purpose}），凭它已出具的证明也会被撤销。`, `${g.audience} cannot use it to check you again (${g.purpose}), and the attestations issued with it are revoked.`),
        t("撤回会记入透明日志，不能恢复；需要时可以重新授权。", "The withdrawal is logged and cannot be undone; you can grant a new consent when you need one."),
      ],
      confirmLabel: t("撤回授权", "Withdraw"),
      danger: true,
    });
    if (!ok) return;
    try {
      await H.api("POST", H.API.withdraw, { consent_id: g.consent_id });
      H.showNotice(t(`已撤回授权 ${g.consent_id}。`, `Consent ${g.consent_id} withdrawn.`));
      await render();
    } catch (e) {
      H.showError(e);
    }
  }

  async function render() {
    const data = await H.api("GET", H.API.consents);
    const box = H.clear(document.getElementById("consent-list"));
    const list = data.consents || [];
    if (!list.length) {
      box.append(el("p", { class: "muted", text: t("您还没有授权。", "You have granted no consent.") }));
      return;
    }
    const ul = el("ul", { class: "consents" });
    for (const info of list) {
      const g = info.grant || {};
      const state = H.enumName(info.state, "CONSENT_STATE_");
      ul.append(
        el(
          "li",
          { class: "consent state-" + state, "data-consent-id": g.consent_id },
          el("h3", {}, g.audience, " · ", el("span", { class: "badge " + (state === "active" ? "ok" : ""), text: term("consent", state) })),
          el(
            "dl",
            { class: "facts" },
            el("dt", { text: t("场景", "Scenario") }),
            el("dd", { text: g.purpose }),
            el("dt", { text: t("对方能看到", "They see") }),
            el("dd", { text: term("disclosure", H.enumName(g.scope, "CONSENT_SCOPE_")) }),
            el("dt", { text: t("授权时间", "Granted") }),
            el("dd", { text: H.fmtTime(g.granted_at) }),
            el("dt", { text: t("有效期至", "Valid until") }),
            el("dd", { text: H.fmtTime(g.not_after) }),
            el("dt", { text: t("已使用", "Used") }),
            el("dd", { text: `${H.num(info.uses)} / ${H.num(g.max_uses)}` }),
            H.num(info.withdrawn_at) ? [el("dt", { text: t("撤回时间", "Withdrawn") }), el("dd", { text: H.fmtTime(info.withdrawn_at) })] : null,
            el("dt", { text: t("授权编号", "Consent id") }),
            el("dd", {}, el("code", { text: g.consent_id }))
          ),
          state === "active"
            ? el("button", {
                type: "button",
                class: "danger",
                onclick: () => withdraw(info),
                "aria-label": t(`撤回给 ${g.audience} 的授权`, `Withdraw the consent to ${g.audience}`),
                text: t("撤回", "Withdraw"),
              })
            : null
        )
      );
    }
    box.append(ul);
  }

  H.page(render);
})();
