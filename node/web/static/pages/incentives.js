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
        e.sector || e.domain ? el("span", { class: "badge", text: e.sector || e.domain }) : null
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

  function catalogueList(entries, grade, canGrant) {
    if (!entries.length) return el("p", { class: "muted", text: t("没有激励场景。", "No incentive scenarios.") });
    const sorted = [...entries].sort((a, b) => qualifies(b, grade) - qualifies(a, grade));
    return el("ul", { class: "incentives" }, sorted.map((e) => entryCard(e, qualifies(e, grade), canGrant)));
  }

  function qualifies(e, grade) {
    return e.qualifies !== undefined ? Boolean(e.qualifies) : Boolean(grade && (e.qualifying_grades || []).includes(grade));
  }

  H.page(async () => {
    const [data, score] = await Promise.all([
      H.api("GET", H.API.incentives),
      H.api("GET", H.API.score).catch(() => ({})),
    ]);
    const grade = (score.result && score.result.grade) || data.grade || "";
    const own = data.catalogue || data;
    const ownBox = H.clear(document.getElementById("own"));
    ownBox.append(
      el(
        "p",
        { class: "muted" },
        t(`我的等级：${grade || "—"} · 目录 ${own.catalogue_version || ""}（${own.published_on || ""} 发布）`, `My grade: ${grade || "—"} · catalogue ${own.catalogue_version || ""} (published ${own.published_on || ""})`)
      ),
      catalogueList(own.entries || [], grade, true)
    );
    const others = H.clear(document.getElementById("others"));
    const elsewhere = data.elsewhere || data.recognised || [];
    if (!elsewhere.length) {
      others.append(el("p", { class: "muted", text: t("暂无其他地区的互认信息。", "No recognition in other regions yet.") }));
      return;
    }
    for (const r of elsewhere) {
      const head = r.grade
        ? t(`${r.region}：互认等级 ${r.grade}`, `${r.region}: recognised as ${r.grade}`)
        : t(`${r.region}：您的等级在该地区未获互认`, `${r.region}: your grade is not recognised there`);
      others.append(el("h3", { text: head }), r.grade ? catalogueList(r.entries || r.scenarios || [], r.grade, true) : null);
    }
  });
})();
