/* Who queried me and when: the query log, each entry's inclusion proof checked here (H16, N23).
 *
 * "checked" means, all in this browser (docs/adr/0801): the checkpoint's Ed25519 signature
 * verifies with a key of the region's key set valid at its time; the key set verifies with
 * its root key, and that root key is the one this browser saw first for the region
 * (pinned in localStorage); the checkpoint does not contradict the last one this browser
 * saw (no smaller tree, no other root at the same size); and the entry's RFC 9162
 * inclusion proof leads to the checkpoint's root. */
"use strict";

(function () {
  const H = window.Huxin;
  const { el, t, term } = H;
  let rows = []; // [{entry, verified, leaf_index}] across pages, oldest first
  let next = 0;
  let more = false;
  let cp = null;
  let cpProblem = ""; // why the last checkpoint failed its check ("" = it passed)
  let keySet = null;

  const ROOT_PIN = "huxin.root-key:"; // + region: hex of the root key first seen
  const LAST_SEEN = "huxin.log-seen:"; // + log origin: {tree_size, root} of the last checkpoint that passed

  async function regionKeySet() {
    const resp = await fetch("/trust/key-set.bin", { credentials: "omit" });
    if (!resp.ok) throw new H.sig.ProofError("key set: HTTP " + resp.status);
    const ks = await H.sig.verifiedKeySet(new Uint8Array(await resp.arrayBuffer()));
    const root = H.hex(ks.root_public_key);
    const pinned = localStorage.getItem(ROOT_PIN + ks.region);
    if (pinned && pinned !== root) throw new H.sig.ProofError("key set: root key differs from the one this browser saw first");
    if (!pinned) localStorage.setItem(ROOT_PIN + ks.region, root);
    return ks;
  }

  // the signed checkpoint against the key set and the last checkpoint this browser saw;
  // the API serves no consistency proof, so a larger tree is accepted as an extension
  async function checkedCheckpoint(value) {
    if (!keySet) keySet = await regionKeySet();
    const c = await H.sig.verifiedCheckpoint(value, keySet);
    const key = LAST_SEEN + c.origin;
    const last = JSON.parse(localStorage.getItem(key) || "null");
    const root = H.hex(c.root_hash);
    if (last && (c.tree_size < last.tree_size || (c.tree_size === last.tree_size && root !== last.root))) {
      throw new H.sig.ProofError("checkpoint: contradicts the one this browser saw last");
    }
    if (!last || c.tree_size > last.tree_size) localStorage.setItem(key, JSON.stringify({ tree_size: c.tree_size, root }));
    return c;
  }

  async function loadPage(start) {
    const q = new URLSearchParams({ start_index: String(start), page_size: "50" });
    const data = await H.api("GET", H.API.queryLog + "?" + q.toString());
    try {
      cp = await checkedCheckpoint(data.checkpoint);
      cpProblem = "";
    } catch (e) {
      cpProblem = e instanceof H.sig.ProofError ? e.message : "checkpoint: " + String(e);
      try {
        cp = H.pb.checkpointOf(data.checkpoint); // shown, not trusted
      } catch (ignored) {
        cp = { origin: "", tree_size: 0, root_hash: new Uint8Array(0), timestamp: 0 };
      }
    }
    for (const item of data.entries || []) {
      const bytes = H.b64decode(item.entry);
      const proof = item.proof || {};
      let entry = null;
      let verified = false;
      try {
        entry = H.pb.logEntry(bytes);
        const treeSize = H.num(proof.tree_size);
        verified =
          !cpProblem &&
          treeSize === cp.tree_size &&
          (await H.verifyInclusion(bytes, H.num(proof.leaf_index), treeSize, (proof.hashes || []).map(H.b64decode), cp.root_hash));
      } catch (e) {
        verified = false; // an entry that does not parse is not checked either
      }
      rows.push({ entry, verified, leaf_index: H.num(proof.leaf_index) });
    }
    next = H.num(data.next_start_index);
    more = Boolean(data.more);
  }

  function draw() {
    H.clear(document.getElementById("checkpoint")).append(
      t(`日志检查点：${cp.origin || ""}，共 ${cp.tree_size} 条，根哈希 `, `Log checkpoint: ${cp.origin || ""}, ${cp.tree_size} entries, root `),
      el("code", { text: H.hex(cp.root_hash).slice(0, 16) + "…" }),
      cp.timestamp ? t(`，签署于 ${H.fmtTime(cp.timestamp)}`, `, signed ${H.fmtTime(cp.timestamp)}`) : "",
      el(
        "span",
        { id: "checkpoint-signature", class: cpProblem ? "error-text" : "ok-text", "data-checkpoint": cpProblem ? "failed" : "checked" },
        cpProblem
          ? t(`。检查点签名核验失败（${cpProblem}）。`, `. The checkpoint failed its check (${cpProblem}).`)
          : t("。检查点签名已用本地区公布的密钥核验。", ". Its signature is checked against the region's published keys.")
      )
    );
    const ok = rows.filter((r) => r.verified).length;
    const summary = document.getElementById("proof-summary");
    summary.className = ok === rows.length ? "ok-text" : "error-text";
    summary.textContent = t(`${rows.length} 条记录，${ok} 条已核验，${rows.length - ok} 条核验失败。`, `${rows.length} entries: ${ok} checked, ${rows.length - ok} failed.`);
    const box = H.clear(document.getElementById("log"));
    if (!rows.length) {
      box.append(el("p", { class: "muted", text: t("还没有与您有关的日志条目。", "No log entries about you yet.") }));
      return;
    }
    const head = [t("时间", "When"), t("事件", "What"), t("查询方", "Who"), t("场景", "Scenario"), t("说明", "Details"), t("包含证明", "Inclusion proof")];
    const body = el("tbody");
    for (const r of [...rows].reverse()) {
      const e = r.entry || {};
      const details = [e.reason, e.count > 1 ? t(`共 ${e.count} 次`, `${e.count} times`) : "", e.attestation_id ? "#" + e.attestation_id.slice(0, 12) : ""].filter(Boolean).join(" · ");
      const cells = [
        H.fmtTime(e.timestamp),
        term("logkind", e.kind),
        e.requester || "—",
        e.purpose || "—",
        details || "—",
        el("span", { class: r.verified ? "proof ok" : "proof bad", "data-proof": r.verified ? "checked" : "failed" }, r.verified ? "✓ " + t("已核验", "checked") : "✗ " + t("核验失败", "failed")),
      ];
      body.append(el("tr", { "data-leaf": r.leaf_index }, cells.map((v, i) => el("td", { "data-label": head[i] }, v))));
    }
    box.append(
      el(
        "div",
        { class: "table-wrap" },
        el("table", { class: "stack", id: "log-table" }, el("caption", { class: "sr-only", text: t("查询记录", "Query log") }), el("thead", {}, el("tr", {}, head.map((h) => el("th", { scope: "col", text: h })))), body)
      )
    );
    document.getElementById("more-btn").hidden = !more;
  }

  let wired = false;
  H.page(async () => {
    if (!wired) {
      wired = true;
      await loadPage(0);
      document.getElementById("more-btn").addEventListener("click", async () => {
        try {
          await loadPage(next);
          draw();
        } catch (e) {
          H.showError(e);
        }
      });
    }
    draw();
  });
})();
