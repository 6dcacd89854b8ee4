/* The incentives I qualify for: my region's catalogue and, through recognition, others' (H14, N20). */
"use strict";

(function () {
  const H = window.Huxin;
  const { el, t, term } = H;

  function entryCard(e, qualifies, canGrant) {
    const title = H.lang() === "en" && e.title_en ? e.title_en : e.title;
    const grades = (e.qualifying_grades || []).join(" / ");
    return el(
      "li",
      { class: "incentive" + (qualifies ? " yes" : "") },
      el("h3", { text: title }),
      el(
        "p",
        { class: "tags" },
        el("span", { class: qualifies ? "badge ok" : "badge", text: qualifies ? t("您符合条件", "You qualify") : t("暂不符合", "Not yet") }),
        el("span", { class: "badge", text: term("effect", e.effect) }),
        e.sector || e.domain ? el("span", { class: "badge", text: term("sector", e.sector || e.domain) }) : null
      ),
      el(
        "dl",
        { class: "facts" },
        el("dt", { text: t("适用等级", "Grades") }),
        el("dd", { text: grades || e.min_grade || "—" }),
        e.provider ? [el("dt", { text: t("办理单位", "Provided by") }), el("dd", { text: e.provider })] : null,
        el("dt", { text: t("对方能看到", "They see") }),
        el("dd", { text: term("disclosure", e.disclosure || "threshold") })
      ),
      e.how_to_apply ? el("details", {}, el("summary", { text: t("如何申请", "How to apply") }), el("p", { text: e.how_to_apply })) : null,
      qualifies && canGrant && e.ref
        ? el("a", { class: "button", href: "/consent?scenario=" + encodeURIComponent(e.ref), text: t("为此授权", "Grant a consent for this") })
        : null
    );
  }

  function catalogueList(entries, qualifying) {
    if (!entries.length) return el("p", { class: "muted", text: t("没有激励场景。", "No incentive scenarios.") });
    const open = entries.filter((e) => qualifying.has(e.ref));
    const rest = entries.filter((e) => !qualifying.has(e.ref));
    return [
      open.length ? el("ul", { class: "incentives" }, open.map((e) => entryCard(e, true, true))) : el("p", { class: "muted", text: t("您的等级暂不符合本地区的激励场景。", "Your grade does not open any of your region's scenarios yet.") }),
      // the rest folded: what is open comes first on a phone
      rest.length
        ? el("details", { class: "not-yet" }, el("summary", { text: t(`暂不符合的激励（${rest.length} 项）`, `Not yet open to you (${rest.length})`) }), el("ul", { class: "incentives" }, rest.map((e) => entryCard(e, false, false))))
        : null,
    ];
  }

  function origin(r) {
    if (r.origin === "shipped") return t("随软件发布的目录", "the catalogue shipped with the software");
    if (r.origin.startsWith("fetched from ")) return t(`从 ${r.origin.slice(13)} 获取并验证的目录`, `catalogue ${r.origin}`);
    return r.origin;
  }

  H.page(async () => {
    const [mine, catalogue] = await Promise.all([H.api("GET", H.API.incentives), H.api("GET", H.API.catalogue)]);
    const regions = mine.regions || [];
    const home = regions[0] || { scenarios: [] };
    const ownBox = H.clear(document.getElementById("own"));
    if (mine.opted_out) {
      ownBox.append(el("p", { class: "notice", text: t("您已选择不参与评分，因此暂时不能享受激励。", "You opted out of being scored, so no incentive is open to you.") }));
    } else if (!mine.grade) {
      ownBox.append(el("p", { class: "notice", text: t("您还没有公布的信用等级。", "You have no published grade yet.") }));
    }
    ownBox.append(
      el(
        "p",
        { class: "muted", id: "my-grade" },
        t(
          `我的等级：${mine.grade || "—"}（${mine.period || "—"} 月）· 目录 ${catalogue.catalogue_version || ""}（${catalogue.published_on || ""} 发布）`,
          `My grade: ${mine.grade || "—"} (${mine.period || "—"}) · catalogue ${catalogue.catalogue_version || ""} (published ${catalogue.published_on || ""})`
        )
      ),
      ...catalogueList(catalogue.entries || [], new Set((home.scenarios || []).map((s) => s.ref))).filter(Boolean)
    );
    const others = H.clear(document.getElementById("others"));
    const elsewhere = regions.slice(1);
    if (!elsewhere.length) {
      others.append(el("p", { class: "muted", text: t("暂无其他地区的互认信息。", "No recognition in other regions yet.") }));
      return;
    }
    for (const r of elsewhere) {
      const scenarios = r.scenarios || [];
      const head = r.grade
        ? t(`${r.region}：互认等级 ${r.grade}`, `${r.region}: recognised as ${r.grade}`)
        : t(`${r.region}：您的等级在该地区未获互认`, `${r.region}: your grade is not recognised there`);
      others.append(
        el(
          "section",
          { class: "region", "data-region": r.region },
          el("h3", { text: head }),
          el("p", { class: "muted", text: `${r.scheme} · ${origin(r)}` }),
          r.grade
            ? scenarios.length
              ? el("ul", { class: "incentives" }, scenarios.map((e) => entryCard(e, true, true)))
              : el("p", { class: "muted", text: t("该等级在那里暂无可享受的激励。", "That grade unlocks no incentive there.") })
            : null
        )
      );
    }
  });
})();
