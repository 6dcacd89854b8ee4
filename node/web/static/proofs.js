/* Huxin citizen pages: the few protocol-buffer messages the browser reads or writes
 * itself, the RFC 9162 inclusion proof check of the query log, and the Ed25519 check
 * of its checkpoint against the region's key set (WebCrypto; docs/adr/0801).
 *
 * Why in the browser: the query log's proofs are checked where the citizen is,
 * not by the node that wrote the log (H16, N23); and the consent handed to a
 * relying party is the node's signed ConsentToken, re-encoded byte for byte
 * from its fields (the envelope's signature covers the payload bytes, which are
 * carried unchanged).
 *
 * Wire format: varint (type 0) and length-delimited (type 2) fields only; a
 * 64-bit varint is read as a Number (exact below 2^53, far above any tree size
 * or timestamp the log holds).
 */
"use strict";

(function () {
  const H = window.Huxin;

  // ---------------------------------------------------------------- decoding
  function decode(bytes) {
    const fields = new Map(); // field number -> array of values (Number or Uint8Array)
    let i = 0;
    function varint() {
      let result = 0;
      let mul = 1;
      for (;;) {
        if (i >= bytes.length) throw new Error("truncated varint");
        const b = bytes[i++];
        result += (b & 0x7f) * mul;
        if (!(b & 0x80)) return result;
        mul *= 128;
        if (mul > 2 ** 63) throw new Error("varint too long");
      }
    }
    while (i < bytes.length) {
      const key = varint();
      const num = Math.floor(key / 8);
      const type = key % 8;
      let value;
      if (type === 0) value = varint();
      else if (type === 2) {
        const n = varint();
        if (i + n > bytes.length) throw new Error("truncated field");
        value = bytes.subarray(i, i + n);
        i += n;
      } else if (type === 1) {
        value = bytes.subarray(i, i + 8);
        i += 8;
      } else if (type === 5) {
        value = bytes.subarray(i, i + 4);
        i += 4;
      } else throw new Error("unsupported wire type " + type);
      if (!fields.has(num)) fields.set(num, []);
      fields.get(num).push(value);
    }
    return fields;
  }

  const utf8 = new TextDecoder();
  function str(fields, n) {
    const v = fields.get(n);
    return v ? utf8.decode(v[v.length - 1]) : "";
  }
  function int(fields, n) {
    const v = fields.get(n);
    return v ? v[v.length - 1] : 0;
  }
  function bytesOf(fields, n) {
    const v = fields.get(n);
    return v ? v[v.length - 1] : new Uint8Array(0);
  }

  // node.proto LogEntry
  function logEntry(bytes) {
    const f = decode(bytes);
    return {
      kind: str(f, 1),
      timestamp: int(f, 2),
      consent_id: str(f, 3),
      requester: str(f, 4),
      purpose: str(f, 5),
      reason: str(f, 6),
      subject_ref: bytesOf(f, 7),
      attestation_id: str(f, 8),
      count: int(f, 9) || 1,
    };
  }

  // node.proto Checkpoint: the payload of the signed envelope the query log answers with
  function checkpoint(payload) {
    const f = decode(payload);
    return { origin: str(f, 1), tree_size: int(f, 2), root_hash: bytesOf(f, 3), timestamp: int(f, 4), kind: str(f, 5) };
  }

  // the API's checkpoint: the signed envelope as one base64 string (or as its fields)
  function checkpointOf(value) {
    if (typeof value === "string") return checkpoint(bytesOf(decode(H.b64decode(value)), 1));
    return checkpoint(H.b64decode((value || {}).payload));
  }

  // ---------------------------------------------------------------- encoding
  function varintBytes(n) {
    const out = [];
    let v = n;
    while (v >= 128) {
      out.push((v % 128) | 0x80);
      v = Math.floor(v / 128);
    }
    out.push(v);
    return out;
  }

  function lenField(num, bytes) {
    if (!bytes || !bytes.length) return [];
    return [...varintBytes(num * 8 + 2), ...varintBytes(bytes.length), ...bytes];
  }

  const utf8e = new TextEncoder();

  // the API's envelope: its serialised bytes as one base64 string, or (older
  // encodings) {payload (base64), payload_type, signatures [{key_id, sig (base64)}]}
  function envelopeBytes(env) {
    if (typeof env === "string") return H.b64decode(env);
    const sigs = (env.signatures || []).flatMap((s) =>
      lenField(3, new Uint8Array([...lenField(1, utf8e.encode(s.key_id || "")), ...lenField(2, H.b64decode(s.sig))]))
    );
    return new Uint8Array([...lenField(1, H.b64decode(env.payload)), ...lenField(2, utf8e.encode(env.payload_type || "")), ...sigs]);
  }

  // node.proto ConsentToken without its preview: token (1), consent_id (2), binding_salt (3)
  function consentTokenBytes(token) {
    return new Uint8Array([
      ...lenField(1, envelopeBytes(token.token || {})),
      ...lenField(2, utf8e.encode(token.consent_id || "")),
      ...lenField(3, H.b64decode(token.binding_salt)),
    ]);
  }

  // ---------------------------------------------------------------- RFC 9162
  async function nodeHash(left, right) {
    const buf = new Uint8Array(1 + left.length + right.length);
    buf[0] = 1;
    buf.set(left, 1);
    buf.set(right, 1 + left.length);
    return H.sha256(buf);
  }

  async function leafHash(entry) {
    const buf = new Uint8Array(1 + entry.length);
    buf.set(entry, 1); // buf[0] = 0: the leaf prefix
    return H.sha256(buf);
  }

  function equal(a, b) {
    if (a.length !== b.length) return false;
    let d = 0;
    for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
    return d === 0;
  }

  // RFC 9162 section 2.1.3.2: does `entry` sit at leafIndex in the tree of treeSize leaves with `root`?
  async function verifyInclusion(entry, leafIndex, treeSize, path, root) {
    if (leafIndex >= treeSize || root.length !== 32) return false;
    let fn = leafIndex;
    let sn = treeSize - 1;
    let r = await leafHash(entry);
    for (const p of path) {
      if (p.length !== 32 || sn === 0) return false;
      if (fn % 2 === 1 || fn === sn) {
        r = await nodeHash(p, r);
        if (fn % 2 === 0) {
          while (fn % 2 === 0 && fn !== 0) {
            fn = Math.floor(fn / 2);
            sn = Math.floor(sn / 2);
          }
        }
      } else {
        r = await nodeHash(r, p);
      }
      fn = Math.floor(fn / 2);
      sn = Math.floor(sn / 2);
    }
    return sn === 0 && equal(r, root);
  }

  // ---------------------------------------------------------------- signatures
  // keys/_envelope.py: a DSSE envelope's signature covers PAE(payload_type, payload)
  const KEYSET_TYPE = "application/vnd.huxin.keyset.v1+proto";
  const CHECKPOINT_TYPE = "application/vnd.huxin.checkpoint.v1+proto";
  //: at most this many signatures are tried (keys/_envelope.py MAX_SIGNATURES)
  const MAX_SIGNATURES = 16;

  class ProofError extends Error {}

  function envelope(bytes) {
    const f = decode(bytes);
    const sigs = (f.get(3) || []).map((b) => {
      const s = decode(b);
      return { key_id: str(s, 1), sig: bytesOf(s, 2) };
    });
    if (sigs.length > MAX_SIGNATURES) throw new ProofError("too many signatures");
    return { payload: bytesOf(f, 1), payload_type: str(f, 2), signatures: sigs };
  }

  function pae(type, payload) {
    const t = utf8e.encode(type);
    const head = utf8e.encode(`DSSEv1 ${t.length} `);
    const mid = utf8e.encode(` ${payload.length} `);
    return new Uint8Array([...head, ...t, ...mid, ...payload]);
  }

  // keys/_ed25519.py key_id: hex of the first 16 bytes of SHA-256 of the raw public key
  async function keyId(publicKey) {
    return H.hex((await H.sha256(publicKey)).subarray(0, 16));
  }

  async function ed25519(publicKey, sig, message) {
    if (publicKey.length !== 32 || sig.length !== 64) return false;
    const key = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
    return crypto.subtle.verify({ name: "Ed25519" }, key, sig, message);
  }

  // the key id of the first signature by one of `keys` ([{key_id, public_key}]) that verifies
  async function signerOf(env, keys) {
    const message = pae(env.payload_type, env.payload);
    for (const s of env.signatures) {
      const k = keys.find((c) => c.key_id === s.key_id);
      if (k && (await ed25519(k.public_key, s.sig, message))) return k;
    }
    return null;
  }

  // keys.proto KeySet, its envelope checked against the root key it names (the node's
  // /trust/key-set.bin). Which root key is the region's is pinned by the caller.
  async function verifiedKeySet(bytes) {
    const env = envelope(bytes);
    if (env.payload_type !== KEYSET_TYPE) throw new ProofError("key set: wrong payload type");
    const f = decode(env.payload);
    const root = bytesOf(f, 4);
    const keys = await Promise.all(
      (f.get(5) || []).map(async (b) => {
        const k = decode(b);
        const pub = bytesOf(k, 1);
        return { public_key: pub, key_id: await keyId(pub), valid_from: int(k, 2), valid_until: int(k, 3), revoked_at: int(k, 4) };
      })
    );
    if (!(await signerOf(env, [{ key_id: await keyId(root), public_key: root }]))) throw new ProofError("key set: not signed by its root key");
    return { region: str(f, 1), version: int(f, 2), root_public_key: root, keys };
  }

  // keys/_trust.py SigningKey.valid_at: within its validity, and not at or after its revocation
  function validAt(k, t) {
    return !(k.revoked_at && t >= k.revoked_at) && k.valid_from <= t && t <= k.valid_until;
  }

  // the API's checkpoint envelope (base64 string or fields) verified against a verified key
  // set: the payload type, then a signature by a listed key valid at the checkpoint's time
  async function verifiedCheckpoint(value, keySet) {
    const env = envelope(typeof value === "string" ? H.b64decode(value) : envelopeBytes(value || {}));
    if (env.payload_type !== CHECKPOINT_TYPE) throw new ProofError("checkpoint: wrong payload type");
    const cp = checkpoint(env.payload);
    const signer = await signerOf(env, keySet.keys.filter((k) => validAt(k, cp.timestamp)));
    if (!signer) throw new ProofError("checkpoint: no valid signature by a key of the region's key set");
    return cp;
  }

  H.pb = { decode, logEntry, checkpoint, checkpointOf, envelopeBytes, consentTokenBytes };
  H.verifyInclusion = verifyInclusion;
  H.sig = { ProofError, verifiedKeySet, verifiedCheckpoint, keyId };
})();
